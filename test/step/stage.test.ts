import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CpuBackend, fromArray, initLlama, setDevice } from '../../index.js';
import type { LlamaDims } from '../../index.js';
import { nextStage } from '../../step/index.js';

const config: LlamaDims = {
  vocab_size: 29, hidden_size: 16, intermediate_size: 24, num_hidden_layers: 2, num_attention_heads: 4,
  num_key_value_heads: 4, rms_norm_eps: 1e-5, rope_theta: 10000, tie_word_embeddings: false, initializer_range: 0.2,
};

test('nextStage grows, freezes the old layers with LoRA, and a second stage merges the first stage\'s adapters', async () => {
  const device = new CpuBackend();
  setDevice(device);
  const ids = fromArray([[1, 5, 7, 2]], [1, 4], { dtype: 'i32' });
  const model = initLlama(config, { device, seed: 1 });
  const s2 = nextStage(model, 2, { lora: { rank: 2 } });
  assert.equal(s2.model.layers.length, 4);
  assert.deepEqual(s2.frozenLayers, [0, 3]);
  assert.deepEqual(s2.newLayers, [1, 2]);
  for (const i of s2.frozenLayers) {
    const layer = s2.model.layers[i]!;
    assert.ok(layer.linears.every((l) => l.lora && l.weight.category === 'frozen' && !l.weight.requiresGrad));
  }
  for (const i of s2.newLayers) assert.ok(s2.model.layers[i]!.linears.every((l) => !l.lora && l.weight.requiresGrad));
  const logits2 = await s2.model.forward(ids).toArray();
  const s3 = nextStage(s2.model, 1, { lora: { rank: 2, seed: 5 } });
  assert.equal(s3.model.layers.length, 5);
  assert.equal(s3.frozenLayers.length, 4);
  assert.equal(s3.newLayers.length, 1);
  // every old layer, the stage-2 ones included, is frozen with a fresh adapter (B = 0)
  assert.ok(s3.frozenLayers.every((i) => s3.model.layers[i]!.linears.every((l) => l.lora !== null && l.weight.category === 'frozen')));
  assert.equal(logits2.length, 29 * 4);
  s3.model.dispose();
});
