import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { LlamaConfig } from '../../models/config.js';
import {
  CONFIG_KEYS, ConfigError, configFromJSON, configToJSON, kvDim, makeConfig, parseConfigJSON, stringifyConfig, validateConfig,
} from '../../models/config.js';
import { countParameters, layerLinears, loraParamsPerLayer, maxLoraRank } from '../../models/config-params.js';
import { PRESET_NAMES, presetConfig } from '../../models/config-presets.js';

/** Random valid configs, grouped-query attention and tied embeddings included. */
const configArb: fc.Arbitrary<LlamaConfig> = fc.record({
  heads: fc.integer({ min: 1, max: 8 }),
  kvDivisor: fc.integer({ min: 1, max: 8 }),
  halfHead: fc.integer({ min: 1, max: 8 }),
  f: fc.integer({ min: 1, max: 64 }),
  layers: fc.integer({ min: 1, max: 6 }),
  vocab: fc.integer({ min: 3, max: 100 }),
  tie: fc.boolean(),
  eps: fc.double({ min: 1e-8, max: 1e-3, noNaN: true }),
}).map(({ heads, kvDivisor, halfHead, f, layers, vocab, tie, eps }) => {
  const kv = [...Array(heads).keys()].map((i) => i + 1).filter((d) => heads % d === 0 && d <= kvDivisor).pop()!;
  return makeConfig({
    hidden_size: heads * 2 * halfHead, intermediate_size: f, num_hidden_layers: layers, num_attention_heads: heads,
    num_key_value_heads: kv, vocab_size: vocab, tie_word_embeddings: tie, rms_norm_eps: eps, max_position_embeddings: 64,
    bos_token_id: 1, eos_token_id: 2,
  });
});

test('configFromJSON({}) is transformers LlamaConfig() with its defaults', () => {
  const c = configFromJSON({});
  assert.deepEqual(c, {
    architectures: ['LlamaForCausalLM'], model_type: 'llama', vocab_size: 32000, hidden_size: 4096, intermediate_size: 11008,
    num_hidden_layers: 32, num_attention_heads: 32, num_key_value_heads: 32, max_position_embeddings: 2048, rms_norm_eps: 1e-6,
    rope_theta: 10000, tie_word_embeddings: false, hidden_act: 'silu', initializer_range: 0.02, bos_token_id: 1, eos_token_id: 2,
  });
  assert.equal(configFromJSON({ num_attention_heads: 8, hidden_size: 512, num_key_value_heads: null }).num_key_value_heads, 8, 'null kv heads = heads');
});

test('a config.json as transformers writes it loads (extras at their defaults), absent ids stay absent', () => {
  const text = JSON.stringify({
    _name_or_path: 'x', architectures: ['LlamaForCausalLM'], attention_bias: false, attention_dropout: 0, bos_token_id: 1,
    eos_token_id: 2, head_dim: 64, hidden_act: 'silu', hidden_size: 2048, initializer_range: 0.02, intermediate_size: 5632,
    max_position_embeddings: 2048, mlp_bias: false, model_type: 'llama', num_attention_heads: 32, num_hidden_layers: 22,
    num_key_value_heads: 4, pad_token_id: null, pretraining_tp: 1, rms_norm_eps: 1e-5, rope_scaling: null, rope_theta: 10000,
    tie_word_embeddings: false, torch_dtype: 'bfloat16', transformers_version: '4.46.0', use_cache: true, vocab_size: 32000,
  });
  const c = parseConfigJSON(text, 'tinyllama/config.json');
  assert.equal(c.num_key_value_heads, 4);
  assert.equal(kvDim(c), 256);
  assert.equal(c.torch_dtype, 'bfloat16');
  assert.equal(c.pad_token_id, undefined);
  assert.equal(c.rms_norm_eps, 1e-5);
  assert.equal(configToJSON(c).pad_token_id, null, 'absent ids are written as null so transformers does not default them');
  assert.equal(configFromJSON({ dtype: 'float16' }).torch_dtype, 'float16', 'transformers >= 4.56 writes dtype');
});

test('JSON round trip: fromJSON(toJSON(c)) = c and the text form is stable', () => {
  fc.assert(fc.property(configArb, fc.boolean(), (c, dropIds) => {
    const d: LlamaConfig = { ...c };
    if (dropIds) { delete d.bos_token_id; delete d.eos_token_id; }
    assert.deepEqual(configFromJSON(configToJSON(d)), d);
    const text = stringifyConfig(d);
    assert.equal(stringifyConfig(parseConfigJSON(text)), text);
    assert.deepEqual(Object.keys(configToJSON(d)), CONFIG_KEYS.filter((k) => k !== 'torch_dtype'));
  }));
});

test('unknown keys are rejected with the list of valid keys', () => {
  assert.throws(() => configFromJSON({ hidden_sise: 64 }), (e: Error) =>
    e instanceof ConfigError && /unknown key "hidden_sise"/.test(e.message) && /hidden_size/.test(e.message) && /num_key_value_heads/.test(e.message));
  assert.throws(() => configFromJSON({ max_sequence_length: 1024 }), /unknown key "max_sequence_length".*max_position_embeddings/);
  assert.throws(() => validateConfig({ ...presetConfig('tiny'), foo: 1 } as LlamaConfig), /unknown key "foo"/);
});

test('validation names the key, the value and the rule', () => {
  const bad: [Record<string, unknown>, RegExp][] = [
    [{ hidden_size: 0 }, /hidden_size = 0 must be a positive integer/],
    [{ vocab_size: 12.5 }, /vocab_size = 12.5 must be a positive integer/],
    [{ num_hidden_layers: -1 }, /num_hidden_layers = -1/],
    [{ hidden_size: 100, num_attention_heads: 3 }, /num_attention_heads = 3 must divide hidden_size 100/],
    [{ hidden_size: 30, num_attention_heads: 2 }, /odd head size 15/],
    [{ num_attention_heads: 32, num_key_value_heads: 5 }, /num_key_value_heads = 5 must divide num_attention_heads 32/],
    [{ hidden_act: 'gelu' }, /hidden_act = "gelu" is not implemented/],
    [{ rms_norm_eps: 0 }, /rms_norm_eps = 0 must be a finite number > 0/],
    [{ tie_word_embeddings: 'yes' }, /tie_word_embeddings/],
    [{ rope_scaling: { type: 'linear', factor: 2 } }, /rope_scaling .* must be null/],
    [{ attention_bias: true }, /attention_bias = true must be false/],
    [{ head_dim: 32 }, /head_dim = 32 must be null or hidden_size \/ num_attention_heads \(4096 \/ 32\)/],
    [{ vocab_size: 10, eos_token_id: 10 }, /eos_token_id = 10 must be a token id in 0..9/],
    [{ architectures: ['MistralForCausalLM'] }, /architectures/],
    [{ model_type: 'mistral' }, /model_type/],
    [{ torch_dtype: 'float64' }, /torch_dtype/],
  ];
  for (const [json, re] of bad) assert.throws(() => configFromJSON(json, 'cfg.json'), (e: Error) => e instanceof ConfigError && re.test(e.message) && e.message.startsWith('cfg.json'), JSON.stringify(json));
  assert.throws(() => parseConfigJSON('{"hidden_size": ', 'ckpt/config.json'), /ckpt\/config.json: not valid JSON/);
  assert.equal(configFromJSON({ pad_token_id: -1 }).pad_token_id, -1, "GaLore's pad -1 is accepted");
  assert.deepEqual(configFromJSON({ eos_token_id: [2, 5] }).eos_token_id, [2, 5]);
});

test('presets: shapes as documented, all valid; unknown names list the valid ones', () => {
  const shapes: Record<string, number[]> = { // hidden, ffn, heads, layers, vocab, ctx
    tiny: [64, 176, 4, 4, 1024, 128], small: [128, 344, 4, 6, 2048, 128], '60m': [512, 1376, 8, 8, 32000, 1024],
    '130m': [768, 2048, 12, 12, 32000, 1024], '350m': [1024, 2736, 16, 24, 32000, 1024], '680m': [1536, 4096, 16, 24, 32000, 1024],
    '1b': [2048, 5461, 32, 24, 32000, 1024],
  };
  assert.deepEqual([...PRESET_NAMES], Object.keys(shapes));
  for (const name of PRESET_NAMES) {
    const c = presetConfig(name);
    assert.deepEqual([c.hidden_size, c.intermediate_size, c.num_attention_heads, c.num_hidden_layers, c.vocab_size, c.max_position_embeddings], shapes[name]);
    assert.equal(c.num_key_value_heads, c.num_attention_heads);
    assert.equal(c.tie_word_embeddings, false);
    assert.deepEqual(configFromJSON(configToJSON(c)), c);
  }
  assert.throws(() => presetConfig('7b'), (e: Error) => /unknown preset "7b"; valid presets: tiny, small, 60m, 130m, 350m, 680m, 1b/.test(e.message));
});

test('preset overrides: vocabulary and layer count, validated; unknown override keys rejected', () => {
  const c = presetConfig('small', { vocab_size: 3000, num_hidden_layers: 12 });
  assert.equal(c.vocab_size, 3000);
  assert.equal(c.num_hidden_layers, 12);
  assert.equal(presetConfig('tiny', { num_attention_heads: 2 }).num_key_value_heads, 2);
  assert.throws(() => presetConfig('tiny', { num_hidden_layers: 0 }), /preset tiny: num_hidden_layers = 0 must be a positive integer/);
  assert.throws(() => presetConfig('tiny', { layers: 3 } as unknown as Partial<LlamaConfig>), /unknown override key "layers"; valid keys: .*num_hidden_layers/);
});

test('parameter counts: the GaLore/STEP sizes by hand', () => {
  // 350m: the STEP paper's 368M model. Layer: 4 h^2 + 3 h f + 2 h.
  const p = countParameters(presetConfig('350m'));
  assert.equal(p.perLayer.total, 4 * 1024 * 1024 + 3 * 1024 * 2736 + 2 * 1024);
  assert.equal(p.perLayer.total, 12_601_344);
  assert.equal(p.embeddings, 32000 * 1024);
  assert.equal(p.head, 32000 * 1024);
  assert.equal(p.finalNorm, 1024);
  assert.equal(p.total, 367_969_280);
  // 1b: the STEP paper's 1.2B counts the decoder without embeddings.
  assert.equal(countParameters(presetConfig('1b')).layers, 24 * (4 * 2048 ** 2 + 3 * 2048 * 5461 + 2 * 2048));
  assert.equal(countParameters(presetConfig('60m')).total, 58_073_600);
  assert.equal(countParameters(presetConfig('tiny', { tie_word_embeddings: true })).head, 0);
});

test('parameter counts and LoRA size for random configs (grouped-query k/v)', () => {
  fc.assert(fc.property(configArb, fc.integer({ min: 1, max: 64 }), (c, r) => {
    const h = c.hidden_size, f = c.intermediate_size, kv = c.num_key_value_heads * (h / c.num_attention_heads);
    const p = countParameters(c);
    assert.equal(p.perLayer.attention, 2 * h * h + 2 * h * kv);
    assert.equal(p.perLayer.mlp, 3 * h * f);
    assert.equal(p.perLayer.norms, 2 * h);
    assert.equal(p.layers, c.num_hidden_layers * (2 * h * h + 2 * h * kv + 3 * h * f + 2 * h));
    assert.equal(p.total, c.vocab_size * h * (c.tie_word_embeddings ? 1 : 2) + p.layers + h);
    assert.equal(layerLinears(c).length, 7);
    assert.equal(maxLoraRank(c), Math.min(h, kv, f));
    if (r <= maxLoraRank(c)) assert.equal(loraParamsPerLayer(c, r), r * (2 * 2 * h + 2 * (h + kv) + 3 * (h + f)));
    else assert.throws(() => loraParamsPerLayer(c, r), /rank \d+ must be an integer in 1\.\./);
  }));
});
