/**
 * `--resume NAME` with flags: the run's saved options (train-config.json) are the base; the flags
 * the user gave either take effect (the keys in RESUME_OVERRIDABLE: schedule, evaluation,
 * checkpointing, logging, device) or are refused with the reason. Nothing given is ignored.
 */
import { StepError } from '../../engine/errors.js';
import type { TrainOptimizer } from './session.js';
import type { TrainerState } from './checkpoint-files.js';
import type { MethodPlan } from './methods.js';
import type { TrainOptions } from './options.js';
import { RESUME_OVERRIDABLE, validateTrainOptions } from './options.js';

/** Options of this process only: they change how this process runs and are not saved. */
const PER_PROCESS: readonly (keyof TrainOptions)[] = ['stopAfter'];

/** Why an option cannot change on resume. */
function whyFixed(key: keyof TrainOptions): string {
  switch (key) {
    case 'method': case 'preset': case 'configOverrides': case 'split': case 'stages': case 'loraRank': case 'loraAlpha': case 'galoreRank':
      return "the checkpoint's model structure comes from it";
    case 'data': case 'vocabSize':
      return 'the tokenizer and the data order come from it';
    case 'seqLen': case 'batchSize': case 'gradAccum': case 'seed':
      return "the sampler's position in the data depends on it";
    case 'precision': case 'beta1': case 'beta2': case 'eps':
      return "the optimizer state in the checkpoint was made with it";
    default:
      return "the run's plan was made with it";
  }
}

/** The command-line flag of an option, e.g. warmupSteps -> --warmup. */
export function flagOf(key: keyof TrainOptions): string {
  const special: Partial<Record<keyof TrainOptions, string>> = { warmupSteps: '--warmup', stageWarmupSteps: '--stage-warmup', configOverrides: '--set' };
  return special[key] ?? `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
}

/** A value as a person would type it: 0.003 -> 3e-3. */
export function formatValue(v: unknown): string {
  if (typeof v === 'number' && !Number.isInteger(v) && Math.abs(v) < 0.01 && v !== 0) return v.toExponential().replace('e+', 'e');
  if (typeof v === 'number' || typeof v === 'string') return String(v);
  return JSON.stringify(v);
}

const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

export interface ResumeChange {
  key: keyof TrainOptions;
  flag: string;
  from: unknown;
  to: unknown;
}

/**
 * The options a resumed run trains with: the saved ones, with the given overridable flags applied.
 * Without `given` (a library call), only the per-process options (stopAfter, device) come from
 * `options`. Throws naming the flag and the reason when a given flag cannot change.
 */
export function resumeOptions(saved: TrainOptions, options: TrainOptions, resumeName: string, given: ReadonlySet<keyof TrainOptions> | undefined): { options: TrainOptions; changes: ResumeChange[] } {
  if (!given) return { options: { ...saved, stopAfter: options.stopAfter, device: options.device }, changes: [] };
  const o: TrainOptions = { ...saved, stopAfter: options.stopAfter };
  const changes: ResumeChange[] = [];
  for (const key of given) {
    if (key === 'runsDir') continue; // where to find the run
    if (key === 'name') {
      if (options.name && options.name !== resumeName) throw new StepError(`step train: --name ${options.name} and --resume ${resumeName} name different runs; give one of them`);
      continue;
    }
    if (same(options[key], saved[key])) continue;
    if (!RESUME_OVERRIDABLE.has(key)) {
      throw new StepError(`step train --resume ${resumeName}: ${flagOf(key)} cannot change on resume (the run has ${formatValue(saved[key])}, given ${formatValue(options[key])}): ${whyFixed(key)}. Drop the flag, or start a new run with --name`);
    }
    (o as unknown as Record<string, unknown>)[key] = options[key];
    if (!PER_PROCESS.includes(key)) changes.push({ key, flag: flagOf(key), from: saved[key], to: options[key] });
  }
  let valid: TrainOptions;
  try {
    valid = validateTrainOptions(o);
  } catch (e) {
    throw new StepError(`--resume ${resumeName}: ${(e as Error).message} (after the overrides ${changes.map((c) => `${c.flag} ${formatValue(c.to)}`).join(', ') || 'none'})`);
  }
  for (const c of changes) {
    // e.g. --steps of a run whose length comes from --stage-tokens
    if (!same(valid[c.key], c.to)) throw new StepError(`step train --resume ${resumeName}: ${c.flag} ${formatValue(c.to)} cannot take effect: the run's other options set it to ${formatValue(valid[c.key])}${c.key === 'steps' && valid.stageTokens ? ' (from --stage-tokens)' : ''}`);
  }
  return { options: valid, changes };
}

/** The train-config.json a resumed run saves: the overrides kept, this process's stop point not. */
export function savedOptions(o: TrainOptions, saved: TrainOptions): TrainOptions {
  return { ...o, stopAfter: saved.stopAfter ?? null };
}

/**
 * Checks that the method's plan under the new options agrees with what the run already did: the
 * checkpoint's step is within the run, and no stage boundary the run has passed (or is in) moves.
 */
export function checkPlanAcceptsResume(before: MethodPlan, after: MethodPlan, state: TrainerState, o: TrainOptions, resumeName: string): void {
  if (o.steps < state.step) {
    throw new StepError(`--resume ${resumeName}: --steps ${o.steps} is below the checkpoint's step ${state.step}; give --steps ${state.step} or more`);
  }
  if (after.stages !== before.stages) {
    throw new StepError(`--resume ${resumeName}: the new options give ${after.stages} stages, the run has ${before.stages}`);
  }
  for (let s = 1; s < after.stages; s++) {
    const was = before.firstStepOfStage(s), now = after.firstStepOfStage(s);
    if (was === now) continue;
    if (state.stage >= s || now <= state.step) {
      throw new StepError(`--resume ${resumeName}: --steps ${o.steps} would move the start of stage ${s + 1} from step ${was} to step ${now}, but the run (at step ${state.step}, stage ${state.stage + 1}) ${state.stage >= s ? 'has already started that stage' : 'is past the new start'}; a STEP stage boundary cannot move once reached. Start a new run, or give --steps that keep it`);
    }
  }
}

/**
 * Puts overridden hyperparameters into an optimizer whose state was just loaded from a
 * checkpoint (loading restores the saved lr, clip and weight decay).
 */
export function applyOptimizerOverrides(optimizer: TrainOptimizer, o: TrainOptions, changes: readonly ResumeChange[]): void {
  const changed = new Set(changes.map((c) => c.key));
  if (changed.has('clip')) optimizer.maxGradNorm = o.clip;
  for (const g of optimizer.groups) {
    if (changed.has('lr')) { g.initialLr = o.lr; g.lr = o.lr; }
    // the no-decay group (norm weights) keeps weight decay 0
    if (changed.has('weightDecay') && g.params.some((p) => p.rank >= 2)) g.weightDecay = o.weightDecay;
  }
}
