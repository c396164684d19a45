/**
 * The composed attention: the reference the fused kernel (attention.ts) is tested against, and
 * what `attention` was before it. Scaled dot-product attention with grouped KV heads:
 *
 *   out = softmax(q k^T * scale [causal mask]) v      q [B, H, Tq, D], k, v [B, Hkv, Tk, D] -> [B, H, Tq, D]
 *
 * Query head h reads KV head floor(h / (H / Hkv)) (Hugging Face repeat_kv order). The op runs in
 * chunks of query rows and saves only q, k and v: neither the forward nor the backward ever holds
 * the [B, H, Tq, Tk] probabilities of all rows, only one chunk's [B, H, rows, Tk] at a time.
 * Backward recomputes each chunk's probabilities (FlashAttention's recomputation, without its
 * fusion): dV += P^T dO, dP = dO V^T, dS = softmaxBackward(P, dP), dQ = dS K * scale,
 * dK += dS^T Q * scale.
 *
 * GQA costs no copies: a chunk of q, [B, H, rows, D], is viewed as [B, Hkv, G * rows, D] (G = H / Hkv
 * consecutive query heads per KV head), so one batched matmul against k [B, Hkv, Tk, D] scores every
 * head of a group, and the P^T dO and dS^T Q products sum the group's heads in their contraction.
 *
 * This is composed from the raw kernels (matmul, softmax, layout); `attention` runs the fused
 * online-softmax kernel instead (kernels/attention.ts).
 */
import { zeros } from '../../engine/creation.js';
import { ShapeError } from '../../engine/errors.js';
import { scopeSync } from '../../engine/scope.js';
import type { Tensor } from '../../engine/tensor.js';
import { viewOf } from '../../engine/tensor.js';
import { attentionAttrs } from '../../kernels/attention.js';
import { addScaledInPlace, mul } from '../../kernels/elementwise.js';
import { concat, slice } from '../../kernels/layout.js';
import { matmul } from '../../kernels/matmul.js';
import { softmax as softmaxRaw, softmaxBackward } from '../../kernels/softmax.js';
import { needsGrad, record } from '../tape.js';

export interface ComposedAttentionOptions {
  /** Mask key j for query row i when j > i + positionOffset (default true). */
  causal?: boolean;
  /** Multiplier of q k^T (default 1 / sqrt(D)). */
  scale?: number;
  /** Position of the first query row among the keys (causal only; default 0; Tk - Tq for a KV cache). */
  positionOffset?: number;
  /**
   * Query rows per chunk (default: as many as keep one chunk's scores [B, H, rows, Tk] within
   * 4 Mi elements, at least 1). Smaller chunks hold less memory and dispatch more kernels.
   */
  chunkRows?: number;
}

/** The default bound on one chunk's score elements (4 Mi: 16 MiB in f32), see chunkRows. */
export const DEFAULT_CHUNK_ELEMENTS = 1 << 22;

interface Plan {
  B: number; H: number; Hkv: number; G: number; Tq: number; Tk: number; D: number;
  causal: boolean; scale: number; offset: number; chunk: number;
}

function checkInputs(q: Tensor, k: Tensor, v: Tensor, options: ComposedAttentionOptions): Plan {
  const op = 'attentionComposed';
  const { B, H, Hkv, Tq, Tk, D, causal, scale, offset } = attentionAttrs(op, q, k, v, options, { allowEmpty: true });
  const rowElements = Math.max(1, B * H * Tk);
  const chunk = options.chunkRows ?? Math.max(1, Math.floor(DEFAULT_CHUNK_ELEMENTS / rowElements));
  if (!Number.isInteger(chunk) || chunk < 1) throw new ShapeError(`${op}: chunkRows ${chunk} must be a positive integer`);
  return { B, H, Hkv, G: H / Hkv, Tq, Tk, D, causal, scale, offset, chunk: Math.min(chunk, Math.max(Tq, 1)) };
}

/** Rows [r0, r1) of a [B, H, Tq, D] tensor, viewed as [B, Hkv, G * rows, D] (no copy when it is all rows). */
function rowsByGroup(x: Tensor, p: Plan, r0: number, r1: number): Tensor {
  const part = r0 === 0 && r1 === p.Tq ? x : slice(x, { axis: 2, start: r0, end: r1 });
  return viewOf(part, [p.B, p.Hkv, p.G * (r1 - r0), p.D]);
}

/** The probabilities of query rows [r0, r1) from their grouped rows `qc`, as [B, Hkv, G * rows, Tk]. */
function chunkProbabilities(qc: Tensor, k: Tensor, p: Plan, r0: number, r1: number): Tensor {
  const scores = mul(matmul(qc, k, { transB: true }), p.scale);
  // softmax's causal mask reads the rows as [..., rows, Tk]: row i of the chunk is query r0 + i
  const probs = softmaxRaw(viewOf(scores, [p.B, p.H, r1 - r0, p.Tk]), { causal: p.causal, positionOffset: p.causal ? p.offset + r0 : 0 });
  return viewOf(probs, [p.B, p.Hkv, p.G * (r1 - r0), p.Tk]);
}

function chunks(p: Plan): [number, number][] {
  const out: [number, number][] = [];
  for (let r0 = 0; r0 < p.Tq; r0 += p.chunk) out.push([r0, Math.min(p.Tq, r0 + p.chunk)]);
  return out;
}

/** The chunks' [B, H, rows, D] results as one [B, H, Tq, D] (the caller's scope frees the parts). */
function joinRows(parts: Tensor[]): Tensor {
  return parts.length === 1 ? parts[0]! : concat(parts, 2);
}

function forward(q: Tensor, k: Tensor, v: Tensor, p: Plan): Tensor {
  if (p.Tq === 0 || p.Tk === 0 || p.B * p.H * p.D === 0) return zeros([p.B, p.H, p.Tq, p.D], { dtype: q.dtype, device: q.backend });
  return scopeSync(() => {
    const parts = chunks(p).map(([r0, r1]) => scopeSync(() =>
      viewOf(matmul(chunkProbabilities(rowsByGroup(q, p, r0, r1), k, p, r0, r1), v), [p.B, p.H, r1 - r0, p.D])));
    return joinRows(parts);
  });
}

function backwardOf(q: Tensor, k: Tensor, v: Tensor, dOut: Tensor, p: Plan): [Tensor, Tensor, Tensor] {
  const opts = { dtype: q.dtype, device: q.backend };
  const dk = zeros(k.shape, opts), dv = zeros(v.shape, opts);
  if (p.Tq === 0 || p.Tk === 0 || p.B * p.H * p.D === 0) return [zeros(q.shape, opts), dk, dv];
  const dq = scopeSync(() => {
    const parts = chunks(p).map(([r0, r1]) => scopeSync(() => {
      const qc = rowsByGroup(q, p, r0, r1);
      const probs = chunkProbabilities(qc, k, p, r0, r1); // [B, Hkv, G * rows, Tk]
      const dO = rowsByGroup(dOut, p, r0, r1); // [B, Hkv, G * rows, D]
      addScaledInPlace(dv, matmul(probs, dO, { transA: true })); // the group's heads sum in the contraction
      const dS = softmaxBackward(probs, matmul(dO, v, { transB: true }));
      addScaledInPlace(dk, matmul(dS, qc, { transA: true }), p.scale);
      return viewOf(mul(matmul(dS, k), p.scale), [p.B, p.H, r1 - r0, p.D]);
    }));
    return joinRows(parts);
  });
  return [dq, dk, dv];
}

/**
 * softmax(q k^T * scale, causal) v for q [B, H, Tq, D] and k, v [B, Hkv, Tk, D] -> [B, H, Tq, D];
 * query head h reads KV head floor(h / (H / Hkv)) (grouped KV heads, never repeated in memory).
 * Runs in chunks of `chunkRows` query rows and saves only q, k and v: backward recomputes each
 * chunk's probabilities, so the [B, H, Tq, Tk] probabilities of all rows never exist at once.
 * Composed from the matmul and softmax kernels (the reference of the fused `attention`).
 */
export function attentionComposed(q: Tensor, k: Tensor, v: Tensor, options: ComposedAttentionOptions = {}): Tensor {
  q.use('attentionComposed'); k.use('attentionComposed'); v.use('attentionComposed');
  const plan = checkInputs(q, k, v, options);
  const out = forward(q, k, v, plan);
  if (!needsGrad(q, k, v)) return out;
  return record('attentionComposed', out, [q, k, v], [q, k, v], (g, [sq, sk, sv]) => {
    const grads: (Tensor | null)[] = backwardOf(sq!, sk!, sv!, g, plan);
    [q, k, v].forEach((t, i) => {
      if (!t.requiresGrad) { grads[i]!.dispose(); grads[i] = null; }
    });
    return grads;
  });
}
