/**
 * Signatures of the optimizer kernels (implemented in kernels/optim.ts). A step that clips or
 * scales the loss first reduces every gradient into `partials` (grad_sq_partials), then
 * optim_finalize turns them into a 4-float status that every update kernel reads:
 *   status = [grad multiplier (clip / loss scale), skip flag, global grad norm, skipped steps so far]
 * so nothing is read back to the host. Scaler state = [scale, good steps, skipped steps, last overflow].
 */
import { defineKernel } from '../registry.js';

/**
 * Writes (sum of squares, count of non-finite elements) of `grad` into slots base ..
 * base + groups - 1 of `partials`, one slot per workgroup (the cpu kernel puts it all in the first).
 */
export const gradSqPartialsKernel = defineKernel<{ base: number; groups: number }>()('grad_sq_partials', { inputs: ['grad'], outputs: ['partials'] });

/**
 * grad_sq_partials over several gradients at once (a few dispatches instead of one per gradient):
 * gradient k writes the slots bases[k] .. bases[k] + groups[k] - 1, as the one-gradient kernel would.
 */
export const gradSqPartialsMultiKernel = defineKernel<{ bases: number[]; groups: number[] }>()('grad_sq_partials_multi', { inputs: ['...grads'], outputs: ['partials'] });

export interface FinalizeAttrs {
  slots: number;
  /** 0 disables clipping. */
  maxNorm: number;
  growthFactor: number;
  backoffFactor: number;
  growthInterval: number;
}

/** Sums the partials into the status and the norm; with a loss scaler, also updates its state. */
export const optimFinalizeKernel = defineKernel<FinalizeAttrs>()('optim_finalize', { inputs: ['partials'], outputs: ['status', 'norm', 'scaler?'] });

/**
 * What every update kernel needs to honour the status: the steps this parameter has taken
 * (including this one) and the scaler's skipped-step count at its last step reset. With a status,
 * a skipped step changes nothing and the step count is `step - (skipped now - skipBase)`.
 */
export interface StepAttrs {
  step: number;
  skipBase: number;
}

export interface AdamAttrs extends StepAttrs {
  lr: number; beta1: number; beta2: number; eps: number;
  /** Coupled L2 coefficient (Adam's weight decay), 0 for AdamW. */
  l2: number;
  /** Multiplier applied to the weight before the step: 1 - lr * wd for AdamW, 1 for Adam. */
  decay: number;
}

/** Adam / AdamW on one parameter; `master` is the f32 master copy in mixed precision. */
export const adamwKernel = defineKernel<AdamAttrs>()('adamw', { inputs: ['grad', 'status?'], outputs: ['param', 'm', 'v', 'master?'] });

/** What the multi-tensor AdamW needs of each parameter: its attributes and whether it has a master copy. */
export interface AdamMultiAttrs {
  params: AdamAttrs[];
  /** true in mixed precision: every parameter's outputs end with its f32 master copy. */
  masters: boolean;
}

/**
 * Adam / AdamW over several parameters in few dispatches, each element updated as adamwKernel
 * updates it (the same bits). `grads[k]` belongs to parameter k; `states` lists, parameter by
 * parameter, param, m, v (and master).
 */
export const adamwMultiKernel = defineKernel<AdamMultiAttrs>()('adamw_multi', { inputs: ['status?', '...grads'], outputs: ['...states'] });

export interface SgdAttrs extends StepAttrs {
  lr: number; momentum: number; dampening: number; nesterov: boolean; weightDecay: number;
}

/** SGD on one parameter; `momentum` is the buffer (absent when momentum is 0). */
export const sgdKernel = defineKernel<SgdAttrs>()('sgd', { inputs: ['grad', 'status?'], outputs: ['param', 'momentum?', 'master?'] });

/** out = x * scaler[0] (the scale read on the device). */
export const lossScaleKernel = defineKernel()('loss_scale', { inputs: ['x', 'scaler'], outputs: ['out'] });

/** Zeroes the elements of `state` whose uniform draw is < p (ReLoRA's random pruning). */
export const pruneRandomKernel = defineKernel<{ p: number }>()('prune_random', { inputs: ['draws'], outputs: ['state'] });

/** Zeroes the elements of `state` with |x| <= threshold (ReLoRA's magnitude pruning). */
export const pruneThresholdKernel = defineKernel<{ threshold: number }>()('prune_threshold', { inputs: [], outputs: ['state'] });
