/**
 * Learning-rate schedules: pure functions of the (0-based) optimizer step that return a multiplier
 * of each group's initial lr (apply it with `optimizer.setLrScale(schedule(step))`).
 */
import { StepError } from '../errors.js';

export type LrSchedule = (step: number) => number;

function checkInt(value: number, what: string, op: string, min = 0): number {
  if (!Number.isSafeInteger(value) || value < min) throw new StepError(`${op}: ${what} must be an integer >= ${min}, got ${value}`);
  return value;
}

function checkRatio(value: number, op: string): number {
  if (!(value >= 0 && value <= 1)) throw new StepError(`${op}: minRatio must be in [0, 1], got ${value}`);
  return value;
}

function checkStep(step: number, op: string): void {
  if (!Number.isSafeInteger(step) || step < 0) throw new StepError(`${op}: step must be an integer >= 0, got ${step}`);
}

/** Always 1. */
export function constantSchedule(): LrSchedule {
  return (step) => {
    checkStep(step, 'constantSchedule');
    return 1;
  };
}

/** m + (1 - m) * (1 + cos(pi * progress)) / 2, progress clamped to [0, 1]. */
function cosineWithFloor(progress: number, minRatio: number): number {
  const p = Math.min(1, Math.max(0, progress));
  return minRatio + (1 - minRatio) * 0.5 * (1 + Math.cos(Math.PI * p));
}

export interface WarmupCosineOptions {
  /** Linear warm-up from 0: the multiplier is step / warmupSteps below it. */
  warmupSteps: number;
  /** Step at which the cosine reaches the floor (and stays there). */
  totalSteps: number;
  /** The floor, as a fraction of the initial lr (default 0). */
  minRatio?: number;
}

/** Linear warm-up, then cosine decay to `minRatio` at `totalSteps` (the Hugging Face shape, with a floor). */
export function warmupCosineSchedule(options: WarmupCosineOptions): LrSchedule {
  const op = 'warmupCosineSchedule';
  const w = checkInt(options.warmupSteps, 'warmupSteps', op);
  const total = checkInt(options.totalSteps, 'totalSteps', op, w + 1);
  const m = checkRatio(options.minRatio ?? 0, op);
  return (step) => {
    checkStep(step, op);
    if (step < w) return step / w;
    return cosineWithFloor((step - w) / (total - w), m);
  };
}

export interface JaggedCosineOptions {
  /** W1: linear warm-up from 0 at the start of training. */
  firstWarmupSteps: number;
  /** R: a restart (optimizer reset in ReLoRA) happens every R steps. */
  restartEvery: number;
  /** Wr: after each restart the lr climbs linearly from 0 back to the cosine curve over Wr steps. */
  restartWarmupSteps: number;
  /** T: the cosine reaches the floor here. */
  totalSteps: number;
  /** m: the floor, as a fraction of the initial lr (ReLoRA uses 0.1). */
  minRatio: number;
}

/**
 * ReLoRA's jagged cosine: with c(s) = cosine from W1 to T with floor m,
 *   s < W1:                          s / W1
 *   s >= R and (s mod R) < Wr:       (s mod R) / Wr * c(floor(s / R) * R + Wr)
 *   otherwise:                       c(s)
 */
export function jaggedCosineSchedule(options: JaggedCosineOptions): LrSchedule {
  const op = 'jaggedCosineSchedule';
  const w1 = checkInt(options.firstWarmupSteps, 'firstWarmupSteps', op);
  const r = checkInt(options.restartEvery, 'restartEvery', op, 1);
  const wr = checkInt(options.restartWarmupSteps, 'restartWarmupSteps', op);
  if (wr > r) throw new StepError(`${op}: restartWarmupSteps (${wr}) must not exceed restartEvery (${r})`);
  const total = checkInt(options.totalSteps, 'totalSteps', op, w1 + 1);
  const m = checkRatio(options.minRatio, op);
  const cosine = (s: number) => cosineWithFloor((s - w1) / (total - w1), m);
  return (step) => {
    checkStep(step, op);
    if (step < w1) return step / w1;
    const inCycle = step % r;
    if (step >= r && inCycle < wr) return (inCycle / wr) * cosine(step - inCycle + wr);
    return cosine(step);
  };
}
