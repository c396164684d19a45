/**
 * Checks a run's options before anything is created (no folder, no device): each numeric option
 * against its range, choices, names, the model config the preset and `--set` give, and flags that
 * the chosen method would ignore. Every refusal is one line naming the flag and the value.
 */
import { ConfigError, CONFIG_KEYS } from '../../models/config.js';
import type { LlamaConfig } from '../../models/config.js';
import { PRESET_NAMES, presetConfig } from '../../models/config-presets.js';
import type { NumberRule } from '../cli-args.js';
import { closestFlag, describeRule, fitsRule, UsageError } from '../cli-args.js';
import { maxGaloreRank } from '../planner/galore.js';
import type { TrainOptions } from './options.js';

/** The command-line flag of each option (messages name flags, not field names). */
export const OPTION_FLAG: Record<keyof TrainOptions, string> = {
  name: '--name', runsDir: '--runs-dir', method: '--method', preset: '--preset', configOverrides: '--set', data: '--data',
  vocabSize: '--vocab-size', seqLen: '--seq-len', batchSize: '--batch-size', gradAccum: '--grad-accum', steps: '--steps',
  lr: '--lr', minLrRatio: '--min-lr-ratio', warmupSteps: '--warmup', weightDecay: '--weight-decay', beta1: '--beta1',
  beta2: '--beta2', eps: '--eps', clip: '--clip', evalEvery: '--eval-every', evalBatches: '--eval-batches',
  checkpointEvery: '--checkpoint-every', logEvery: '--log-every', seed: '--seed', precision: '--precision', device: '--device',
  split: '--split', stages: '--stages', loraRank: '--lora-rank', loraAlpha: '--lora-alpha', loraDropout: '--lora-dropout',
  stageTokens: '--stage-tokens', stageReloraEvery: '--stage-relora-every', stageWarmupSteps: '--stage-warmup',
  reloraEvery: '--relora-every', reloraWarmStart: '--relora-warm-start', stopAfter: '--stop-after',
  checkpointActivations: '--checkpoint-activations',
  galoreRank: '--galore-rank', galoreUpdateGap: '--galore-update-gap', galoreScale: '--galore-scale',
};

/** Largest vocabulary accepted: 4x the largest in common use (262,144); each token is a row of the embedding and of the head. */
export const MAX_VOCAB_SIZE = 1 << 20;
/** Seeds stay below 2^32: the LoRA-dropout stream is keyed by seed * 1,000,003 + step, which must stay an exact integer. */
const MAX_SEED = 2 ** 32 - 1;

type NumericKey = { [K in keyof TrainOptions]: TrainOptions[K] extends number | null ? K : never }[keyof TrainOptions];

/** The range of every numeric option. */
export const NUMBER_RULES: Record<NumericKey, NumberRule> = {
  vocabSize: { integer: true, min: 260, max: MAX_VOCAB_SIZE, reason: `at least the 256 byte tokens and the special tokens; at most ${MAX_VOCAB_SIZE.toLocaleString('en-US')}, 4x the largest vocabularies in use` },
  seqLen: { integer: true, min: 1 },
  batchSize: { integer: true, min: 1 },
  gradAccum: { integer: true, min: 1 },
  steps: { integer: true, min: 1 },
  lr: { min: 0, minExclusive: true },
  minLrRatio: { min: 0, max: 1 },
  warmupSteps: { integer: true, min: 0 },
  weightDecay: { min: 0 },
  beta1: { min: 0, max: 1, maxExclusive: true },
  beta2: { min: 0, max: 1, maxExclusive: true },
  eps: { min: 0, minExclusive: true, reason: 'it keeps the Adam update finite where the second moment is 0' },
  clip: { min: 0, reason: '0 turns gradient clipping off' },
  evalEvery: { integer: true, min: 0, reason: '0: only at the end' },
  evalBatches: { integer: true, min: 1 },
  checkpointEvery: { integer: true, min: 0, reason: '0: only at stage ends and the end' },
  logEvery: { integer: true, min: 1 },
  seed: { integer: true, min: 0, max: MAX_SEED },
  stages: { integer: true, min: 1 },
  loraRank: { integer: true, min: 1 },
  loraAlpha: { min: 0, minExclusive: true, reason: 'the adapters are scaled by alpha / rank' },
  loraDropout: { min: 0, max: 1, maxExclusive: true },
  stageReloraEvery: { integer: true, min: 0, reason: '0 turns adapter restarts off' },
  stageWarmupSteps: { integer: true, min: 0 },
  reloraEvery: { integer: true, min: 1 },
  reloraWarmStart: { integer: true, min: 0 },
  stopAfter: { integer: true, min: 1 },
  galoreRank: { integer: true, min: 1 },
  galoreUpdateGap: { integer: true, min: 1 },
  galoreScale: { min: 0, minExclusive: true, reason: 'the projected-back update is multiplied by it' },
};

export const CHOICES = {
  method: ['vanilla', 'step', 'relora', 'galore'],
  precision: ['fp32', 'mixed'],
  device: ['auto', 'webgpu', 'cpu'],
} as const;

/** Options only STEP uses; `--lora-*` also serve ReLoRA, and ReLoRA's restarts warm up over --stage-warmup. */
const STEP_ONLY: readonly (keyof TrainOptions)[] = ['stages', 'split', 'stageTokens', 'stageReloraEvery'];
const LORA: readonly (keyof TrainOptions)[] = ['loraRank', 'loraAlpha', 'loraDropout'];
const RELORA_ONLY: readonly (keyof TrainOptions)[] = ['reloraEvery', 'reloraWarmStart'];
const GALORE_ONLY: readonly (keyof TrainOptions)[] = ['galoreRank', 'galoreUpdateGap', 'galoreScale'];

/** LlamaConfig keys that `--set` may not change, and why. */
const FIXED_CONFIG_KEYS: Record<string, string> = {
  vocab_size: 'the vocabulary comes from the tokenizer; use --vocab-size N',
  architectures: 'always ["LlamaForCausalLM"]',
  model_type: 'always "llama"',
};

function fail(message: string): never {
  throw new UsageError(`step train: ${message}`);
}

const flags = (keys: readonly (keyof TrainOptions)[]): string => keys.map((k) => OPTION_FLAG[k]).join(', ');

/**
 * A run or resume name: a plain folder name under --runs-dir (no path separators, no '.' or '..',
 * no leading dot or dash). `flag` names it in the message (--name or --resume).
 */
export function checkRunName(name: string, flag: '--name' | '--resume'): string {
  const what = `${flag} must be a plain folder name (letters, digits, '.', '-', '_'; not starting with '.' or '-')`;
  if (name === '') fail(`${what}, got an empty name`);
  if (/[/\\]/.test(name)) fail(`${what}, got ${JSON.stringify(name)}, which holds a path separator; use --runs-dir DIR for the folder that holds runs`);
  if (!/^[A-Za-z0-9_][A-Za-z0-9._-]*$/.test(name)) fail(`${what}, got ${JSON.stringify(name)}`);
  if (name.length > 128) fail(`${flag} must be at most 128 characters, got ${name.length}`);
  return name;
}

/** Checks one `--set KEY=VALUE` pair: a LlamaConfig key that a run may set. */
export function checkConfigOverride(key: string, command = 'train'): void {
  const where = `step ${command}: --set ${key}`;
  const why = Object.prototype.hasOwnProperty.call(FIXED_CONFIG_KEYS, key) ? FIXED_CONFIG_KEYS[key] : undefined;
  if (why !== undefined) throw new UsageError(`${where} is not allowed: ${why}`);
  if (!(CONFIG_KEYS as readonly string[]).includes(key)) {
    const settable = CONFIG_KEYS.filter((k) => !(k in FIXED_CONFIG_KEYS));
    const near = closestFlag(key, settable);
    throw new UsageError(`${where}: unknown LlamaConfig key${near ? ` (did you mean ${near}?)` : ''}; keys: ${settable.join(', ')}`);
  }
}

/** The model config the preset and `--set` give (vocab_size still the preset's); refusals name --preset / --set. */
export function targetConfig(o: Pick<TrainOptions, 'preset' | 'configOverrides'>, command = 'train'): LlamaConfig {
  if (!PRESET_NAMES.includes(o.preset)) throw new UsageError(`step ${command}: --preset must be one of ${PRESET_NAMES.join(', ')}, got ${JSON.stringify(o.preset)}`);
  for (const k of Object.keys(o.configOverrides)) checkConfigOverride(k, command);
  try {
    return presetConfig(o.preset, o.configOverrides as Partial<LlamaConfig>);
  } catch (e) {
    if (e instanceof ConfigError) throw new UsageError(`step ${command}: --set: ${e.message}`);
    throw e;
  }
}

/** Checks the range of each of `keys` (numbers and choices) on its own, without looking at other options. */
export function validateOptionValues(o: TrainOptions, keys: Iterable<keyof TrainOptions>): void {
  for (const k of keys) {
    if (k in NUMBER_RULES) {
      const rule = NUMBER_RULES[k as NumericKey];
      const v = o[k as NumericKey];
      if (v === null && (k === 'stopAfter' || k === 'galoreRank')) continue;
      if (typeof v !== 'number' || !fitsRule(v, rule)) fail(`${OPTION_FLAG[k]} must be ${describeRule(rule)}, got ${String(v)}${rule.reason ? ` (${rule.reason})` : ''}`);
    } else if (k in CHOICES) {
      const valid = CHOICES[k as keyof typeof CHOICES] as readonly string[];
      if (!valid.includes(o[k] as string)) fail(`${OPTION_FLAG[k]} must be one of ${valid.join(', ')}, got ${JSON.stringify(o[k])}`);
    } else if (k === 'name') {
      if (o.name !== '') checkRunName(o.name, '--name');
    } else if (k === 'split' || k === 'stageTokens') {
      const list = o[k];
      if (list !== null && (!Array.isArray(list) || list.length === 0 || list.some((n) => !Number.isSafeInteger(n) || n < 1))) {
        fail(`${OPTION_FLAG[k]} must be positive integers separated by commas, got ${JSON.stringify(list)}`);
      }
    } else if (k === 'preset' || k === 'configOverrides') {
      targetConfig(o);
    }
  }
}

/**
 * Flags the chosen method would silently ignore, refused: STEP's with vanilla or ReLoRA, ReLoRA's
 * with vanilla or STEP, LoRA's with vanilla; --stages that disagrees with --split or --stage-tokens,
 * --steps that disagrees with --stage-tokens. `given`: the options set on the command line.
 */
export function checkCombinations(o: TrainOptions, given: ReadonlySet<keyof TrainOptions>): void {
  const byMethod = (keys: readonly (keyof TrainOptions)[]) => keys.filter((k) => given.has(k));
  const stepOnly = byMethod(STEP_ONLY), lora = byMethod(LORA), relora = byMethod(RELORA_ONLY), galore = byMethod(GALORE_ONLY);
  if (o.method !== 'galore' && galore.length) fail(`${flags(galore)} ${galore.length > 1 ? 'are' : 'is'} GaLore's and ${galore.length > 1 ? 'have' : 'has'} no effect with --method ${o.method}; use --method galore, or leave ${galore.length > 1 ? 'them' : 'it'} out`);
  if (o.method === 'galore') {
    const ignored = [...stepOnly, ...lora, ...byMethod(['stageWarmupSteps']), ...relora];
    if (ignored.length) fail(`${flags(ignored)} ${ignored.length > 1 ? 'have' : 'has'} no effect with --method galore (every layer trains, projected); leave ${ignored.length > 1 ? 'them' : 'it'} out`);
  }
  if (o.method === 'vanilla') {
    const ignored = [...stepOnly, ...lora, ...byMethod(['stageWarmupSteps']), ...relora];
    if (ignored.length) fail(`${flags(ignored)} ${ignored.length > 1 ? 'have' : 'has'} no effect with --method vanilla; use --method step or relora, or leave ${ignored.length > 1 ? 'them' : 'it'} out`);
  }
  if (o.method === 'relora' && stepOnly.length) fail(`${flags(stepOnly)} ${stepOnly.length > 1 ? 'are' : 'is'} STEP's and ${stepOnly.length > 1 ? 'have' : 'has'} no effect with --method relora; use --method step, or leave ${stepOnly.length > 1 ? 'them' : 'it'} out`);
  if (o.method === 'step' && relora.length) fail(`${flags(relora)} ${relora.length > 1 ? 'are' : 'is'} ReLoRA's and ${relora.length > 1 ? 'have' : 'has'} no effect with --method step; use --stage-relora-every N for restarts inside STEP's stages`);
  if (given.has('stages') && given.has('split') && o.split && o.split.length !== o.stages) {
    fail(`--stages ${o.stages} but --split ${o.split.join(',')} has ${o.split.length} stages; give one of them`);
  }
  if (given.has('stages') && given.has('stageTokens') && o.stageTokens && o.stageTokens.length !== o.stages) {
    fail(`--stages ${o.stages} but --stage-tokens gives ${o.stageTokens.length} stages; give one of them`);
  }
}

/**
 * Checks ranges, choices and the options against each other and the model config; returns the
 * options, normalised (--stage-tokens sets the steps and stages, --split the stages). With `given`,
 * flags that would be ignored are refused too (see checkCombinations).
 */
export function validateTrainOptions(o: TrainOptions, given?: ReadonlySet<keyof TrainOptions>): TrainOptions {
  validateOptionValues(o, Object.keys(OPTION_FLAG) as (keyof TrainOptions)[]);
  if (given) checkCombinations(o, given);
  const config = targetConfig(o);
  if (o.seqLen > config.max_position_embeddings) {
    fail(`--seq-len ${o.seqLen} is beyond the model's context: max_position_embeddings is ${config.max_position_embeddings} (preset ${o.preset}${Object.keys(o.configOverrides).length ? ' with --set' : ''}); use a shorter --seq-len or --set max_position_embeddings=${o.seqLen}`);
  }
  if ((o.method === 'step' || o.method === 'relora') && o.loraRank > config.hidden_size) fail(`--lora-rank ${o.loraRank} is above the model's hidden_size ${config.hidden_size}; a LoRA rank is at most the smaller side of the matrices it adapts`);
  if (o.method === 'galore') {
    const max = maxGaloreRank(config);
    o.galoreRank ??= Math.max(1, Math.min(Math.floor(config.hidden_size / 4), max));
    if (o.galoreRank > max) fail(`--galore-rank ${o.galoreRank} is above ${max}, the smallest side of the model's linears; GaLore projects each gradient to at most that rank`);
  }
  const L = config.num_hidden_layers;
  if (o.method === 'step') {
    if (o.split) {
      const sum = o.split.reduce((a, b) => a + b, 0);
      if (sum !== L) fail(`--split ${o.split.join(',')} sums to ${sum} layers but the model has ${L} (num_hidden_layers); the stage sizes must add up to it`);
      o.stages = o.split.length;
    } else if (o.stages > L) {
      fail(`--stages ${o.stages} is more than the model's ${L} layers; each stage adds at least one layer`);
    }
  }
  if (o.stageTokens) {
    const perStep = o.batchSize * o.seqLen * o.gradAccum;
    const steps = o.stageTokens.map((t) => Math.round(t / perStep));
    if (steps.some((n) => n < 1)) fail(`--stage-tokens: every stage needs at least one step of ${perStep} tokens, got [${o.stageTokens.join(', ')}]`);
    if (o.split && o.split.length !== o.stageTokens.length) fail(`--stage-tokens gives ${o.stageTokens.length} stages but --split gives ${o.split.length}`);
    const total = steps.reduce((a, b) => a + b, 0);
    if (given?.has('steps') && o.steps !== total) fail(`--steps ${o.steps} but --stage-tokens makes the run ${total} steps of ${perStep} tokens; give one of them`);
    o.steps = total;
    o.stages = o.stageTokens.length;
  }
  if (o.warmupSteps >= o.steps) fail(`--warmup (${o.warmupSteps}) must be below --steps (${o.steps})`);
  if (o.method === 'relora' && o.reloraWarmStart >= o.steps) fail(`--relora-warm-start ${o.reloraWarmStart} must be below --steps ${o.steps}, or the run never leaves its full-rank warm start`);
  return o;
}
