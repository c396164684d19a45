/**
 * SGD with momentum, dampening, Nesterov and (L2) weight decay, as torch.optim.SGD:
 * g += wd * p; buf = g on the first step, else momentum * buf + (1 - dampening) * g;
 * g = nesterov ? g + momentum * buf : buf; p -= lr * g. One fused kernel per parameter.
 */
import { StepError } from '../errors.js';
import { runKernel } from '../registry.js';
import type { Tensor } from '../tensor.js';
import { sgdKernel } from './kernels.js';
import type { BaseHyper, OptimizerOptions, ParamGroupSpec, ParamState, UpdateInputs } from './optimizer.js';
import { Optimizer, stepAttrs } from './optimizer.js';

export interface SgdHyper extends BaseHyper {
  momentum: number;
  dampening: number;
  nesterov: boolean;
}

export type SgdOptions = Partial<SgdHyper> & OptimizerOptions;

export class SGD extends Optimizer<SgdHyper> {
  constructor(params: readonly Tensor[] | readonly ParamGroupSpec<SgdHyper>[], options: SgdOptions = {}) {
    const { lr, momentum, dampening, nesterov, weightDecay, ...rest } = options;
    if (lr === undefined) throw new StepError('sgd: lr is required (torch.optim.SGD has no default either)');
    super('sgd', params, { lr, momentum: momentum ?? 0, dampening: dampening ?? 0, nesterov: nesterov ?? false, weightDecay: weightDecay ?? 0 }, rest);
  }

  protected checkHyper(h: SgdHyper, where: string): void {
    for (const key of ['lr', 'momentum', 'dampening', 'weightDecay'] as const) {
      if (!(h[key] >= 0) || !Number.isFinite(h[key])) throw new StepError(`${where}: ${key} must be a finite number >= 0, got ${h[key]}`);
    }
    if (h.nesterov && (h.momentum <= 0 || h.dampening !== 0)) {
      throw new StepError(`${where}: nesterov needs momentum > 0 and dampening 0 (got momentum ${h.momentum}, dampening ${h.dampening})`);
    }
  }

  /** A momentum buffer only when momentum > 0 (momentum-free SGD holds no state in fp32). */
  protected stateNames(h: SgdHyper): string[] {
    return h.momentum > 0 ? ['momentum'] : [];
  }

  protected update(s: ParamState, inputs: UpdateInputs): void {
    const h = this.groups[s.group]!;
    const buf = s.tensors.get('momentum');
    if (!buf && h.momentum > 0) {
      throw new StepError(`sgd group ${s.group}: momentum was 0 when the group was created, so it has no momentum buffer; set momentum when constructing the optimizer`);
    }
    runKernel(sgdKernel, {
      inputs,
      outputs: { param: s.param, momentum: buf, master: s.master ?? undefined },
      attrs: { lr: h.lr, momentum: buf ? h.momentum : 0, dampening: h.dampening, nesterov: h.nesterov, weightDecay: h.weightDecay, ...stepAttrs(s) },
    });
  }
}
