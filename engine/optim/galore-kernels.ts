/**
 * Signatures of GaLore's kernels (implemented in kernels/galore.ts). They honour the same status
 * protocol as the AdamW kernel (see kernels.ts): a step the loss scaler skipped changes nothing.
 */
import { defineKernel } from '../registry.js';
import type { StepAttrs } from './kernels.js';

/** Thin Householder QR of `a` [s, r] (s >= r) in one workgroup: `q` gets the orthonormal factor; `a` is overwritten. */
export const householderQrKernel = defineKernel<{ rows: number; cols: number }>()('galore_householder_qr', { inputs: [], outputs: ['a', 'q'] });

/**
 * projector = q with each column's sign chosen so that its largest-magnitude entry is positive
 * (a basis independent of the sign conventions of the factorisation); nothing when the step is skipped.
 */
export const projectorCommitKernel = defineKernel<{ rows: number; cols: number }>()('galore_commit', { inputs: ['q', 'status?'], outputs: ['projector'] });

export interface ProjectedAdamAttrs extends StepAttrs {
  beta1: number; beta2: number; eps: number;
}

/**
 * Adam's moments in the projected space: g = lowGrad * status multiplier; m, v updated; lowGrad
 * is overwritten with m / (sqrt(v) + eps) (GaLore's reference: eps outside the bias correction).
 */
export const projectedAdamKernel = defineKernel<ProjectedAdamAttrs>()('galore_adam', { inputs: ['status?'], outputs: ['lowGrad', 'm', 'v'] });

export interface ProjectedApplyAttrs extends StepAttrs {
  lr: number; beta1: number; beta2: number;
  /** GaLore's alpha: the projected-back update is multiplied by it. */
  scale: number;
  /** 1 - lr * weightDecay, applied after the update as GaLore's reference does. */
  decay: number;
}

/** p = (p - lr * sqrt(1 - b2^t) / (1 - b1^t) * scale * update) * decay; `master` in mixed precision. */
export const projectedApplyKernel = defineKernel<ProjectedApplyAttrs>()('galore_apply', { inputs: ['update', 'status?'], outputs: ['param', 'master?'] });
