/**
 * Optimizer state resets for a subset of parameters, as ReLoRA does at each restart: zero the
 * state, zero a random fraction p of it, or keep only the largest (1 - p) fraction by magnitude.
 */
import { fillInPlace, rand } from '../creation.js';
import { StepError } from '../errors.js';
import type { Generator } from '../random.js';
import { defaultGenerator } from '../random.js';
import { runKernel } from '../registry.js';
import { pruneRandomKernel, pruneThresholdKernel } from './kernels.js';
import type { Tensor } from '../tensor.js';

export type ResetMode = 'zero' | 'random' | 'magnitude';

export interface ResetOptions {
  /** 'zero' (default): all state to 0; 'random': each element to 0 with probability p; 'magnitude': zero |x| <= the p-quantile of |x|. */
  mode?: ResetMode;
  /** Pruning fraction for 'random' and 'magnitude', in [0, 1]. */
  p?: number;
  /** Random stream for 'random' (default: the default generator). */
  generator?: Generator;
  /** Also restart the step count (Adam bias correction, SGD's first-step rule). Default false. */
  resetStep?: boolean;
}

/**
 * The q-quantile of `sorted` (ascending) with linear interpolation between neighbours
 * (numpy's and torch.quantile's default).
 */
export function quantileSorted(sorted: ArrayLike<number>, q: number): number {
  const n = sorted.length;
  if (n === 0) throw new StepError('quantileSorted: empty input');
  const pos = q * (n - 1);
  const lo = Math.floor(pos);
  const hi = Math.min(n - 1, lo + 1);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

export function checkResetOptions(options: ResetOptions, op: string): Required<Omit<ResetOptions, 'generator'>> & { generator: Generator } {
  const mode = options.mode ?? 'zero';
  if (mode !== 'zero' && mode !== 'random' && mode !== 'magnitude') throw new StepError(`${op}: unknown reset mode ${JSON.stringify(mode)}; valid: zero, random, magnitude`);
  const p = options.p ?? (mode === 'zero' ? 1 : NaN);
  if (!(p >= 0 && p <= 1)) throw new StepError(`${op}: mode '${mode}' needs a pruning fraction p in [0, 1], got ${options.p}`);
  return { mode, p, generator: options.generator ?? defaultGenerator, resetStep: options.resetStep ?? false };
}

/** Resets one f32 state tensor in place (on its device; 'magnitude' reads it back to find the threshold). */
export async function resetStateTensor(t: Tensor, mode: ResetMode, p: number, generator: Generator): Promise<void> {
  if (mode === 'zero' || p === 1) {
    fillInPlace(t, 0);
  } else if (p === 0 || t.size === 0) {
    // nothing to prune
  } else if (mode === 'random') {
    const draws = rand(t.shape, { device: t.backend, generator, label: 'reset draws' });
    try {
      runKernel(pruneRandomKernel, { inputs: { draws }, outputs: { state: t }, attrs: { p } });
    } finally {
      draws.dispose();
    }
  } else {
    const mags = Float32Array.from(await t.toArray(), Math.abs).sort();
    runKernel(pruneThresholdKernel, { inputs: {}, outputs: { state: t }, attrs: { threshold: quantileSorted(mags, p) } });
  }
}
