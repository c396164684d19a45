/**
 * The experiment's runs, as data: one entry per kind of run (a method and its procedure choices)
 * with the comparisons it takes part in. Adding a run (e.g. GaLore once `--method galore` exists)
 * is one line in EXPERIMENT_RUNS. Every run of a seed trains on the same data in the same order
 * (the sampler's seed is the run's seed), with the same model, batch, learning rate and warm-up.
 *
 * Budgets:
 * - `tokens`: every run trains --steps steps (the same tokens as vanilla);
 * - `flops`: the run's steps are chosen so that its training FLOPs (flops.ts) equal vanilla's at
 *   --steps; STEP and ReLoRA get more steps (tokens) than vanilla.
 */
import type { LlamaConfig } from '../../models/config.js';
import { presetConfig } from '../../models/config-presets.js';
import type { TrainOptions } from '../train/options.js';
import { DEFAULT_TRAIN_OPTIONS, validateTrainOptions } from '../train/options.js';
import { CHOICES } from '../train/validate-options.js';
import type { ExperimentOptions } from './design.js';
import { runFlops, stepsForFlops } from './flops.js';

export type Budget = 'tokens' | 'flops';

export interface ExperimentRunSpec {
  /** The name --runs takes and run folders start with. */
  kind: string;
  description: string;
  /** What differs from the shared options (`method` as `step train --method` takes it). */
  options: Partial<Omit<TrainOptions, 'method'>> & { method: string };
  budgets: readonly Budget[];
  /** The run's learning rate as a multiple of --lr (default 1): the check that the shared rate does not favour one method. */
  lrScale?: number;
}

export const EXPERIMENT_RUNS: readonly ExperimentRunSpec[] = [
  { kind: 'vanilla', description: 'vanilla (the reference of both comparisons)', options: { method: 'vanilla' }, budgets: ['tokens'] },
  { kind: 'step2', description: 'STEP K=2, paper defaults', options: { method: 'step', stages: 2 }, budgets: ['tokens', 'flops'] },
  { kind: 'step3', description: 'STEP K=3, paper defaults', options: { method: 'step', stages: 3 }, budgets: ['tokens', 'flops'] },
  { kind: 'relora', description: 'ReLoRA (full-rank warm start, restarts every quarter)', options: { method: 'relora' }, budgets: ['tokens', 'flops'] },
  { kind: 'galore', description: 'GaLore (rank hidden/4, projectors refreshed every sixth of the run)', options: { method: 'galore' }, budgets: ['tokens'] },
  { kind: 'no-pet', description: 'STEP K=2, old layers frozen without adapters (no-PET)', options: { method: 'step', stages: 2, noPet: true }, budgets: ['tokens'] },
  { kind: 'placement-intermediate', description: 'STEP K=2, new layers in the middle', options: { method: 'step', stages: 2, placement: 'intermediate' }, budgets: ['tokens'] },
  { kind: 'placement-lower', description: 'STEP K=2, new layers at the bottom', options: { method: 'step', stages: 2, placement: 'lower' }, budgets: ['tokens'] },
  { kind: 'placement-random', description: 'STEP K=2, new layers at random gaps', options: { method: 'step', stages: 2, placement: 'random' }, budgets: ['tokens'] },
  { kind: 'frozen-embeddings', description: 'STEP K=2, embeddings, norm and head frozen after stage 1', options: { method: 'step', stages: 2, freezeEmbeddings: true }, budgets: ['tokens'] },
  // the shared rate is kept from v1; GaLore (updates scaled by 0.25) beating vanilla hints it is above vanilla's best
  { kind: 'vanilla-lr-third', description: 'vanilla at a third of the learning rate', options: { method: 'vanilla' }, lrScale: 1 / 3, budgets: ['tokens'] },
  { kind: 'step2-lr-third', description: 'STEP K=2 at a third of the learning rate', options: { method: 'step', stages: 2 }, lrScale: 1 / 3, budgets: ['tokens'] },
];

/** The kinds whose method `step train` offers (GaLore's entry waits for its method). */
export function availableKinds(): string[] {
  return EXPERIMENT_RUNS.filter((r) => (CHOICES.method as readonly string[]).includes(r.options.method)).map((r) => r.kind);
}

export interface ExperimentRun {
  kind: string;
  budget: Budget;
  seed: number;
  /** Run folder name: KIND[-eqflops]-seedS. */
  name: string;
  options: TrainOptions;
}

/** The target model of the experiment (vocab_size: the tokenizer's, --vocab-size). */
export function experimentTarget(e: ExperimentOptions): LlamaConfig {
  return presetConfig(e.preset, { ...e.configOverrides, vocab_size: e.vocabSize } as Partial<LlamaConfig>);
}

/**
 * Every run's training options, checked as `step train` checks them: per seed, per kind, per
 * budget. ReLoRA warms up full-rank for a quarter of its steps, then merges and restarts every quarter;
 * GaLore projects at rank hidden/4 and refreshes every sixth of its steps.
 */
export function experimentRuns(e: ExperimentOptions, runsDir: string): ExperimentRun[] {
  const target = experimentTarget(e);
  const make = (spec: ExperimentRunSpec, seed: number, steps: number): TrainOptions => {
    const quarter = Math.max(1, Math.floor(steps / 4));
    const base: TrainOptions = {
      ...DEFAULT_TRAIN_OPTIONS, runsDir, preset: e.preset, configOverrides: { ...e.configOverrides }, data: e.data, vocabSize: e.vocabSize,
      steps, batchSize: e.batchSize, seqLen: e.seqLen, lr: e.lr, warmupSteps: e.warmupSteps, evalEvery: e.evalEvery,
      evalBatches: e.evalBatches, loraRank: e.loraRank, seed, device: e.device,
      checkpointEvery: quarter, // plus stage boundaries and the end: enough to resume an interrupted experiment
    };
    const o = { ...base, ...(spec.options as Partial<TrainOptions>), ...(spec.lrScale ? { lr: base.lr * spec.lrScale } : {}) };
    if (o.method === 'relora') Object.assign(o, { reloraWarmStart: quarter, reloraEvery: quarter });
    // GaLore's T = 200 is for runs of thousands of steps: refresh the projectors every sixth of the run
    if (o.method === 'galore') Object.assign(o, { galoreUpdateGap: Math.max(1, Math.floor(steps / 6)) });
    return o;
  };
  const specs = e.runs.map((k) => EXPERIMENT_RUNS.find((r) => r.kind === k)!);
  const vanillaFlops = runFlops(make(EXPERIMENT_RUNS[0]!, e.seeds[0]!, e.steps), target);
  // kind by kind, each over every seed: an interrupted experiment has the spread of its first kinds
  // (vanilla, STEP K=2 and K=3 first) rather than one seed of everything
  const out: ExperimentRun[] = [];
  for (const spec of specs) {
    for (const budget of spec.budgets) {
      for (const seed of e.seeds) {
        const steps = budget === 'tokens' ? e.steps : stepsForFlops(vanillaFlops, (s) => make(spec, seed, s), target, e.steps);
        const name = `${spec.kind}${budget === 'flops' ? '-eqflops' : ''}-seed${seed}`;
        out.push({ kind: spec.kind, budget, seed, name, options: validateTrainOptions({ ...make(spec, seed, steps), name }) });
      }
    }
  }
  return out;
}
