/**
 * When STEP's stages start and how their learning rate runs (`--stage-timing`):
 *
 * - `equal` (default): stage i runs its share of the run: `--stage-tokens` T_i (round(T_i / tokens
 *   per step) steps), else --steps split into K equal shares (rounded at the boundaries). One
 *   warm-up + cosine schedule spans the whole run (--warmup, --steps), and every later stage
 *   ramps its multiplier up again over --stage-warmup steps after growth.
 * - `paper` (as the paper's procedure is summarised: growth once 75% of a stage's planned steps
 *   are done): stage i has a planned length P_i and a warm-up + cosine schedule of its own over
 *   P_i steps (warm-up --warmup in stage 1, --stage-warmup in later stages; the cosine ends at
 *   --min-lr-ratio); stages 1..K-1 are cut, and the model grown, after round(0.75 P_i) steps; the
 *   last stage runs its whole plan. P_i comes from --stage-tokens when given (then --steps is
 *   the sum of the cut lengths), else every stage plans P = round(--steps / (0.75 (K-1) + 1))
 *   steps and the last one plans what remains of --steps.
 *
 * A stage that would get no step is refused (before anything is created), naming the flags.
 */
import { warmupCosineSchedule } from '../../engine/optim/schedules.js';
import type { LrSchedule } from '../../engine/optim/schedules.js';
import { UsageError } from '../cli-args.js';

export type StageTiming = 'equal' | 'paper';
export const STAGE_TIMINGS: readonly StageTiming[] = ['equal', 'paper'];
/** The paper's rule: a stage grows once this fraction of its planned steps is done. */
export const PAPER_GROWTH_FRACTION = 0.75;

export interface StageTimingOptions {
  steps: number;
  stageTokens: number[] | null;
  stageTiming: StageTiming;
  batchSize: number;
  seqLen: number;
  gradAccum: number;
  warmupSteps: number;
  stageWarmupSteps: number;
  minLrRatio: number;
}

export interface StageSchedule {
  timing: StageTiming;
  /** Steps each stage trains. */
  steps: number[];
  /** The first step of each stage (0 for stage 1). */
  starts: number[];
  /** `paper`: each stage's planned length (its schedule's); `equal`: the steps themselves. */
  planned: number[];
  /** Steps of the whole run: the sum of `steps`. */
  total: number;
}

const fail = (message: string): never => { throw new UsageError(`step train: ${message}`); };

/** The stage lengths for K stages (see the file comment); refuses stages of 0 steps. */
export function stageSchedule(o: StageTimingOptions, K: number): StageSchedule {
  const perStep = o.batchSize * o.seqLen * o.gradAccum;
  const fromTokens = o.stageTokens ? o.stageTokens.map((t) => Math.round(t / perStep)) : null;
  if (fromTokens && fromTokens.length !== K) fail(`--stage-tokens gives ${fromTokens.length} stages but the split has ${K}`);
  let steps: number[], planned: number[];
  if (o.stageTiming === 'paper') {
    const cut = (p: number) => Math.round(PAPER_GROWTH_FRACTION * p);
    if (fromTokens) {
      planned = fromTokens;
    } else {
      const P = Math.round(o.steps / (PAPER_GROWTH_FRACTION * (K - 1) + 1));
      planned = Array.from({ length: K }, () => P);
      planned[K - 1] = o.steps - (K - 1) * cut(P);
    }
    steps = planned.map((p, i) => (i < K - 1 ? cut(p) : p));
  } else {
    steps = fromTokens ?? Array.from({ length: K }, (_, s) => Math.round(((s + 1) * o.steps) / K) - Math.round((s * o.steps) / K));
    planned = steps;
  }
  const empty = steps.findIndex((n) => n < 1);
  if (empty >= 0) {
    fail(fromTokens
      ? `--stage-tokens: stage ${empty + 1} gets ${steps[empty]} steps of ${perStep} tokens${o.stageTiming === 'paper' ? ` (${PAPER_GROWTH_FRACTION * 100}% of its planned ${planned[empty]})` : ''}; give every stage at least one step's tokens`
      : `--steps ${o.steps} leaves stage ${empty + 1} of ${K} with no step (${o.stageTiming} timing: [${steps.join(', ')}]); give more --steps or fewer --stages`);
  }
  const starts = steps.map((_, s) => steps.slice(0, s).reduce((a, b) => a + b, 0));
  return { timing: o.stageTiming, steps, starts, planned, total: steps.reduce((a, b) => a + b, 0) };
}

/**
 * The learning-rate multiplier of every step: `equal`: the run's warm-up + cosine with a ramp
 * after each growth; `paper`: each stage's own warm-up + cosine over its planned length.
 * Refuses a `paper` stage whose planned length is not above its warm-up.
 */
export function stageLrSchedule(o: StageTimingOptions, s: StageSchedule): (step: number, stage: number) => number {
  if (s.timing === 'paper') {
    const schedules: LrSchedule[] = s.planned.map((p, i) => {
      const warm = i === 0 ? o.warmupSteps : o.stageWarmupSteps;
      if (warm >= p) fail(`--stage-timing paper: stage ${i + 1} plans ${p} steps, not more than its warm-up ${i === 0 ? '--warmup' : '--stage-warmup'} ${warm}; lower the warm-up or give more --steps`);
      return warmupCosineSchedule({ warmupSteps: warm, totalSteps: p, minRatio: o.minLrRatio });
    });
    return (step, stage) => schedules[stage]!(step - s.starts[stage]!);
  }
  const global = warmupCosineSchedule({ warmupSteps: o.warmupSteps, totalSteps: o.steps, minRatio: o.minLrRatio });
  return (step, stage) => {
    const ramp = stage > 0 && o.stageWarmupSteps > 0 ? Math.min(1, (step - s.starts[stage]! + 1) / o.stageWarmupSteps) : 1;
    return global(step) * ramp;
  };
}
