/**
 * Adam (Kingma & Ba) and AdamW (Loshchilov & Hutter: decoupled weight decay), with PyTorch's
 * update: m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
 * p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps). Adam adds wd * p to g (L2);
 * AdamW multiplies p by (1 - lr * wd) instead. One fused kernel updates several parameters per
 * dispatch (kernels/optim-multi.ts), each element as the per-parameter kernel would (kernels/optim.ts).
 */
import { StepError } from '../errors.js';
import { runKernel } from '../registry.js';
import type { Tensor } from '../tensor.js';
import type { AdamAttrs } from './kernels.js';
import { adamwKernel, adamwMultiKernel } from './kernels.js';
import type { BaseHyper, OptimizerOptions, ParamGroupSpec, ParamState, UpdateInputs } from './optimizer.js';
import { Optimizer, stepAttrs } from './optimizer.js';

export interface AdamHyper extends BaseHyper {
  betas: [number, number];
  eps: number;
}

export type AdamOptions = Partial<AdamHyper> & OptimizerOptions;

function splitOptions(options: AdamOptions, weightDecay: number): { hyper: AdamHyper; rest: OptimizerOptions } {
  const { lr, betas, eps, weightDecay: wd, ...rest } = options;
  return { hyper: { lr: lr ?? 1e-3, betas: betas ?? [0.9, 0.999], eps: eps ?? 1e-8, weightDecay: wd ?? weightDecay }, rest };
}

/** Checks Adam's hyperparameters (lr, betas, eps, weightDecay); throws naming `where` and the value. */
export function checkAdamHyper(h: AdamHyper, where: string): void {
  if (!(h.lr >= 0) || !Number.isFinite(h.lr)) throw new StepError(`${where}: lr must be a finite number >= 0, got ${h.lr}`);
  if (!Array.isArray(h.betas) || h.betas.length !== 2 || !h.betas.every((b) => b >= 0 && b < 1)) {
    throw new StepError(`${where}: betas must be two numbers in [0, 1), got ${JSON.stringify(h.betas)}`);
  }
  if (!(h.eps >= 0) || !Number.isFinite(h.eps)) throw new StepError(`${where}: eps must be a finite number >= 0, got ${h.eps}`);
  if (!(h.weightDecay >= 0) || !Number.isFinite(h.weightDecay)) throw new StepError(`${where}: weightDecay must be a finite number >= 0, got ${h.weightDecay}`);
}

abstract class AdamBase extends Optimizer<AdamHyper> {
  protected abstract readonly decoupled: boolean;

  protected checkHyper(h: AdamHyper, where: string): void {
    checkAdamHyper(h, where);
  }

  protected stateNames(): string[] {
    return ['m', 'v'];
  }

  private attrsOf(s: ParamState): AdamAttrs {
    const h = this.groups[s.group]!;
    return {
      lr: h.lr, beta1: h.betas[0], beta2: h.betas[1], eps: h.eps,
      l2: this.decoupled ? 0 : h.weightDecay,
      decay: this.decoupled ? 1 - h.lr * h.weightDecay : 1,
      ...stepAttrs(s),
    };
  }

  protected update(s: ParamState, inputs: UpdateInputs): void {
    runKernel(adamwKernel, {
      inputs,
      outputs: { param: s.param, m: s.tensors.get('m')!, v: s.tensors.get('v')!, master: s.master ?? undefined },
      attrs: this.attrsOf(s),
    });
  }

  /** All parameters in few dispatches: the same update, element for element, as `update`. */
  protected override updateAll(batch: readonly (readonly [ParamState, UpdateInputs])[]): void {
    if (batch.length === 0) return;
    runKernel(adamwMultiKernel, {
      inputs: { status: batch[0]![1].status, grads: batch.map(([, i]) => i.grad) },
      outputs: { states: batch.flatMap(([s]) => [s.param, s.tensors.get('m')!, s.tensors.get('v')!, ...(s.master ? [s.master] : [])]) },
      attrs: { params: batch.map(([s]) => this.attrsOf(s)), masters: this.precision === 'mixed' },
    });
  }
}

/** Adam; `weightDecay` (default 0) is an L2 term added to the gradient, as in torch.optim.Adam. */
export class Adam extends AdamBase {
  protected readonly decoupled = false;

  constructor(params: readonly Tensor[] | readonly ParamGroupSpec<AdamHyper>[], options: AdamOptions = {}) {
    const { hyper, rest } = splitOptions(options, 0);
    super('adam', params, hyper, rest);
  }
}

/** AdamW; `weightDecay` (default 0.01, as torch.optim.AdamW) decays the weights directly. */
export class AdamW extends AdamBase {
  protected readonly decoupled = true;

  constructor(params: readonly Tensor[] | readonly ParamGroupSpec<AdamHyper>[], options: AdamOptions = {}) {
    const { hyper, rest } = splitOptions(options, 0.01);
    super('adamw', params, hyper, rest);
  }
}
