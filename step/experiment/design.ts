/**
 * The STEP experiment's options: the target model, the shared training settings, the seeds, the
 * runs (runs.ts: vanilla, STEP K=2 and K=3, ReLoRA, the ablations at K=2, GaLore when available),
 * and the held-out tokens of each run's final evaluation.
 *
 * The default target is the `small` preset made deep and narrow: 12 layers of hidden 64 (4 heads
 * of 16, MLP 172) with a 512-token vocabulary, so that decoder layers hold 90% of the parameters
 * (as in the paper's models, where STEP's savings come from the layers) and a stage is several
 * layers (K=2: 6+6, K=3: 4+4+4). It trains 300 steps of 16 x 64 tokens, as the 8-layer v1
 * experiment did (which reached perplexity 69 against a unigram 197): a first v2 design of 120
 * steps at hidden 128 ended at perplexity 194, no better than unigram, so hidden was traded for
 * steps. On a loaded 2-core machine a step of hidden 64 took 0.65x the time of hidden 128.
 * `--set hidden_size=256 --set intermediate_size=688 ...` is the wider target (hours). `--smoke`
 * is a seconds-per-run version of the same experiment (tiny model, 2 seeds) that the suite runs.
 */
import { StepError } from '../../engine/errors.js';
import type { TrainOptions } from '../train/options.js';
import { PRESET_NAMES } from '../../models/config-presets.js';
import type { CommandSpec } from '../cli-args.js';
import { choiceFlag, flagValue, hasFlag, numberValue, parseArgs, valued } from '../cli-args.js';
import { DEFAULT_TRAIN_OPTIONS, parseConfigOverride } from '../train/options.js';
import { NUMBER_RULES } from '../train/validate-options.js';
import { availableKinds, EXPERIMENT_RUNS } from './runs.js';

export interface ExperimentOptions {
  /** Folder of the experiment: runs/ (one folder per run), report.html, summary.json, summary.md. */
  out: string;
  preset: string;
  /** LlamaConfig overrides of the preset. */
  configOverrides: Record<string, unknown>;
  data: string;
  vocabSize: number;
  /** Steps of vanilla (and of every run compared at equal tokens). */
  steps: number;
  batchSize: number;
  seqLen: number;
  lr: number;
  warmupSteps: number;
  evalEvery: number;
  evalBatches: number;
  loraRank: number;
  /** Every run is trained once per seed (initialisation and data order). */
  seeds: number[];
  device: TrainOptions['device'];
  /** Kinds of run (runs.ts), in order. */
  runs: string[];
  /** Held-out tokens of each run's final evaluation (of its plain final model). */
  finalEvalTokens: number;
  /** --finished-only: train nothing, summarise the runs that have finished. */
  finishedOnly?: boolean;
}

export const DEFAULT_EXPERIMENT: Omit<ExperimentOptions, 'out'> = {
  preset: 'small', configOverrides: { num_hidden_layers: 12, hidden_size: 64, intermediate_size: 172, num_attention_heads: 4, num_key_value_heads: 4 },
  data: 'brown', vocabSize: 512, steps: 300, batchSize: 16, seqLen: 64, lr: 3e-3, warmupSteps: 30, evalEvery: 100, evalBatches: 8,
  loraRank: DEFAULT_TRAIN_OPTIONS.loraRank, seeds: [1, 2, 3], device: 'auto', runs: availableKinds(), finalEvalTokens: 102_400,
};

/** `--smoke`: the same experiment at a size that runs in a minute on the cpu backend. */
export const SMOKE_EXPERIMENT: Omit<ExperimentOptions, 'out'> = {
  ...DEFAULT_EXPERIMENT, preset: 'tiny', vocabSize: 300, steps: 8, batchSize: 4, seqLen: 16, warmupSteps: 1, evalEvery: 4, evalBatches: 2,
  configOverrides: { hidden_size: 32, intermediate_size: 48, num_hidden_layers: 4, num_attention_heads: 2, num_key_value_heads: 2, max_position_embeddings: 64 },
  loraRank: 4, seeds: [1, 2], finalEvalTokens: 512, device: 'cpu',
};

export const EXPERIMENT_USAGE = `usage: step experiment [options]
  Trains every run (below) once per seed, evaluates each final model on --final-eval-tokens
  held-out tokens, then writes OUT/report.html, OUT/summary.json and OUT/summary.md (mean and
  standard deviation over the seeds). Rerunning with the same --out reuses finished runs and
  resumes interrupted ones from their last checkpoint.
  --out DIR          experiment folder (default experiments/step-PRESET-TIMESTAMP)
  --smoke            a tiny version of the whole experiment (seconds per run, 2 seeds); flags still override
  --finished-only    train nothing: summary and report of the runs finished so far (e.g. while the
                     experiment still runs in another process), naming the others
  --preset P         model preset (default small)   --set KEY=VALUE  config override (default: 12 layers of hidden 64)
  --steps S          steps of vanilla and of every run at equal tokens (default ${DEFAULT_EXPERIMENT.steps}); runs at equal
                     FLOPs get the steps that match vanilla's training FLOPs
  --seeds 1,2,3      seeds (default 1,2,3)          --final-eval-tokens N (default ${DEFAULT_EXPERIMENT.finalEvalTokens})
  --batch-size B --seq-len T --lr X --warmup W --vocab-size N --lora-rank R
  --eval-every N --eval-batches N --data D (default brown) --device auto|webgpu|cpu
  --runs LIST        comma-separated subset of ${EXPERIMENT_RUNS.map((r) => r.kind).join(',')}
                     (default: all whose method step train offers)`;

/** Flags that set one option of every run, ranged as `step train` ranges them. */
const NUMBER_FLAGS: Record<string, keyof ExperimentOptions & keyof typeof NUMBER_RULES> = {
  '--steps': 'steps', '--batch-size': 'batchSize', '--seq-len': 'seqLen', '--warmup': 'warmupSteps', '--vocab-size': 'vocabSize',
  '--lora-rank': 'loraRank', '--eval-every': 'evalEvery', '--eval-batches': 'evalBatches', '--lr': 'lr',
};

const EXPERIMENT_SPEC: CommandSpec = {
  command: 'experiment',
  usage: EXPERIMENT_USAGE,
  flags: [
    ...valued([...Object.keys(NUMBER_FLAGS), '--data', '--out', '--runs', '--seeds', '--final-eval-tokens'], { '--data': ['brown'] }),
    { name: '--preset', takesValue: true, choices: PRESET_NAMES },
    { name: '--device', takesValue: true, choices: ['auto', 'webgpu', 'cpu'] },
    { name: '--set', takesValue: true, repeatable: true },
    { name: '--smoke', takesValue: false },
    { name: '--finished-only', takesValue: false },
  ],
};

function timestamp(): string {
  return new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '').replace('T', '-');
}

function list(flag: string, raw: string): string[] {
  const items = raw.split(',').map((s) => s.trim());
  if (items.some((s) => s === '')) throw new StepError(`step experiment: ${flag} takes a comma-separated list, got ${JSON.stringify(raw)}`);
  return [...new Set(items)];
}

/** Parses `step experiment` arguments; `help` is true for --help (print EXPERIMENT_USAGE, run nothing). */
export function parseExperimentArgs(args: readonly string[]): ExperimentOptions & { help?: true } {
  const a = parseArgs(EXPERIMENT_SPEC, args);
  const defaults = hasFlag(a, '--smoke') ? SMOKE_EXPERIMENT : DEFAULT_EXPERIMENT;
  const o: Omit<ExperimentOptions, 'out'> & { out: string | null } = { ...defaults, configOverrides: { ...defaults.configOverrides }, runs: [...defaults.runs], seeds: [...defaults.seeds], out: null };
  if (a.help) return { ...o, out: '', help: true };
  for (const [flag, key] of Object.entries(NUMBER_FLAGS)) {
    const raw = flagValue(a, flag);
    if (raw !== undefined) (o as unknown as Record<string, unknown>)[key] = numberValue('experiment', flag, raw, NUMBER_RULES[key]);
  }
  const finalTokens = flagValue(a, '--final-eval-tokens');
  if (finalTokens !== undefined) o.finalEvalTokens = numberValue('experiment', '--final-eval-tokens', finalTokens, { integer: true, min: 1 });
  const seeds = flagValue(a, '--seeds');
  if (seeds !== undefined) o.seeds = list('--seeds', seeds).map((s) => numberValue('experiment', '--seeds', s, NUMBER_RULES.seed));
  const sets = a.values.get('--set');
  if (sets) {
    o.configOverrides = {}; // --set replaces the default overrides
    for (const v of sets) {
      const [key, value] = parseConfigOverride(v, 'experiment');
      if (key in o.configOverrides) throw new StepError(`step experiment: --set ${key} given twice; give it once`);
      o.configOverrides[key] = value;
    }
  }
  const runs = flagValue(a, '--runs');
  if (runs !== undefined) {
    const kinds = list('--runs', runs);
    const known = EXPERIMENT_RUNS.map((r) => r.kind), available = availableKinds();
    const bad = kinds.find((k) => !known.includes(k));
    if (bad !== undefined) throw new StepError(`step experiment: --runs takes ${known.join(', ')}; got "${bad}"`);
    const missing = kinds.find((k) => !available.includes(k));
    if (missing !== undefined) throw new StepError(`step experiment: --runs ${missing} needs --method ${EXPERIMENT_RUNS.find((r) => r.kind === missing)!.options.method}, which step train does not offer yet`);
    if (!kinds.includes('vanilla')) throw new StepError('step experiment: --runs must include vanilla, the reference of every comparison');
    o.runs = kinds;
  }
  if (hasFlag(a, '--finished-only')) o.finishedOnly = true;
  o.preset = flagValue(a, '--preset') ?? o.preset;
  o.data = flagValue(a, '--data') ?? o.data;
  o.out = flagValue(a, '--out') ?? null;
  o.device = choiceFlag('experiment', a, '--device', ['auto', 'webgpu', 'cpu'] as const) ?? o.device;
  if (!sets && o.preset !== defaults.preset) o.configOverrides = {}; // the default overrides belong to the default preset
  return { ...o, out: o.out ?? `experiments/step-${o.preset}-${timestamp()}` };
}
