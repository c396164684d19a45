/**
 * Batched greedy generation gives, token for token, what models/generate.ts gives one prompt at a
 * time (temperature 0): prompts of different lengths right-padded in one batch, batches split by
 * the logits budget, rows stopping at the end-of-text token or their own limit. Both backends.
 */
import assert from 'node:assert/strict';
import { generate } from '../../../models/generate.js';
import { initLlama } from '../../../models/llama.js';
import { greedyBatch, type GreedyRequest } from '../../../step/tasks/greedy-batch.js';
import { testBothBackends } from '../../helpers/backends.js';

testBothBackends('greedyBatch equals generate() at temperature 0, prompt by prompt', async (device) => {
  const model = initLlama({ vocab_size: 17, hidden_size: 16, intermediate_size: 32, num_hidden_layers: 2, num_attention_heads: 2,
    rms_norm_eps: 1e-5, rope_theta: 10000, tie_word_embeddings: true, initializer_range: 0.5 }, { device, seed: 5 });
  try {
    const requests: GreedyRequest[] = [
      { prompt: [1, 2, 3], maxNewTokens: 6 },
      { prompt: [4], maxNewTokens: 9 },
      { prompt: [5, 6, 7, 8, 9, 10, 11], maxNewTokens: 3 },
      { prompt: [12, 13], maxNewTokens: 0 },
      { prompt: [14, 15, 16, 1], maxNewTokens: 8 },
    ];
    // an end-of-text token the model actually emits: the third token of the first greedy continuation
    const free = await generate(model, [1, 2, 3], { maxNewTokens: 6, temperature: 0 });
    const eos = free[2]!;
    const want = await Promise.all(requests.map((r) => generate(model, r.prompt, { maxNewTokens: r.maxNewTokens, temperature: 0, eosTokenId: eos })));
    assert.ok(want[0]!.length <= 3 && want[0]!.at(-1) === eos, 'the first row stops at end-of-text');
    await greedyBatch(model, requests, { eosTokenId: eos, maxContext: 16 });
    const before = device.memory().allocated;
    for (const maxLogitBytes of [1 << 20, 1]) {
      assert.deepEqual(await greedyBatch(model, requests, { eosTokenId: eos, maxContext: 16, maxLogitBytes }), want, `budget ${maxLogitBytes}`);
    }
    assert.equal(device.memory().allocated, before, 'generation frees its intermediates');
    await assert.rejects(greedyBatch(model, [{ prompt: [1, 2], maxNewTokens: 15 }], { eosTokenId: eos, maxContext: 16 }), /request 0 needs 2 \+ 15 positions, more than the model's context of 16/);
    await assert.rejects(greedyBatch(model, [{ prompt: [], maxNewTokens: 1 }], { eosTokenId: eos, maxContext: 16 }), /request 0 has an empty prompt/);
  } finally {
    model.dispose();
  }
});
