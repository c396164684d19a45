import assert from 'node:assert/strict';
import type { Backend } from '../../index.js';
import { checkpoint, fromArray, parameter, scope } from '../../index.js';
import * as A from '../../autograd/index.js';
import { initLlama } from '../../models/llama.js';
import { testBothBackends } from '../helpers/backends.js';

const config = { vocab_size: 40, hidden_size: 16, intermediate_size: 24, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, rms_norm_eps: 1e-5, rope_theta: 10000, tie_word_embeddings: false };

/** The most `gradient` bytes live at once in one backward of a fresh model (a peak window of the tracker). */
async function gradientPeak(device: Backend, checkpointing: boolean): Promise<{ peak: number; paramGrads: number }> {
  return scope(async () => {
    const model = initLlama(config, { device, seed: 3 });
    model.checkpointActivations = checkpointing;
    const x = fromArray([[1, 5, 9, 13, 17, 21, 25, 29], [2, 4, 8, 16, 32, 3, 6, 12]], [2, 8], { dtype: 'i32', device });
    const window = device.tracker.openPeakWindow();
    A.backward(model.loss(x, x));
    window.close();
    const paramGrads = model.parameters().reduce((s, p) => s + p.grad!.size * 4, 0);
    model.dispose();
    return { peak: window.report().peakByCategory.gradient, paramGrads };
  });
}

testBothBackends('activation checkpointing: a block input\'s gradient is never counted as model state (`gradient` = the parameters\' grads)', async (device) => {
  for (const checkpointing of [false, true]) {
    const { peak, paramGrads } = await gradientPeak(device, checkpointing);
    assert.equal(peak, paramGrads, `checkpointing=${checkpointing}: the gradient peak is the parameters' gradients, to the byte`);
  }
});

testBothBackends('checkpoint: gradients still reach the input and the parameters inside', async (device) => {
  await scope(async () => {
    const w = parameter(fromArray([2, 3], [2], { device }));
    const x = parameter(fromArray([1, 4], [2], { device }));
    const y = checkpoint((t) => A.mul(A.mul(t, w), t), x);
    A.backward(A.sum(y));
    assert.deepEqual([...await x.grad!.toArray()], [4, 24], 'd/dx of w x^2 = 2 w x');
    assert.deepEqual([...await w.grad!.toArray()], [1, 16], 'd/dw = x^2');
    assert.equal(x.grad!.category, 'gradient', 'the outer leaf x keeps its own .grad as model state');
  });
});
