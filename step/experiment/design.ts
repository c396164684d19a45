/**
 * The STEP experiment's design: vanilla, STEP with 2 and 3 stages, ReLoRA and GaLore, trained on the
 * same data at equal tokens (same steps, batch, sequence length, learning-rate schedule and seed).
 * The default model is the `small` preset deepened to 8 layers with a 512-token vocabulary, so
 * that decoder layers hold most of the model state (92% of its parameters), as in the paper's
 * models where STEP's savings come from the layers. Sized for ~20 minutes on 2 cores through
 * lavapipe (about 1 s per vanilla step of 1,024 tokens).
 */
import { StepError } from '../../engine/errors.js';
import type { TrainOptions } from '../train/options.js';
import { PRESET_NAMES } from '../../models/config-presets.js';
import type { CommandSpec } from '../cli-args.js';
import { choiceFlag, flagValue, numberValue, parseArgs, valued } from '../cli-args.js';
import { DEFAULT_TRAIN_OPTIONS, parseConfigOverride, validateTrainOptions } from '../train/options.js';
import { NUMBER_RULES } from '../train/validate-options.js';

export type ExperimentMethod = 'vanilla' | 'step2' | 'step3' | 'relora' | 'galore';
export const EXPERIMENT_METHODS: readonly ExperimentMethod[] = ['vanilla', 'step2', 'step3', 'relora', 'galore'];

export interface ExperimentOptions {
  /** Folder of the experiment: runs/ (one folder per run), report.html, summary.json, summary.md. */
  out: string;
  preset: string;
  /** LlamaConfig overrides of the preset (the default deepens `small` to 8 layers). */
  configOverrides: Record<string, unknown>;
  data: string;
  vocabSize: number;
  steps: number;
  batchSize: number;
  seqLen: number;
  lr: number;
  warmupSteps: number;
  evalEvery: number;
  evalBatches: number;
  loraRank: number;
  seed: number;
  device: TrainOptions['device'];
  methods: ExperimentMethod[];
}

export const DEFAULT_EXPERIMENT: Omit<ExperimentOptions, 'out'> = {
  preset: 'small', configOverrides: { num_hidden_layers: 8 }, data: 'brown', vocabSize: 512,
  steps: 300, batchSize: 16, seqLen: 64, lr: 3e-3, warmupSteps: 30, evalEvery: 50, evalBatches: 8,
  loraRank: DEFAULT_TRAIN_OPTIONS.loraRank, seed: 1, device: 'auto', methods: [...EXPERIMENT_METHODS],
};

export const EXPERIMENT_USAGE = `usage: step experiment [options]
  Trains vanilla, STEP (2 and 3 stages), ReLoRA and GaLore at equal tokens, then writes OUT/report.html,
  OUT/summary.json and OUT/summary.md. Rerunning with the same --out reuses finished runs and
  resumes interrupted ones from their last checkpoint.
  --out DIR          experiment folder (default experiments/step-PRESET-TIMESTAMP)
  --preset P         model preset (default small)       --set KEY=VALUE  config override (default num_hidden_layers=8)
  --steps S          optimizer steps of every run (default 300)
  --batch-size B --seq-len T --lr X --warmup W --vocab-size N --lora-rank R --seed S
  --eval-every N --eval-batches N --data D (default brown) --device auto|webgpu|cpu
  --methods LIST     comma-separated subset of ${EXPERIMENT_METHODS.join(',')} (default all)`;

/** Flags that set one option of every run, ranged as `step train` ranges them. */
const NUMBER_FLAGS: Record<string, keyof ExperimentOptions & keyof typeof NUMBER_RULES> = {
  '--steps': 'steps', '--batch-size': 'batchSize', '--seq-len': 'seqLen', '--warmup': 'warmupSteps', '--vocab-size': 'vocabSize',
  '--lora-rank': 'loraRank', '--seed': 'seed', '--eval-every': 'evalEvery', '--eval-batches': 'evalBatches', '--lr': 'lr',
};

const EXPERIMENT_SPEC: CommandSpec = {
  command: 'experiment',
  usage: EXPERIMENT_USAGE,
  flags: [
    ...valued([...Object.keys(NUMBER_FLAGS), '--data', '--out', '--methods'], { '--data': ['brown'] }),
    { name: '--preset', takesValue: true, choices: PRESET_NAMES },
    { name: '--device', takesValue: true, choices: ['auto', 'webgpu', 'cpu'] },
    { name: '--set', takesValue: true, repeatable: true },
  ],
};

function timestamp(): string {
  return new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '').replace('T', '-');
}

/** Parses `step experiment` arguments; `help` is true for --help (print EXPERIMENT_USAGE, run nothing). */
export function parseExperimentArgs(args: readonly string[]): ExperimentOptions & { help?: true } {
  const a = parseArgs(EXPERIMENT_SPEC, args);
  const o: Omit<ExperimentOptions, 'out'> & { out: string | null } = { ...DEFAULT_EXPERIMENT, configOverrides: { ...DEFAULT_EXPERIMENT.configOverrides }, methods: [...DEFAULT_EXPERIMENT.methods], out: null };
  if (a.help) return { ...o, out: '', help: true };
  for (const [flag, key] of Object.entries(NUMBER_FLAGS)) {
    const raw = flagValue(a, flag);
    if (raw !== undefined) (o as unknown as Record<string, unknown>)[key] = numberValue('experiment', flag, raw, NUMBER_RULES[key]);
  }
  const sets = a.values.get('--set');
  if (sets) {
    o.configOverrides = {}; // --set replaces the default overrides
    for (const v of sets) {
      const [key, value] = parseConfigOverride(v, 'experiment');
      if (key in o.configOverrides) throw new StepError(`step experiment: --set ${key} given twice; give it once`);
      o.configOverrides[key] = value;
    }
  }
  const methods = flagValue(a, '--methods');
  if (methods !== undefined) {
    const list = methods.split(',').map((s) => s.trim());
    const bad = list.find((m) => !(EXPERIMENT_METHODS as readonly string[]).includes(m));
    if (bad !== undefined) throw new StepError(`step experiment: --methods takes ${EXPERIMENT_METHODS.join(', ')}; got "${bad}"`);
    o.methods = [...new Set(list)] as ExperimentMethod[];
  }
  o.preset = flagValue(a, '--preset') ?? o.preset;
  o.data = flagValue(a, '--data') ?? o.data;
  o.out = flagValue(a, '--out') ?? null;
  o.device = choiceFlag('experiment', a, '--device', ['auto', 'webgpu', 'cpu'] as const) ?? o.device;
  if (!sets && o.preset !== DEFAULT_EXPERIMENT.preset) o.configOverrides = {}; // the 8-layer default belongs to `small`
  return { ...o, out: o.out ?? `experiments/step-${o.preset}-${timestamp()}` };
}

/**
 * The training options of each run: identical except for the method. ReLoRA warms up full-rank
 * for a quarter of the steps, then merges and restarts every quarter. GaLore projects at rank
 * hidden/4 and refreshes its projectors every sixth of the run (GaLore's T = 200 is for runs of
 * thousands of steps).
 */
export function experimentRuns(e: ExperimentOptions, runsDir: string): TrainOptions[] {
  const quarter = Math.max(1, Math.floor(e.steps / 4));
  const base: TrainOptions = {
    ...DEFAULT_TRAIN_OPTIONS, runsDir, preset: e.preset, configOverrides: { ...e.configOverrides }, data: e.data, vocabSize: e.vocabSize,
    steps: e.steps, batchSize: e.batchSize, seqLen: e.seqLen, lr: e.lr, warmupSteps: e.warmupSteps, evalEvery: e.evalEvery,
    evalBatches: e.evalBatches, loraRank: e.loraRank, seed: e.seed, device: e.device,
    checkpointEvery: quarter, // plus stage boundaries and the end: enough to resume an interrupted experiment
  };
  const byMethod: Record<ExperimentMethod, Partial<TrainOptions>> = {
    vanilla: { name: 'vanilla', method: 'vanilla' },
    step2: { name: 'step-2-stages', method: 'step', stages: 2 },
    step3: { name: 'step-3-stages', method: 'step', stages: 3 },
    relora: { name: 'relora', method: 'relora', reloraWarmStart: quarter, reloraEvery: quarter },
    galore: { name: 'galore', method: 'galore', galoreUpdateGap: Math.max(1, Math.floor(e.steps / 6)) },
  };
  return e.methods.map((m) => validateTrainOptions({ ...base, ...byMethod[m] }));
}
