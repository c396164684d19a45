/**
 * The LLaMA configuration, in Hugging Face `LlamaConfig` keys (snake_case, as in config.json), so
 * a checkpoint's config.json reads and writes without a translation table.
 *
 * Defaults are Hugging Face's (transformers LlamaConfig.__init__): a key missing from config.json
 * means here what it means in PyTorch. Keys that transformers writes but that describe features
 * we do not implement (attention_bias, rope_scaling, ...) are accepted only at their default value.
 */
import { describeValue, oneLine } from '../engine/describe-value.js';
import { StepError } from '../engine/errors.js';

/** A configuration that cannot describe a model we can build: names the key, the value and what to do. */
export class ConfigError extends StepError {}

export type TorchDType = 'float32' | 'float16' | 'bfloat16';

export interface LlamaConfig {
  vocab_size: number;
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  /** Grouped-query attention: key/value heads (divides num_attention_heads); = heads for plain MHA. */
  num_key_value_heads: number;
  max_position_embeddings: number;
  rms_norm_eps: number;
  rope_theta: number;
  tie_word_embeddings: boolean;
  hidden_act: 'silu';
  initializer_range: number;
  torch_dtype?: TorchDType;
  architectures: ['LlamaForCausalLM'];
  model_type: 'llama';
  /** Token ids; absent means none (written as null so that transformers does not default them to 1 and 2). */
  bos_token_id?: number;
  eos_token_id?: number | number[];
  pad_token_id?: number;
}

/** Hugging Face's defaults for every key of LlamaConfig (num_key_value_heads: = num_attention_heads). */
export const HF_DEFAULTS = {
  vocab_size: 32000,
  hidden_size: 4096,
  intermediate_size: 11008,
  num_hidden_layers: 32,
  num_attention_heads: 32,
  max_position_embeddings: 2048,
  rms_norm_eps: 1e-6,
  rope_theta: 10000,
  tie_word_embeddings: false,
  hidden_act: 'silu',
  initializer_range: 0.02,
  bos_token_id: 1,
  eos_token_id: 2,
} as const;

/** The keys of LlamaConfig, in the order config.json is written. */
export const CONFIG_KEYS: readonly (keyof LlamaConfig)[] = [
  'architectures', 'model_type', 'vocab_size', 'hidden_size', 'intermediate_size', 'num_hidden_layers',
  'num_attention_heads', 'num_key_value_heads', 'max_position_embeddings', 'rms_norm_eps', 'rope_theta',
  'tie_word_embeddings', 'hidden_act', 'initializer_range', 'torch_dtype', 'bos_token_id', 'eos_token_id',
  'pad_token_id',
];

/**
 * Keys transformers writes that we read but do not keep: each is accepted only at the value we
 * implement (a function returning an error message for any other value, or null when fine).
 */
const ACCEPTED_EXTRAS: Record<string, (v: unknown, json: Record<string, unknown>) => string | null> = {
  transformers_version: (v) => (typeof v === 'string' ? null : 'must be a string'),
  _name_or_path: (v) => (typeof v === 'string' ? null : 'must be a string'),
  use_cache: (v) => (typeof v === 'boolean' ? null : 'must be true or false'),
  pretraining_tp: (v) => (v === 1 ? null : 'must be 1 (tensor-parallel pretraining slices are not implemented)'),
  attention_bias: (v) => (v === false ? null : 'must be false (bias-free q/k/v/o projections only)'),
  mlp_bias: (v) => (v === false ? null : 'must be false (bias-free MLP only)'),
  attention_dropout: (v) => (v === 0 ? null : 'must be 0 (attention dropout is not implemented)'),
  rope_scaling: (v) => (v === null ? null : 'must be null (RoPE scaling is not implemented)'),
  head_dim: (v, json) => {
    if (v === null) return null;
    const h = json.hidden_size ?? HF_DEFAULTS.hidden_size, n = json.num_attention_heads ?? HF_DEFAULTS.num_attention_heads;
    return typeof h === 'number' && typeof n === 'number' && v === h / n ? null : `must be null or hidden_size / num_attention_heads (${describeValue(h)} / ${describeValue(n)})`;
  },
  // transformers >= 4.56 writes `dtype` for torch_dtype.
  dtype: (v) => (v === 'float32' || v === 'float16' || v === 'bfloat16' ? null : "must be 'float32', 'float16' or 'bfloat16'"),
};

/** Every key fromJSON accepts. */
export const VALID_JSON_KEYS: readonly string[] = [...CONFIG_KEYS, ...Object.keys(ACCEPTED_EXTRAS)];

const POSITIVE_INT_KEYS = [
  'vocab_size', 'hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads',
  'num_key_value_heads', 'max_position_embeddings',
] as const;

function fail(where: string, key: string, value: unknown, what: string): never {
  throw new ConfigError(`${where}: ${key} = ${describeValue(value, 200)} ${what}`);
}

function checkTokenId(where: string, key: string, v: unknown, vocab: number): void {
  const ids = Array.isArray(v) && key === 'eos_token_id' ? v : [v];
  if (ids.length === 0) fail(where, key, v, 'is an empty list; give an id or null');
  for (const id of ids) {
    // -1 is how GaLore's configs say "no pad token"; anything else must index the vocabulary.
    if (!Number.isInteger(id) || (id as number) < -1 || (id as number) >= vocab) {
      fail(where, key, v, `must be a token id in 0..${vocab - 1} (or -1, or null for none)${key === 'eos_token_id' ? ', or a list of such ids' : ''}`);
    }
  }
}

/**
 * Checks every field of a complete config; returns it. Throws ConfigError naming the first bad
 * key, its value and the rule it breaks.
 */
export function validateConfig(c: LlamaConfig, where = 'LlamaConfig'): LlamaConfig {
  if (c === null || typeof c !== 'object') throw new ConfigError(`${where}: expected an object, got ${c === null ? 'null' : typeof c}`);
  const unknown = Object.keys(c).filter((k) => !(CONFIG_KEYS as readonly string[]).includes(k));
  if (unknown.length) throw new ConfigError(`${where}: unknown key ${describeValue(unknown[0])}; valid keys: ${CONFIG_KEYS.join(', ')}`);
  for (const k of POSITIVE_INT_KEYS) {
    if (!Number.isSafeInteger(c[k]) || c[k] < 1) fail(where, k, c[k], 'must be a positive integer');
  }
  if (c.hidden_size % c.num_attention_heads !== 0) {
    fail(where, 'num_attention_heads', c.num_attention_heads, `must divide hidden_size ${c.hidden_size}`);
  }
  if ((c.hidden_size / c.num_attention_heads) % 2 !== 0) {
    fail(where, 'num_attention_heads', c.num_attention_heads, `gives an odd head size ${c.hidden_size / c.num_attention_heads}; rotary embeddings need an even one`);
  }
  if (c.num_attention_heads % c.num_key_value_heads !== 0) {
    fail(where, 'num_key_value_heads', c.num_key_value_heads, `must divide num_attention_heads ${c.num_attention_heads}`);
  }
  for (const k of ['rms_norm_eps', 'rope_theta'] as const) {
    if (typeof c[k] !== 'number' || !Number.isFinite(c[k]) || c[k] <= 0) fail(where, k, c[k], 'must be a finite number > 0');
  }
  if (typeof c.initializer_range !== 'number' || !Number.isFinite(c.initializer_range) || c.initializer_range < 0) {
    fail(where, 'initializer_range', c.initializer_range, 'must be a finite number >= 0');
  }
  if (typeof c.tie_word_embeddings !== 'boolean') fail(where, 'tie_word_embeddings', c.tie_word_embeddings, 'must be true or false');
  if (c.hidden_act !== 'silu') fail(where, 'hidden_act', c.hidden_act, "is not implemented; LLaMA's MLP is SwiGLU: use 'silu'");
  if (!Array.isArray(c.architectures) || c.architectures.length !== 1 || c.architectures[0] !== 'LlamaForCausalLM') {
    fail(where, 'architectures', c.architectures, 'must be ["LlamaForCausalLM"]');
  }
  if (c.model_type !== 'llama') fail(where, 'model_type', c.model_type, "must be 'llama'");
  if (c.torch_dtype !== undefined && !['float32', 'float16', 'bfloat16'].includes(c.torch_dtype)) {
    fail(where, 'torch_dtype', c.torch_dtype, "must be 'float32', 'float16' or 'bfloat16' (or absent)");
  }
  for (const k of ['bos_token_id', 'eos_token_id', 'pad_token_id'] as const) {
    if (c[k] !== undefined) checkTokenId(where, k, c[k], c.vocab_size);
  }
  return c;
}

/**
 * A complete, validated config from some of its keys. Missing keys take Hugging Face's defaults
 * (bos 1 and eos 2 included); a token id present as undefined or null means "none".
 */
export function makeConfig(partial: Partial<LlamaConfig>, where = 'LlamaConfig'): LlamaConfig {
  return configFromJSON(partial, where);
}

/**
 * Reads a parsed config.json. Missing keys take Hugging Face's defaults (so bos/eos default to
 * 1/2 as in transformers; null means none); unknown keys are rejected with the list of valid ones.
 */
export function configFromJSON(json: unknown, source = 'config.json'): LlamaConfig {
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    throw new ConfigError(`${source}: expected a JSON object of LlamaConfig keys, got ${Array.isArray(json) ? 'an array' : json === null ? 'null' : typeof json}`);
  }
  const j = json as Record<string, unknown>;
  for (const [k, v] of Object.entries(j)) {
    if ((CONFIG_KEYS as readonly string[]).includes(k)) continue;
    // hasOwn: "constructor", "toString" or "__proto__" must not find Object.prototype's members.
    const check = Object.hasOwn(ACCEPTED_EXTRAS, k) ? ACCEPTED_EXTRAS[k] : undefined;
    if (!check) throw new ConfigError(`${source}: unknown key ${describeValue(k)}; valid keys: ${VALID_JSON_KEYS.join(', ')}`);
    const problem = check(v, j);
    if (problem) fail(source, k, v, problem);
  }
  if (j.dtype !== undefined && j.torch_dtype !== undefined && j.dtype !== j.torch_dtype) {
    fail(source, 'dtype', j.dtype, `disagrees with torch_dtype ${describeValue(j.torch_dtype)}; keep one`);
  }
  const pick = <T>(k: string, dflt: T): T => (j[k] === undefined ? dflt : (j[k] as T));
  const heads = pick('num_attention_heads', HF_DEFAULTS.num_attention_heads as number);
  const c: LlamaConfig = {
    architectures: pick('architectures', ['LlamaForCausalLM'] as ['LlamaForCausalLM']),
    model_type: pick('model_type', 'llama' as const),
    vocab_size: pick('vocab_size', HF_DEFAULTS.vocab_size),
    hidden_size: pick('hidden_size', HF_DEFAULTS.hidden_size),
    intermediate_size: pick('intermediate_size', HF_DEFAULTS.intermediate_size),
    num_hidden_layers: pick('num_hidden_layers', HF_DEFAULTS.num_hidden_layers),
    num_attention_heads: heads,
    // transformers: num_key_value_heads None (or absent) means plain multi-head attention.
    num_key_value_heads: j.num_key_value_heads === undefined || j.num_key_value_heads === null ? heads : (j.num_key_value_heads as number),
    max_position_embeddings: pick('max_position_embeddings', HF_DEFAULTS.max_position_embeddings),
    rms_norm_eps: pick('rms_norm_eps', HF_DEFAULTS.rms_norm_eps),
    rope_theta: pick('rope_theta', HF_DEFAULTS.rope_theta),
    tie_word_embeddings: pick('tie_word_embeddings', HF_DEFAULTS.tie_word_embeddings),
    hidden_act: pick('hidden_act', HF_DEFAULTS.hidden_act),
    initializer_range: pick('initializer_range', HF_DEFAULTS.initializer_range),
  };
  const dtype = j.torch_dtype ?? j.dtype;
  if (dtype !== undefined && dtype !== null) c.torch_dtype = dtype as TorchDType;
  const ids = { bos_token_id: HF_DEFAULTS.bos_token_id, eos_token_id: HF_DEFAULTS.eos_token_id, pad_token_id: undefined };
  for (const [k, dflt] of Object.entries(ids) as [keyof typeof ids, number | undefined][]) {
    const v = k in j ? j[k] : dflt;
    if (v !== null && v !== undefined) (c as unknown as Record<string, unknown>)[k] = v;
  }
  return validateConfig(c, source);
}

/** config.json contents: every key of LlamaConfig in a fixed order; absent token ids as null. */
export function configToJSON(c: LlamaConfig): Record<string, unknown> {
  validateConfig(c);
  const out: Record<string, unknown> = {};
  for (const k of CONFIG_KEYS) {
    const v = c[k];
    if (v !== undefined) out[k] = Array.isArray(v) ? [...v] : v;
    else if (k.endsWith('_token_id')) out[k] = null;
  }
  return out;
}

/** Parses config.json text; errors name the file. */
export function parseConfigJSON(text: string, source = 'config.json'): LlamaConfig {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(`${source}: not valid JSON (${oneLine((e as Error).message)}); expected a Hugging Face LlamaConfig object`);
  }
  return configFromJSON(json, source);
}

/** config.json text (2-space indented, trailing newline), as transformers writes it. */
export function stringifyConfig(c: LlamaConfig): string {
  return JSON.stringify(configToJSON(c), null, 2) + '\n';
}

/** Size of one attention head. */
export function headDim(c: LlamaConfig): number {
  return c.hidden_size / c.num_attention_heads;
}

/** Width of the k and v projections' outputs (num_key_value_heads * head size). */
export function kvDim(c: LlamaConfig): number {
  return c.num_key_value_heads * headDim(c);
}
