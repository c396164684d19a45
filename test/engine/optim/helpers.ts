/** Shared by the optimizer tests: trainable tensors, hand-set gradients, f64 reference optimizers. */
import type { Backend, DType, Tensor } from '../../../index.js';
import { fromArray } from '../../../index.js';
import '../../../kernels/optim.js'; // registers the optimizer kernels (until kernels/index.ts imports it)

/** A trainable parameter (category `parameter`, requiresGrad set). */
export function param(values: ArrayLike<number>, shape: readonly number[], options: { dtype?: DType; label?: string; device?: Backend } = {}): Tensor {
  const p = fromArray(values, shape, { category: 'parameter', ...options });
  p.requiresGrad = true;
  return p;
}

/** Replaces p.grad with these values (category `gradient`), as autograd would leave them. */
export function setGradValues(p: Tensor, values: ArrayLike<number>, dtype: DType = p.dtype): void {
  p.grad?.dispose();
  p.grad = fromArray(values, p.shape, { category: 'gradient', dtype, device: p.backend, label: `grad:${p.label}` });
}

export interface AdamRefHyper { lr: number; beta1: number; beta2: number; eps: number; weightDecay: number; decoupled: boolean }

/** Adam/AdamW in f64, written from the PyTorch documentation's pseudo-code. grads[t] is the gradient of step t+1. */
export function adamReference(p0: readonly number[], grads: readonly (readonly number[])[], h: AdamRefHyper): { p: number[]; m: number[]; v: number[] } {
  const p = [...p0], m = p.map(() => 0), v = p.map(() => 0);
  grads.forEach((gs, k) => {
    const t = k + 1;
    for (let i = 0; i < p.length; i++) {
      let g = gs[i]!;
      if (h.decoupled) p[i]! *= 1 - h.lr * h.weightDecay;
      else g += h.weightDecay * p[i]!;
      m[i] = h.beta1 * m[i]! + (1 - h.beta1) * g;
      v[i] = h.beta2 * v[i]! + (1 - h.beta2) * g * g;
      const mHat = m[i]! / (1 - h.beta1 ** t), vHat = v[i]! / (1 - h.beta2 ** t);
      p[i]! -= (h.lr * mHat) / (Math.sqrt(vHat) + h.eps);
    }
  });
  return { p, m, v };
}

export interface SgdRefHyper { lr: number; momentum: number; dampening: number; nesterov: boolean; weightDecay: number }

/** SGD in f64, from the PyTorch documentation's pseudo-code. */
export function sgdReference(p0: readonly number[], grads: readonly (readonly number[])[], h: SgdRefHyper): { p: number[]; buf: number[] } {
  const p = [...p0], buf = p.map(() => 0);
  grads.forEach((gs, k) => {
    for (let i = 0; i < p.length; i++) {
      let g = gs[i]! + h.weightDecay * p[i]!;
      if (h.momentum !== 0) {
        buf[i] = k === 0 ? g : h.momentum * buf[i]! + (1 - h.dampening) * g;
        g = h.nesterov ? g + h.momentum * buf[i]! : buf[i]!;
      }
      p[i]! -= h.lr * g;
    }
  });
  return { p, buf };
}

/** Global L2 norm of several gradient arrays, in f64. */
export function globalNorm(grads: readonly (readonly number[])[]): number {
  return Math.sqrt(grads.reduce((a, g) => a + g.reduce((b, x) => b + x * x, 0), 0));
}

/** Deterministic pseudo-random numbers in [-1, 1) for test data (a tiny LCG; no engine code involved). */
export function hostRandom(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 31 - 1;
  };
}
