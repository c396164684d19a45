import assert from 'node:assert/strict';
import { fromArray, scope } from '../../index.js';
import * as A from '../../autograd/index.js';
import { initLlama } from '../../models/llama.js';
import { freezeLayersWithLora } from '../../step/freeze.js';
import { testBothBackends } from '../helpers/backends.js';

const config = { vocab_size: 50, hidden_size: 32, intermediate_size: 64, num_hidden_layers: 3, num_attention_heads: 4, rms_norm_eps: 1e-5, rope_theta: 10000, tie_word_embeddings: false };
const F32 = 4;

/**
 * The activation bytes of one forward of `tokens` tokens (batch 1), from the shapes: per block
 * four [T, H] tensors (q, k and v: attention keeps no [heads, T, T] probabilities and recomputes
 * its output in backward; the second norm's input), two [T, I] (gate and up), its [T, H] output (the
 * next norm's input) and, per adapted linear, its [T, r] down-projection; besides, the i32 ids [T].
 * Recomputed in backward instead: norm outputs, the SwiGLU product, the attention context, the
 * embedded tokens; no [T, V]: the LM head and the loss run fused over row chunks.
 */
function forwardActivationBytes(tokens: number, adaptedLinears: number, rank: number): number {
  const { hidden_size: H, intermediate_size: I, num_hidden_layers: L } = config;
  const block = 5 * tokens * H + 2 * tokens * I;
  return F32 * (L * block + adaptedLinears * tokens * rank + tokens);
}

testBothBackends('forward keeps only what backward reads, to the byte: intermediates are freed block by block', async (device) => {
  const T = 8, rank = 4, headDim = config.hidden_size / config.num_attention_heads;
  for (const lora of [false, true]) {
    const model = initLlama(config, { device, seed: 1 });
    if (lora) freezeLayersWithLora(model, [0, 1], { rank });
    await scope(async () => {
      const ids = fromArray([[1, 2, 3, 4, 5, 6, 7, 8]], [1, T], { dtype: 'i32' });
      const before = device.memory().live.temporary;
      const loss = model.loss(ids, ids);
      const live = device.memory().live;
      // temporary: + the f32 loss scalar + RoPE's f32 inverse frequencies [headDim / 2]; - the ids, now saved (activation);
      // + the fused loss's gradients, computed in forward and held for backward: dh [T, H] and the head's dW [V, H]
      const lossGrads = F32 * (T * config.hidden_size + config.vocab_size * config.hidden_size);
      assert.equal(live.temporary - before, F32 + F32 * (headDim / 2) - F32 * T + lossGrads, `lora=${lora}: temporary bytes after the forward`);
      assert.equal(live.activation, forwardActivationBytes(T, lora ? 2 * 7 : 0, rank), `lora=${lora}: saved activation bytes`);
      A.backward(loss);
      // the forward hands its caller only the loss; the graph owns what it saved, and backward frees all of it
      assert.equal(device.memory().live.activation, 0, `lora=${lora}: backward frees every saved tensor`);
      assert.equal(ids.category, 'temporary', `lora=${lora}: the ids are temporary again once backward is done`);
      assert.equal(device.memory().live.temporary - before, F32 + F32 * (headDim / 2), `lora=${lora}: only the loss scalar and RoPE's frequencies remain`);
    });
    assert.equal(device.memory().live.activation, 0, `lora=${lora}: nothing saved outlives the step's scope`);
    model.dispose();
  }
});
