import type { Tensor } from '../../engine/tensor.js';
import * as CE from '../../kernels/cross-entropy.js';
import * as N from '../../kernels/rmsnorm.js';
import * as P from '../../kernels/rope.js';
import * as S from '../../kernels/softmax.js';
import * as G from '../../kernels/swiglu.js';
import { markRecomputable } from '../saved.js';
import { needsGrad, record } from '../tape.js';

/** Softmax along the last axis (optionally causal); backward reads only the output. */
export function softmax(x: Tensor, options: S.SoftmaxOptions = {}): Tensor {
  const y = S.softmax(x, options);
  if (!needsGrad(x)) return y;
  return record('softmax', y, [x], [y], (g, [sy]) => [S.softmaxBackward(sy!, g)]);
}

/** Mean cross-entropy of logits [N, V] against i32 targets [N]; backward rebuilds the softmax from the logits. */
export function crossEntropy(logits: Tensor, targets: Tensor, options: CE.CrossEntropyOptions = {}): Tensor {
  const loss = CE.crossEntropy(logits, targets, options);
  if (!needsGrad(logits)) return loss;
  return record('crossEntropy', loss, [logits, targets], [logits, targets], (g, [sl, st]) =>
    [CE.crossEntropyBackward(sl!, st!, { ignoreIndex: options.ignoreIndex, reduction: options.reduction, gradScale: g }), null]);
}

/**
 * Hugging Face LlamaRMSNorm: x * rsqrt(mean(x^2) + eps) * weight. Saves x and weight only (the
 * backward kernel recomputes the per-row rstd); the output is recomputable, so the linears it
 * feeds keep no copy of it: their backward rebuilds it from x once (see autograd/saved.ts).
 */
export function rmsNorm(x: Tensor, weight: Tensor, eps: number, options: N.RmsNormOptions = {}): Tensor {
  const y = N.rmsNorm(x, weight, eps, options);
  if (!needsGrad(x, weight)) return y;
  // both gradients read x and weight
  record('rmsNorm', y, [x, weight], [x, weight], (g, [sx, sw]) => {
    const { dx, dweight } = N.rmsNormBackward(sx!, sw!, g, eps);
    if (!x.requiresGrad) dx.dispose();
    if (!weight.requiresGrad) dweight.dispose();
    return [x.requiresGrad ? dx : null, weight.requiresGrad ? dweight : null];
  });
  return markRecomputable(y, [x, weight], ([sx, sw]) => N.rmsNorm(sx!, sw!, eps));
}

/** Rotary embedding (HF rotate-half); linear in x, so backward needs nothing saved. */
export function rope(x: Tensor, options: P.RopeOptions = {}): Tensor {
  const y = P.rope(x, options);
  if (!needsGrad(x)) return y;
  return record('rope', y, [x], [], (g) => [P.ropeBackward(g, options)]);
}

/**
 * silu(gate) * up. Saves gate and up; the product is recomputable from them, so the down
 * projection keeps no [T, I] copy of it (see autograd/saved.ts).
 */
export function swiglu(gate: Tensor, up: Tensor): Tensor {
  const y = G.swiglu(gate, up);
  if (!needsGrad(gate, up)) return y;
  record('swiglu', y, [gate, up], [gate, up], (g, [sg, su]) => {
    const { dgate, dup } = G.swigluBackward(sg!, su!, g);
    return [gate.requiresGrad ? dgate : (dgate.dispose(), null), up.requiresGrad ? dup : (dup.dispose(), null)];
  });
  return markRecomputable(y, [gate, up], ([sg, su]) => G.swiglu(sg!, su!));
}
