import { StepError } from '../../engine/errors.js';
import type { Precision } from '../../engine/optim/optimizer.js';

/** Everything a training run is made of; written to runs/NAME/train-config.json at the start. */
export interface TrainOptions {
  /** Run folder name under `runsDir` (default: a timestamp). */
  name: string;
  runsDir: string;
  method: 'vanilla' | 'step' | 'relora';
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
  /** ReLoRA: merge-and-restart period (steps) and full-rank warm start (steps). */
  reloraEvery: number;
  reloraWarmStart: number;
  /** Stop after this many steps in this process (a test's way to interrupt a run). */
  stopAfter: number | null;
}

export const DEFAULT_TRAIN_OPTIONS: TrainOptions = {
  name: '', runsDir: 'runs', method: 'vanilla', preset: 'tiny', configOverrides: {}, data: 'brown',
  vocabSize: 1024, seqLen: 64, batchSize: 16, gradAccum: 1, steps: 600, lr: 3e-3, minLrRatio: 0.1,
  warmupSteps: 30, weightDecay: 0.1, beta1: 0.9, beta2: 0.95, eps: 1e-8, clip: 1, evalEvery: 200,
  evalBatches: 8, checkpointEvery: 200, logEvery: 1, seed: 1, precision: 'fp32', device: 'auto',
  split: null, stages: 2, loraRank: 8, loraAlpha: 16, loraDropout: 0, stageTokens: null, stageReloraEvery: 0, stageWarmupSteps: 10, reloraEvery: 100, reloraWarmStart: 50,
  stopAfter: null,
};

/** Options `--resume` may change: the schedule, evaluation, checkpointing, logging and where it runs. */
export const RESUME_OVERRIDABLE: readonly (keyof TrainOptions)[] = ['steps','lr','minLrRatio','warmupSteps','evalEvery','evalBatches','checkpointEvery','logEvery','clip','weightDecay','stopAfter','device'];

const FLAGS: Record<string, keyof TrainOptions> = {
  '--name': 'name', '--runs-dir': 'runsDir', '--method': 'method', '--preset': 'preset', '--data': 'data',
  '--vocab-size': 'vocabSize', '--seq-len': 'seqLen', '--batch-size': 'batchSize', '--grad-accum': 'gradAccum',
  '--steps': 'steps', '--lr': 'lr', '--min-lr-ratio': 'minLrRatio', '--warmup': 'warmupSteps',
  '--weight-decay': 'weightDecay', '--beta1': 'beta1', '--beta2': 'beta2', '--eps': 'eps', '--clip': 'clip',
  '--eval-every': 'evalEvery', '--eval-batches': 'evalBatches', '--checkpoint-every': 'checkpointEvery',
  '--log-every': 'logEvery', '--seed': 'seed', '--precision': 'precision', '--device': 'device', '--split': 'split',
  '--stages': 'stages', '--lora-rank': 'loraRank', '--lora-alpha': 'loraAlpha', '--lora-dropout': 'loraDropout', '--stage-warmup': 'stageWarmupSteps', '--stage-tokens': 'stageTokens', '--stage-relora-every': 'stageReloraEvery',
  '--relora-every': 'reloraEvery', '--relora-warm-start': 'reloraWarmStart', '--stop-after': 'stopAfter',
};

const INTEGER_KEYS = new Set<keyof TrainOptions>(['vocabSize', 'seqLen', 'batchSize', 'gradAccum', 'steps', 'warmupSteps', 'evalEvery',
  'evalBatches', 'checkpointEvery', 'logEvery', 'seed', 'stages', 'loraRank', 'stageWarmupSteps', 'stageReloraEvery', 'reloraEvery', 'reloraWarmStart', 'stopAfter']);
const NUMBER_KEYS = new Set<keyof TrainOptions>(['lr', 'minLrRatio', 'weightDecay', 'beta1', 'beta2', 'eps', 'clip', 'loraAlpha', 'loraDropout']);

export const TRAIN_USAGE = `usage: step train [options]     (no options: the tiny preset on the Brown corpus)
  --name NAME            run folder runs/NAME (default: a timestamp)     --resume NAME  continue a run
  --method M             vanilla | step | relora (default vanilla)
  --preset P             tiny | small | 60m | 130m | 350m | 680m | 1b (see step presets)
  --set KEY=VALUE        override a LlamaConfig key (e.g. --set num_hidden_layers=6)
  --data D               brown | FILE.txt | FOLDER | FILE.bin (llm.c token shard)
  --vocab-size N --seq-len T --batch-size B --grad-accum A --steps S
  --lr X --min-lr-ratio R --warmup W --weight-decay D --beta1 --beta2 --eps --clip C
  --eval-every N --eval-batches N --checkpoint-every N --log-every N --seed S
  --precision fp32|mixed --device auto|webgpu|cpu
  STEP:   --stages K | --split 2,1,1   --stage-tokens T1,T2,..   --lora-rank R --lora-alpha A --lora-dropout P
          --stage-warmup W   --stage-relora-every N (ReLoRA restarts of the adapters inside each LoRA stage)
  ReLoRA: --relora-every N --relora-warm-start N --lora-rank R`;

/** Parses `step train` arguments over the defaults; unknown flags and bad values throw naming them. */
export function parseTrainArgs(args: readonly string[]): { options: TrainOptions; resume: string | null } {
  const o: TrainOptions = { ...DEFAULT_TRAIN_OPTIONS, configOverrides: {} };
  let resume: string | null = null;
  for (let i = 0; i < args.length; i++) {
    const flag = args[i]!;
    const value = args[i + 1];
    if (flag === '--help' || flag === '-h') throw new StepError(TRAIN_USAGE);
    if (value === undefined || value.startsWith('--')) throw new StepError(`step train: ${flag} needs a value\n${TRAIN_USAGE}`);
    i++;
    if (flag === '--resume') { resume = value; continue; }
    if (flag === '--set') {
      const eq = value.indexOf('=');
      if (eq < 1) throw new StepError(`step train: --set expects KEY=VALUE, got "${value}"`);
      const raw = value.slice(eq + 1);
      o.configOverrides[value.slice(0, eq)] = raw === 'true' ? true : raw === 'false' ? false : Number.isNaN(Number(raw)) ? raw : Number(raw);
      continue;
    }
    const key = FLAGS[flag];
    if (!key) throw new StepError(`step train: unknown option ${flag}\n${TRAIN_USAGE}`);
    (o as unknown as Record<string, unknown>)[key] = parseValue(key, flag, value);
  }
  return { options: validateTrainOptions(o), resume };
}

function parseValue(key: keyof TrainOptions, flag: string, value: string): unknown {
  if (key === 'split' || key === 'stageTokens') {
    const parts = value.split(',').map((s) => Number(s.trim()));
    if (parts.some((n) => !Number.isInteger(n) || n < 1)) throw new StepError(`step train: ${flag} must be positive integers separated by commas, got "${value}"`);
    return parts;
  }
  if (INTEGER_KEYS.has(key) || NUMBER_KEYS.has(key)) {
    const n = Number(value);
    if (!Number.isFinite(n) || (INTEGER_KEYS.has(key) && !Number.isInteger(n))) throw new StepError(`step train: ${flag} must be ${INTEGER_KEYS.has(key) ? 'an integer' : 'a number'}, got "${value}"`);
    return n;
  }
  return value;
}

/** Checks ranges and choices; returns the options. */
export function validateTrainOptions(o: TrainOptions): TrainOptions {
  const fail = (msg: string) => { throw new StepError(`step train: ${msg}`); };
  if (!['vanilla', 'step', 'relora'].includes(o.method)) fail(`--method must be vanilla, step or relora, got "${o.method}"`);
  if (!['fp32', 'mixed'].includes(o.precision)) fail(`--precision must be fp32 or mixed, got "${o.precision}"`);
  if (!['auto', 'webgpu', 'cpu'].includes(o.device)) fail(`--device must be auto, webgpu or cpu, got "${o.device}"`);
  for (const k of ['vocabSize', 'seqLen', 'batchSize', 'gradAccum', 'steps', 'evalBatches', 'logEvery', 'stages', 'loraRank'] as const) {
    if (!(o[k] >= 1)) fail(`${k} must be >= 1, got ${o[k]}`);
  }
  for (const k of ['evalEvery', 'checkpointEvery', 'warmupSteps', 'stageWarmupSteps', 'reloraWarmStart', 'seed'] as const) {
    if (!(o[k] >= 0)) fail(`${k} must be >= 0, got ${o[k]}`);
  }
  if (o.vocabSize < 260) fail(`--vocab-size must be at least 260 (256 bytes + special tokens), got ${o.vocabSize}`);
  if (!(o.lr > 0)) fail(`--lr must be > 0, got ${o.lr}`);
  if (!(o.loraDropout >= 0 && o.loraDropout < 1)) fail(`--lora-dropout must be in [0, 1), got ${o.loraDropout}`);
  if (!(o.minLrRatio >= 0 && o.minLrRatio <= 1)) fail(`--min-lr-ratio must be in [0, 1], got ${o.minLrRatio}`);
  if (!(o.beta1 >= 0 && o.beta1 < 1 && o.beta2 >= 0 && o.beta2 < 1)) fail('--beta1 and --beta2 must be in [0, 1)');
  if (o.stageTokens) {
    const perStep = o.batchSize * o.seqLen * o.gradAccum;
    const steps = o.stageTokens.map((t) => Math.round(t / perStep));
    if (steps.some((n) => n < 1)) fail(`--stage-tokens: every stage needs at least one step of ${perStep} tokens, got [${o.stageTokens.join(', ')}]`);
    if (o.split && o.split.length !== o.stageTokens.length) fail(`--stage-tokens gives ${o.stageTokens.length} stages but --split gives ${o.split.length}`);
    o.steps = steps.reduce((a, b) => a + b, 0);
    o.stages = o.stageTokens.length;
  }
  if (!(o.stageReloraEvery >= 0)) fail('--stage-relora-every must be >= 0');
  if (o.warmupSteps >= o.steps) fail(`--warmup (${o.warmupSteps}) must be below --steps (${o.steps})`);
  if (o.name && !/^[\w.-]+$/.test(o.name)) fail(`--name may hold letters, digits, '.', '-' and '_' only, got "${o.name}"`);
  if (o.stopAfter !== null && !(o.stopAfter >= 1)) fail('--stop-after must be >= 1');
  return o;
}
