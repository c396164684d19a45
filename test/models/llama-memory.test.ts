import assert from 'node:assert/strict';
import { fromArray, scope } from '../../index.js';
import * as A from '../../autograd/index.js';
import { initLlama } from '../../models/llama.js';
import { freezeLayersWithLora } from '../../step/freeze.js';
import { testBothBackends } from '../helpers/backends.js';

const config = { vocab_size: 50, hidden_size: 32, intermediate_size: 64, num_hidden_layers: 3, num_attention_heads: 4, rms_norm_eps: 1e-5, rope_theta: 10000, tie_word_embeddings: false };

testBothBackends('forward keeps only what backward reads: intermediates are freed block by block', async (device) => {
  for (const lora of [false, true]) {
    const model = initLlama(config, { device, seed: 1 });
    if (lora) freezeLayersWithLora(model, [0, 1], { rank: 4 });
    await scope(async () => {
      const ids = fromArray([[1, 2, 3, 4, 5, 6, 7, 8]], [1, 8], { dtype: 'i32' });
      const before = device.memory().live.temporary;
      const loss = model.loss(ids, ids);
      const live = device.memory().live;
      // what is left besides saved activations: the loss scalar and the i32 ids (48 bytes here)
      assert.ok(live.temporary - before <= 64, `lora=${lora}: ${live.temporary - before} temporary bytes outlive the forward`);
      assert.ok(live.activation > 0);
      const saved = live.activation;
      A.backward(loss);
      // what stays: the block outputs the scope itself still holds (their storage was saved, so it is counted as activation)
      assert.ok(device.memory().live.activation < saved / 2, `lora=${lora}: backward frees the saved tensors (${device.memory().live.activation} of ${saved} left)`);
    });
    assert.equal(device.memory().live.activation, 0, `lora=${lora}: nothing saved outlives the step's scope`);
    model.dispose();
  }
});
