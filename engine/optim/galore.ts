/**
 * GaLore (Zhao et al., arXiv 2403.03507): AdamW whose moments live in a low-rank projection of
 * each 2-D gradient. For a parameter W [m, n] of a group with `rank` r > 0, every `updateGap`
 * steps (the first included) the projector P is recomputed from the current gradient: the top-r
 * singular vectors on the smaller side (left U_r [m, r] when m < n, else right V_r [n, r]), by
 * seeded subspace iteration on the device (galore-subspace.ts). Then, as GaLore's reference
 * (galore_torch/adamw.py) does:
 *   R = P^T G (left) or G P (right)                 the r-dimensional gradient
 *   m = b1 m + (1 - b1) R;  v = b2 v + (1 - b2) R^2  moments of R's shape, kept across refreshes
 *   N = m / (sqrt(v) + eps)
 *   W = W - lr * sqrt(1 - b2^t) / (1 - b1^t) * scale * (P N or N P^T)
 *   W = W * (1 - lr * weightDecay)                   decay after the update, on the new weights
 * Groups with rank 0 (embeddings, head, norms) get plain AdamW (torch.optim.AdamW's update).
 *
 * State per GaLore parameter (category `optimizer`, f32): `m` and `v` of R's shape, `projector`
 * [min(m, n), r], and the f32 master copy in mixed precision: 4 (r max(m, n) * 2 + r min(m, n))
 * bytes, plus 4 m n with a master. Temporaries of a step: the projected gradient, the projected-back
 * update [m, n] (and, in mixed precision, an f32 copy of the gradient).
 */
import { clone } from '../creation.js';
import { StepError } from '../errors.js';
import { runKernel } from '../registry.js';
import type { Tensor } from '../tensor.js';
import { matmul } from '../../kernels/matmul.js';
import type { AdamHyper } from './adam.js';
import { checkAdamHyper } from './adam.js';
import { projectedAdamKernel, projectedApplyKernel, projectorCommitKernel } from './galore-kernels.js';
import { projectionSide, topSingularSubspace } from './galore-subspace.js';
import { adamwKernel } from './kernels.js';
import type { OptimizerOptions, ParamGroupSpec, ParamState, UpdateInputs } from './optimizer.js';
import { Optimizer, stepAttrs } from './optimizer.js';

export interface GaLoreHyper extends AdamHyper {
  /** Projection rank r; 0 means plain AdamW for the group. Each parameter needs r <= min(m, n). */
  rank: number;
  /** Steps between projector refreshes (GaLore's T, `update_proj_gap`). */
  updateGap: number;
  /** GaLore's alpha: the projected-back update is multiplied by it. */
  scale: number;
  /** Subspace iterations after the first product at each refresh (more: closer to the SVD). */
  iterations: number;
}

export type GaLoreOptions = Partial<GaLoreHyper> & OptimizerOptions & {
  /** Seeds the random starts of the subspace iterations (default 0). */
  seed?: number;
};

/** The defaults: GaLore's 60M-350M settings (rank 128 is for 60M; pass your own), torch's AdamW betas and eps. */
export const GALORE_DEFAULTS = { rank: 0, updateGap: 200, scale: 0.25, iterations: 6 } as const;

/** Shapes of one parameter's GaLore state: the moments and the projector (the planner lists the same). */
export function galoreStateShapes(shape: readonly number[], rank: number): { moments: number[]; projector: number[] } {
  const [m, n] = shape as [number, number];
  const left = projectionSide(shape) === 'left';
  return { moments: left ? [rank, n] : [m, rank], projector: [Math.min(m, n), rank] };
}

/** A Philox seed for (optimizer seed, parameter index, refresh index): distinct streams, safe integers. */
function refreshSeed(seed: number, param: number, refresh: number): number {
  return Number((BigInt(seed) * 0x9e3779b1n + BigInt(param) * 0x85ebca77n + BigInt(refresh)) % 2n ** 53n);
}

export class GaLoreAdamW extends Optimizer<GaLoreHyper> {
  readonly seed: number;

  constructor(params: readonly Tensor[] | readonly ParamGroupSpec<GaLoreHyper>[], options: GaLoreOptions = {}) {
    const { lr, betas, eps, weightDecay, rank, updateGap, scale, iterations, seed, ...rest } = options;
    super('galore-adamw', params, {
      lr: lr ?? 1e-3, betas: betas ?? [0.9, 0.999], eps: eps ?? 1e-8, weightDecay: weightDecay ?? 0.01,
      rank: rank ?? GALORE_DEFAULTS.rank, updateGap: updateGap ?? GALORE_DEFAULTS.updateGap,
      scale: scale ?? GALORE_DEFAULTS.scale, iterations: iterations ?? GALORE_DEFAULTS.iterations,
    }, rest);
    this.seed = seed ?? 0;
    if (!Number.isSafeInteger(this.seed) || this.seed < 0) throw new StepError(`galore-adamw: seed must be an integer >= 0, got ${seed}`);
  }

  protected checkHyper(h: GaLoreHyper, where: string): void {
    checkAdamHyper(h, where);
    if (!Number.isInteger(h.rank) || h.rank < 0) throw new StepError(`${where}: rank must be an integer >= 0 (0: plain AdamW), got ${h.rank}`);
    if (!Number.isInteger(h.updateGap) || h.updateGap < 1) throw new StepError(`${where}: updateGap must be an integer >= 1, got ${h.updateGap}`);
    if (!(h.scale > 0) || !Number.isFinite(h.scale)) throw new StepError(`${where}: scale must be a finite number > 0, got ${h.scale}`);
    if (!Number.isInteger(h.iterations) || h.iterations < 0) throw new StepError(`${where}: iterations must be an integer >= 0, got ${h.iterations}`);
  }

  override addParamGroup(spec: ParamGroupSpec<GaLoreHyper>): void {
    const rank = spec?.rank ?? this.defaults.rank;
    if (rank > 0 && Array.isArray(spec.params)) {
      for (const p of spec.params) {
        if (p.rank !== 2) throw new StepError(`galore-adamw group ${this.groups.length}: ${p.describe()} is not a matrix; GaLore projects 2-D weights only (put it in a group with rank 0)`);
        if (rank > Math.min(p.shape[0]!, p.shape[1]!)) {
          throw new StepError(`galore-adamw group ${this.groups.length}: rank ${rank} exceeds min(${p.shape.join(', ')}) of ${p.describe()}; use a rank <= ${Math.min(p.shape[0]!, p.shape[1]!)}`);
        }
      }
    }
    super.addParamGroup(spec);
  }

  protected stateNames(h: GaLoreHyper): string[] {
    return h.rank > 0 ? ['m', 'v', 'projector'] : ['m', 'v'];
  }

  protected override stateShape(p: Tensor, name: string, h: GaLoreHyper): readonly number[] {
    if (!(h.rank > 0)) return p.shape;
    const s = galoreStateShapes(p.shape, h.rank);
    return name === 'projector' ? s.projector : s.moments;
  }

  protected update(s: ParamState, inputs: UpdateInputs): void {
    const h = this.groups[s.group]!;
    const m = s.tensors.get('m')!, v = s.tensors.get('v')!;
    if (!(h.rank > 0)) {
      runKernel(adamwKernel, {
        inputs, outputs: { param: s.param, m, v, master: s.master ?? undefined },
        attrs: { lr: h.lr, beta1: h.betas[0], beta2: h.betas[1], eps: h.eps, l2: 0, decay: 1 - h.lr * h.weightDecay, ...stepAttrs(s) },
      });
      return;
    }
    const { grad, status } = inputs;
    const projector = s.tensors.get('projector')!;
    const left = projectionSide(s.param.shape) === 'left';
    const g = grad.dtype === 'f32' ? grad : clone(grad, { dtype: 'f32', category: 'temporary', label: 'galore.grad-f32' });
    let low: Tensor | null = null, back: Tensor | null = null;
    try {
      if ((s.step - 1) % h.updateGap === 0) this.refresh(s, g, status, h);
      low = left ? matmul(projector, g, { transA: true, label: 'galore.low-rank grad' }) : matmul(g, projector, { label: 'galore.low-rank grad' });
      runKernel(projectedAdamKernel, { inputs: { status }, outputs: { lowGrad: low, m, v }, attrs: { beta1: h.betas[0], beta2: h.betas[1], eps: h.eps, ...stepAttrs(s) } });
      back = left ? matmul(projector, low, { label: 'galore.update' }) : matmul(low, projector, { transB: true, label: 'galore.update' });
      runKernel(projectedApplyKernel, {
        inputs: { update: back, status }, outputs: { param: s.param, master: s.master ?? undefined },
        attrs: { lr: h.lr, beta1: h.betas[0], beta2: h.betas[1], scale: h.scale, decay: 1 - h.lr * h.weightDecay, ...stepAttrs(s) },
      });
    } finally {
      low?.dispose();
      back?.dispose();
      if (g !== grad) g.dispose();
    }
  }

  /** Recomputes the projector from the f32 gradient; a step the loss scaler skips keeps the old one. */
  private refresh(s: ParamState, g: Tensor, status: Tensor | undefined, h: GaLoreHyper): void {
    const index = this.states.indexOf(s);
    const refresh = Math.floor((s.step - 1) / h.updateGap);
    const q = topSingularSubspace(g, { rank: h.rank, iterations: h.iterations, seed: refreshSeed(this.seed, index, refresh) });
    try {
      const [rows, cols] = q.shape as [number, number];
      runKernel(projectorCommitKernel, { inputs: { q, status }, outputs: { projector: s.tensors.get('projector')! }, attrs: { rows, cols } });
    } finally {
      q.dispose();
    }
  }
}
