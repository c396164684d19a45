/**
 * Fuzz: config.json. Any text gives a config that validates and round-trips through
 * stringifyConfig, or a ConfigError naming the file.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { ConfigError, parseConfigJSON, stringifyConfig, validateConfig, VALID_JSON_KEYS } from '../../models/config.js';
import { presetConfig, PRESET_NAMES } from '../../models/config-presets.js';
import type { JsonNode } from './fuzz-inputs.js';
import { fuzzSeed, JsonObj, mostly, mutated, nastyString, nastyValue, parsedOrOwnError, Tally, toJsonText } from './fuzz-inputs.js';

const FILE = 'fuzz/run/config.json';

/** A parsed config must be complete and valid, and write back to the same config. */
function checkConfig(text: string, tally: Tally): void {
  const c = tally.note(parsedOrOwnError(() => parseConfigJSON(text, FILE), ConfigError, FILE));
  if (!c) return;
  validateConfig(c, FILE);
  // Compared as JSON, where -0 and 0 are the same number.
  assert.equal(stringifyConfig(parseConfigJSON(stringifyConfig(c), FILE)), stringifyConfig(c));
}

/** Values that are right for each key, so that the other keys' checks run too. */
const goodValue: Record<string, fc.Arbitrary<JsonNode>> = {
  architectures: fc.constant(['LlamaForCausalLM']),
  model_type: fc.constant('llama'),
  vocab_size: fc.integer({ min: 1, max: 70000 }),
  hidden_size: fc.constantFrom(8, 16, 64, 4096),
  intermediate_size: fc.integer({ min: 1, max: 20000 }),
  num_hidden_layers: fc.integer({ min: 1, max: 40 }),
  num_attention_heads: fc.constantFrom(1, 2, 4, 8, 32),
  num_key_value_heads: fc.constantFrom(null, 1, 2, 4),
  max_position_embeddings: fc.integer({ min: 1, max: 4096 }),
  rms_norm_eps: fc.constantFrom(1e-6, 1e-5),
  rope_theta: fc.constantFrom(10000, 500000),
  tie_word_embeddings: fc.boolean(),
  hidden_act: fc.constant('silu'),
  initializer_range: fc.constantFrom(0, 0.02),
  torch_dtype: fc.constantFrom('float32', 'float16', 'bfloat16', null),
  bos_token_id: fc.constantFrom(null, -1, 0, 1, 2),
  eos_token_id: fc.oneof(fc.constantFrom(null, 0, 2), fc.array(fc.integer({ min: 0, max: 3 }), { maxLength: 3 })),
  pad_token_id: fc.constantFrom(null, -1, 0),
  transformers_version: fc.constant('4.44.0'),
  _name_or_path: fc.string({ maxLength: 8 }),
  use_cache: fc.boolean(),
  pretraining_tp: fc.constant(1),
  attention_bias: fc.constant(false),
  mlp_bias: fc.constant(false),
  attention_dropout: fc.constant(0),
  rope_scaling: fc.constant(null),
  head_dim: fc.constantFrom(null, 2, 4, 8, 128),
  dtype: fc.constantFrom('float32', 'float16', 'bfloat16'),
};

/** Some keys of config.json (each usually right, sometimes broken), plus unknown and prototype keys. */
const configObject: fc.Arbitrary<string> = fc.tuple(
  fc.subarray([...VALID_JSON_KEYS]),
  fc.array(fc.tuple(nastyString, nastyValue), { maxLength: 2 }),
  fc.boolean(),
).chain(([keys, extra, withExtra]) => fc.tuple(...keys.map((k) => mostly(goodValue[k]!, 8))).map((values) => {
  const pairs: [string, JsonNode][] = [];
  keys.forEach((k, i) => { if (values[i] !== undefined) pairs.push([k, values[i]!]); });
  return toJsonText(new JsonObj(withExtra ? [...pairs, ...extra] : pairs));
}));

test(`fuzz config.json objects: a valid config or a ConfigError naming the file (seed ${fuzzSeed(11)}, 2500 cases)`, () => {
  const tally = new Tally();
  fc.assert(fc.property(fc.oneof({ arbitrary: configObject, weight: 8 }, { arbitrary: nastyValue.map(toJsonText), weight: 1 }), (text) => checkConfig(text, tally)), { seed: fuzzSeed(11), numRuns: 2500 });
  tally.check(0.05, 0.3);
});

const validText = fc.constantFrom(...PRESET_NAMES).map((name) => new TextEncoder().encode(stringifyConfig(presetConfig(name, { bos_token_id: 0, eos_token_id: 1 }))));

test(`fuzz config.json bytes: mutated files give a valid config or a ConfigError naming the file (seed ${fuzzSeed(12)}, 1000 cases)`, () => {
  // Decoded as the checkpoint reader does (readFile(path, 'utf8')).
  const tally = new Tally();
  fc.assert(fc.property(mutated(validText), (bytes) => checkConfig(Buffer.from(bytes).toString('utf8'), tally)), { seed: fuzzSeed(12), numRuns: 1000 });
  tally.check(0.002, 0.5);
});

// ---------------------------------------------------------------- regressions found by the fuzzer

function throwsConfigError(text: string, pattern: RegExp): void {
  assert.throws(() => parseConfigJSON(text, FILE), (e: unknown) => e instanceof ConfigError && e.message.startsWith(`${FILE}: `) && pattern.test(e.message) && e.message.length < 1000);
}

test('regression: keys named after Object.prototype members are unknown keys, not a TypeError or silently accepted', () => {
  // Before: "__proto__" threw TypeError (check is not a function), "hasOwnProperty" a TypeError,
  // "constructor" and "toString" printed nonsense as the problem.
  for (const key of ['__proto__', 'constructor', 'toString', 'hasOwnProperty', 'isPrototypeOf', 'valueOf']) {
    throwsConfigError(`{"${key}": 1}`, new RegExp(`unknown key "${key}"; valid keys: architectures, `));
  }
});

test('regression: a value nested 50 000 deep is a ConfigError, not a stack overflow from printing it', () => {
  const deep = '['.repeat(50000) + ']'.repeat(50000);
  throwsConfigError(`{"vocab_size": ${deep}}`, /vocab_size = \[\[\[\[\[\.\.\.\]\]\]\]\] must be a positive integer/);
  throwsConfigError(`{"use_cache": ${deep}}`, /use_cache = \[\[\[\[\[\.\.\.\]\]\]\]\] must be true or false/);
});

test('regression: 1e999 (Infinity to JSON.parse) is printed as Infinity, not null; a 1 MB value or key is cut short', () => {
  throwsConfigError('{"rope_theta": 1e999}', /rope_theta = Infinity must be a finite number > 0/);
  throwsConfigError(`{"model_type": "${'m'.repeat(1 << 20)}"}`, /model_type = "mmm+\.\.\. must be 'llama'/);
  throwsConfigError(`{"${'k'.repeat(1 << 20)}": 1}`, /unknown key "kkk+\.\.\.; valid keys/);
});

test('regression: a JSON syntax error in a multi-line config.json gives a one-line ConfigError', () => {
  // V8's JSON.parse message quotes the text around the error, newlines included.
  throwsConfigError('CausalLM"\n  ],\n  "model_type": "llama"\n}\n', /^[^\n]*not valid JSON \(.*\\n.*\); expected a Hugging Face LlamaConfig object$/);
});
