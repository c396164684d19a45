import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CpuBackend } from '../../index.js';
import { generate, sampleToken } from '../../models/generate.js';
import { initLlama } from '../../models/llama.js';

test('sampleToken: greedy, top-k, top-p and temperature on hand-made logits', () => {
  const logits = [0, 3, 1, 2];
  assert.equal(sampleToken(logits, { temperature: 0 }, 0.99), 1);
  assert.equal(sampleToken(logits, { topK: 1 }, 0.99), 1, 'top-1 is greedy');
  // top-k 2 keeps tokens 1 and 3 with p = e^3/(e^3+e^2) = 0.731 and 0.269
  assert.equal(sampleToken(logits, { topK: 2 }, 0.7), 1);
  assert.equal(sampleToken(logits, { topK: 2 }, 0.75), 3);
  // top-p 0.6 keeps only token 1 (its probability alone is 0.64 of the full softmax)
  assert.equal(sampleToken(logits, { topP: 0.6 }, 0.99), 1);
  // a very low temperature is nearly greedy; a very high one nearly uniform
  assert.equal(sampleToken(logits, { temperature: 0.01 }, 0.999), 1);
  assert.equal(sampleToken(logits, { temperature: 1000 }, 0.1), 1, 'u < 1/4 picks the first of the sorted tokens');
  assert.equal(sampleToken(logits, { temperature: 1000 }, 0.9), 0, 'u > 3/4 picks the last (lowest logit)');
});

test('generate: seeded sampling is reproducible, greedy is deterministic, bad input is refused', async () => {
  const device = new CpuBackend();
  const model = initLlama({ vocab_size: 19, hidden_size: 8, intermediate_size: 16, num_hidden_layers: 1, num_attention_heads: 2,
    rms_norm_eps: 1e-5, rope_theta: 10000, tie_word_embeddings: true, initializer_range: 0.5 }, { device, seed: 2 });
  await generate(model, [1], { maxNewTokens: 1 }); // the model's own buffers (RoPE frequencies) exist from here
  const before = device.memory().allocated;
  const a = await generate(model, [1, 2, 3], { maxNewTokens: 6, temperature: 1, seed: 7 });
  const b = await generate(model, [1, 2, 3], { maxNewTokens: 6, temperature: 1, seed: 7 });
  assert.equal(a.length, 6);
  assert.deepEqual(a, b);
  const g1 = await generate(model, [4], { maxNewTokens: 5, temperature: 0 });
  assert.deepEqual(await generate(model, [4], { maxNewTokens: 5, temperature: 0, seed: 99 }), g1);
  const stop = await generate(model, [4], { maxNewTokens: 5, temperature: 0, eosTokenId: g1[1] });
  assert.ok(stop.length <= 2);
  await assert.rejects(generate(model, [], { maxNewTokens: 1 }), /at least one token/);
  await assert.rejects(generate(model, [19], { maxNewTokens: 1 }), /outside the vocabulary/);
  assert.equal(device.memory().allocated, before, 'generation frees its intermediates');
  model.dispose();
});
