import type { Precision } from '../../engine/optim/optimizer.js';
import type { GrowthOperator, Placement } from '../growth.js';
import type { StageTiming } from './stage-schedule.js';
import { PRESET_NAMES } from '../../models/config-presets.js';
import type { CommandSpec } from '../cli-args.js';
import { numberValue, parseArgs, parseSize, UsageError } from '../cli-args.js';
import { CHOICES, checkConfigOverride, checkRunName, NUMBER_RULES, OPTION_FLAG, validateOptionValues, validateTrainOptions } from './validate-options.js';

export { validateTrainOptions } from './validate-options.js';

/** Everything a training run is made of; written to runs/NAME/train-config.json at the start. */
export interface TrainOptions {
  /** Run folder name under `runsDir` (default: a timestamp). */
  name: string;
  runsDir: string;
  method: 'vanilla' | 'step' | 'relora' | 'galore';
  preset: string;
  /** Overrides of the preset's LlamaConfig keys (e.g. num_hidden_layers). */
  configOverrides: Record<string, unknown>;
  /** 'brown' (the built-in corpus) or a path to a .txt file, a folder of them, or a token shard (.bin). */
  data: string;
  vocabSize: number;
  seqLen: number;
  batchSize: number;
  gradAccum: number;
  /** Optimizer steps of the whole run (all stages together for STEP). */
  steps: number;
  lr: number;
  minLrRatio: number;
  warmupSteps: number;
  weightDecay: number;
  beta1: number;
  beta2: number;
  eps: number;
  clip: number;
  evalEvery: number;
  evalBatches: number;
  checkpointEvery: number;
  logEvery: number;
  seed: number;
  precision: Precision;
  device: 'auto' | 'webgpu' | 'cpu';
  /** STEP: stage sizes (n_1..n_K) or the planner's split for `stages` stages. */
  split: number[] | null;
  stages: number;
  loraRank: number;
  loraAlpha: number;
  /** Dropout on the LoRA adapters' inputs while training (PEFT's lora_dropout). */
  loraDropout: number;
  /** STEP: tokens per stage (its length); default: the run's steps split equally among the stages. */
  stageTokens: number[] | null;
  /** STEP: ReLoRA inside the LoRA stages: merge, re-initialise and prune the adapters every N steps (0 = off). */
  stageReloraEvery: number;
  /** STEP: warm-up steps at the start of each later stage (the LR restarts after growth). */
  stageWarmupSteps: number;
  /** STEP: how new layers are made (`interpolation-mean`, the paper's) and where they go (`upper`, the paper's best). */
  growthOperator: GrowthOperator;
  placement: Placement;
  /** STEP, the paper's no-PET ablation: old layers frozen without adapters. */
  noPet: boolean;
  /** STEP: embeddings, final norm and LM head freeze with the old layers after stage 1 (default: they keep training). */
  freezeEmbeddings: boolean;
  /** STEP: at a boundary, parameters that keep training keep their Adam state (`keep`) or start afresh (`reset`). */
  stageOptimizer: 'keep' | 'reset';
  /** STEP: stage lengths and LR schedules (see stage-schedule.ts): `equal` shares of one schedule, or the paper's per-stage rule. */
  stageTiming: StageTiming;
  /** ReLoRA: merge-and-restart period (steps) and full-rank warm start (steps). */
  reloraEvery: number;
  reloraWarmStart: number;
  /** GaLore: projection rank (null: hidden/4, capped by the smallest linear side), projector refresh period T (steps), scale alpha. */
  galoreRank: number | null;
  galoreUpdateGap: number;
  galoreScale: number;
  /** Activation checkpointing: each decoder block recomputed in backward (same math, fewer activation bytes). */
  checkpointActivations: boolean;
  /** Stop after this many steps in this process (a test's way to interrupt a run). */
  stopAfter: number | null;
}

export const DEFAULT_TRAIN_OPTIONS: TrainOptions = {
  name: '', runsDir: 'runs', method: 'vanilla', preset: 'tiny', configOverrides: {}, data: 'brown',
  vocabSize: 1024, seqLen: 64, batchSize: 16, gradAccum: 1, steps: 600, lr: 3e-3, minLrRatio: 0.1,
  warmupSteps: 30, weightDecay: 0.1, beta1: 0.9, beta2: 0.95, eps: 1e-8, clip: 1, evalEvery: 200,
  evalBatches: 8, checkpointEvery: 200, logEvery: 1, seed: 1, precision: 'fp32', device: 'auto',
  split: null, stages: 2, loraRank: 8, loraAlpha: 16, loraDropout: 0, stageTokens: null, stageReloraEvery: 0, stageWarmupSteps: 10, reloraEvery: 100, reloraWarmStart: 50,
  galoreRank: null, galoreUpdateGap: 200, galoreScale: 0.25,
  growthOperator: 'interpolation-mean', placement: 'upper', noPet: false, freezeEmbeddings: false, stageOptimizer: 'keep', stageTiming: 'equal',
  checkpointActivations: false, stopAfter: null,
};

/**
 * The options a resumed run may change (`step train --resume NAME --steps 2000`): the schedule's
 * length and shape, evaluation, checkpoint and log periods, clipping, weight decay, the stop point
 * and the device. Everything else (model, data, method, batch) is the run's and is refused with
 * --resume, so that no flag is silently ignored. The trainer applies exactly these.
 */
export const RESUME_OVERRIDABLE: ReadonlySet<keyof TrainOptions> = new Set<keyof TrainOptions>([
  'steps', 'lr', 'minLrRatio', 'warmupSteps', 'evalEvery', 'evalBatches', 'checkpointEvery', 'logEvery',
  'clip', 'weightDecay', 'stopAfter', 'device', 'checkpointActivations',
]);

/** Options that are switches (a flag without a value sets them true). */
const SWITCHES: ReadonlySet<keyof TrainOptions> = new Set<keyof TrainOptions>(['checkpointActivations', 'noPet', 'freezeEmbeddings']);

/** `--flag` -> option key, for every option that takes a value (all but configOverrides, which is --set, and the switches). */
const FLAG_KEY: ReadonlyMap<string, keyof TrainOptions> = new Map(
  (Object.entries(OPTION_FLAG) as [keyof TrainOptions, string][]).filter(([k]) => k !== 'configOverrides' && !SWITCHES.has(k)).map(([k, f]) => [f, k]),
);

export const TRAIN_USAGE = `usage: step train [options]     (no options: the tiny preset on the Brown corpus)
  options take --flag value or --flag=value; --help prints this
  --name NAME            run folder RUNS_DIR/NAME (default: a timestamp); a plain name, no '/'
  --runs-dir DIR         folder of the runs (default runs)
  --overwrite            replace an existing run folder of the same name (default: refuse)
  --method M             vanilla | step | relora | galore (default vanilla)
  --preset P             ${PRESET_NAMES.join(' | ')} (see step presets)
  --set KEY=VALUE        override a LlamaConfig key (e.g. --set num_hidden_layers=6); vocab_size comes from --vocab-size
  --data D               brown | FILE.txt | FOLDER | FILE.bin (llm.c token shard)
  --vocab-size N --seq-len T (at most max_position_embeddings) --batch-size B --grad-accum A --steps S
  --lr X --min-lr-ratio R --warmup W --weight-decay D --beta1 B1 --beta2 B2 --eps E (> 0) --clip C (0: off)
  --eval-every N --eval-batches N --checkpoint-every N --log-every N --seed S --stop-after N
  --precision fp32|mixed --device auto|webgpu|cpu
  --checkpoint-activations   recompute each decoder block in backward: same gradients, far fewer activation bytes
  --memory-limit SIZE    refuse, before allocating the model, a run whose model state (planner, engine mode)
                         exceeds SIZE (bytes, or 6GB, 5.5GiB, ...); activations beyond it stop the step with
                         the out-of-memory error, the last checkpoint kept. Not saved with the run
  STEP:   --stages K | --split 2,1,1   --stage-tokens T1,T2,..   --lora-rank R --lora-alpha A --lora-dropout P
          --stage-warmup W   --stage-relora-every N (ReLoRA restarts of the adapters inside each LoRA stage)
          --growth interpolation-mean|stack|function-preserving   --placement upper|intermediate|lower|random
          --no-pet (old layers frozen without adapters)   --freeze-embeddings (embeddings, norm, head freeze after stage 1)
          --stage-optimizer keep|reset (Adam state of what trains on across a boundary; default keep)
          --stage-timing equal|paper (equal shares of one schedule; paper: each stage its own warm-up + cosine,
                                      grown at 75% of its planned steps)
  ReLoRA: --relora-every N --relora-warm-start N --lora-rank R --lora-alpha A --lora-dropout P
          --stage-warmup W (warm-up after each restart)
  GaLore: --galore-rank R (default hidden/4) --galore-update-gap T (default 200) --galore-scale S (default 0.25)
  Flags a method would ignore are refused (e.g. --stages with --method vanilla).
  --resume NAME          continue the run RUNS_DIR/NAME from its latest checkpoint with its saved settings;
                         only these may be given with it and take effect:
                         ${[...RESUME_OVERRIDABLE].map((k) => OPTION_FLAG[k]).join(' ')} (and --runs-dir)`;

const TRAIN_SPEC: CommandSpec = {
  command: 'train',
  usage: TRAIN_USAGE,
  flags: [
    ...[...FLAG_KEY].map(([name, key]) => ({
      name, takesValue: true,
      ...(key === 'preset' ? { choices: PRESET_NAMES } : key in CHOICES ? { choices: CHOICES[key as keyof typeof CHOICES] } : key === 'data' ? { choices: ['brown'] } : {}),
    })),
    { name: '--set', takesValue: true, repeatable: true },
    { name: '--resume', takesValue: true },
    { name: '--overwrite', takesValue: false },
    { name: '--memory-limit', takesValue: true },
    ...[...SWITCHES].map((key) => ({ name: OPTION_FLAG[key], takesValue: false })),
  ],
};

export interface ParsedTrainArgs {
  options: TrainOptions;
  /** The run to continue (--resume NAME), or null for a new run. */
  resume: string | null;
  /** --overwrite: an existing run folder of the same name may be replaced. */
  overwrite: boolean;
  /** The options the command line set (configOverrides when --set was given); the rest are defaults. */
  given: ReadonlySet<keyof TrainOptions>;
  /** --help was given: print TRAIN_USAGE, train nothing. */
  help: boolean;
  /** --memory-limit in bytes (a property of the machine, not saved with the run), or null. */
  memoryLimit: number | null;
}

/** `--set KEY=VALUE`: the key must be a settable LlamaConfig key; the value true/false, a number or text. */
export function parseConfigOverride(text: string, command = 'train'): [string, unknown] {
  const eq = text.indexOf('=');
  if (eq < 1) throw new UsageError(`step ${command}: --set expects KEY=VALUE, got ${JSON.stringify(text)}`);
  const key = text.slice(0, eq), raw = text.slice(eq + 1);
  checkConfigOverride(key, command);
  if (raw === '') throw new UsageError(`step ${command}: --set ${key}= needs a value`);
  return [key, raw === 'true' ? true : raw === 'false' ? false : raw === 'null' ? null : Number.isNaN(Number(raw)) ? raw : Number(raw)];
}

/** A flag's text as the option's type (numbers in range, lists of positive integers). */
function parseValue(key: keyof TrainOptions, flag: string, value: string): unknown {
  if (key === 'split' || key === 'stageTokens') {
    const parts = value.split(',').map((s) => (s.trim() === '' ? NaN : Number(s.trim())));
    if (parts.some((n) => !Number.isSafeInteger(n) || n < 1)) throw new UsageError(`step train: ${flag} must be positive integers separated by commas, got ${JSON.stringify(value)}`);
    return parts;
  }
  if (key in NUMBER_RULES) return numberValue('train', flag, value, NUMBER_RULES[key as keyof typeof NUMBER_RULES]);
  return value;
}

/**
 * Parses `step train` arguments over the defaults and validates them before anything is created:
 * unknown flags, bad values, flags the method would ignore and, with --resume, flags the run
 * cannot change are refused, each in one line naming the flag.
 */
export function parseTrainArgs(args: readonly string[]): ParsedTrainArgs {
  const a = parseArgs(TRAIN_SPEC, args);
  const o: TrainOptions = { ...DEFAULT_TRAIN_OPTIONS, configOverrides: {} };
  const given = new Set<keyof TrainOptions>();
  const resume = a.values.get('--resume')?.[0] ?? null;
  const overwrite = a.values.has('--overwrite');
  const limit = a.values.get('--memory-limit')?.[0];
  const memoryLimit = limit === undefined ? null : parseSize('--memory-limit', limit, 'train');
  if (a.help) return { options: o, resume, overwrite, given, help: true, memoryLimit };
  for (const [flag, values] of a.values) {
    if (flag === '--resume' || flag === '--overwrite' || flag === '--memory-limit') continue;
    if (flag === '--set') {
      for (const v of values) {
        const [key, value] = parseConfigOverride(v);
        if (key in o.configOverrides) throw new UsageError(`step train: --set ${key} given twice; give it once`);
        o.configOverrides[key] = value;
      }
      given.add('configOverrides');
      continue;
    }
    const switchKey = [...SWITCHES].find((k) => OPTION_FLAG[k] === flag);
    if (switchKey) {
      (o as unknown as Record<string, unknown>)[switchKey] = true;
      given.add(switchKey);
      continue;
    }
    const key = FLAG_KEY.get(flag)!;
    (o as unknown as Record<string, unknown>)[key] = parseValue(key, flag, values[0]!);
    given.add(key);
  }
  if (resume === null) return { options: validateTrainOptions(o, given), resume, overwrite, given, help: false, memoryLimit };
  checkRunName(resume, '--resume');
  if (overwrite) throw new UsageError('step train: --overwrite and --resume contradict each other: --resume continues the run, --overwrite starts it afresh; give one');
  const refused = [...given].filter((k) => !RESUME_OVERRIDABLE.has(k) && k !== 'runsDir');
  if (refused.length) {
    throw new UsageError(`step train: ${refused.map((k) => OPTION_FLAG[k]).join(', ')} cannot be changed with --resume (the run keeps its saved settings); ` +
      `flags allowed with --resume: ${[...RESUME_OVERRIDABLE].map((k) => OPTION_FLAG[k]).join(', ')}, --runs-dir`);
  }
  // each override on its own; the trainer checks them against the run's saved settings
  validateOptionValues(o, given);
  return { options: o, resume, overwrite, given, help: false, memoryLimit };
}
