import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Backend, Tensor } from '../../index.js';
import { checkpoint, CpuBackend, fromArray, Generator, scope, setDevice } from '../../index.js';
import * as A from '../../autograd/index.js';
import { initLlama } from '../../models/llama.js';
import type { LlamaModel } from '../../models/llama.js';
import { freezeLayersWithLora } from '../../step/freeze.js';
import { assertClose, testBothBackends } from '../helpers/backends.js';

const config = (layers: number) => ({ vocab_size: 40, hidden_size: 16, intermediate_size: 24, num_hidden_layers: layers, num_attention_heads: 4, num_key_value_heads: 2, rms_norm_eps: 1e-5, rope_theta: 10000, tie_word_embeddings: false });
const ids = (device: Backend) => fromArray([[1, 5, 9, 13, 17, 21, 25, 29], [2, 4, 8, 16, 32, 3, 6, 12]], [2, 8], { dtype: 'i32', device });

/** Loss and every parameter gradient of one backward, with or without checkpointing. */
async function lossAndGrads(model: LlamaModel, device: Backend, checkpointing: boolean, dropoutSeed: number | null) {
  model.checkpointActivations = checkpointing;
  return scope(async () => {
    model.dropoutGenerator = dropoutSeed === null ? null : new Generator(dropoutSeed);
    const x = ids(device);
    const loss = model.loss(x, x);
    A.backward(loss);
    model.dropoutGenerator = null;
    const grads = await Promise.all(model.parameters().map(async (p) => { const g = [...await p.grad!.toArray()]; p.grad!.dispose(); p.grad = null; return g; }));
    return { loss: await loss.item(), grads };
  });
}

testBothBackends('activation checkpointing: the same loss and gradients as without (LLaMA, GQA, LoRA with dropout)', async (device) => {
  for (const lora of [false, true]) {
    const model = initLlama(config(3), { device, seed: 5 });
    if (lora) freezeLayersWithLora(model, [0, 1], { rank: 4, dropout: 0.25 });
    const seed = lora ? 77 : null;
    const plain = await lossAndGrads(model, device, false, seed);
    const ckpt = await lossAndGrads(model, device, true, seed);
    assert.equal(ckpt.loss, plain.loss, `lora=${lora}: the forward is the same computation`);
    plain.grads.forEach((g, i) => assertClose(ckpt.grads[i]!, g, 1e-5, 1e-7, `lora=${lora}: gradient of ${model.parameters()[i]!.label}`));
    model.dispose();
  }
});

testBothBackends('activation checkpointing: a block keeps only its input, to the byte', async (device) => {
  const savedAfterForward = (layers: number, checkpointing: boolean) => scope(async () => {
    const model = initLlama(config(layers), { device, seed: 1 });
    model.checkpointActivations = checkpointing;
    const x = ids(device);
    const before = device.memory().live.activation;
    const loss = model.loss(x, x);
    const saved = device.memory().live.activation - before;
    A.backward(loss);
    assert.equal(device.memory().live.activation, before, 'backward frees what was saved');
    for (const p of model.parameters()) { p.grad?.dispose(); p.grad = null; }
    model.dispose();
    return saved;
  });
  const perBlock = (await savedAfterForward(2, false)) - (await savedAfterForward(1, false));
  const perBlockCkpt = (await savedAfterForward(2, true)) - (await savedAfterForward(1, true));
  const { hidden_size: H, intermediate_size: I, num_attention_heads: nH, num_key_value_heads: nKV } = config(1);
  const rows = 2 * 8, kv = (H / nH) * nKV;
  assert.equal(perBlockCkpt, rows * H * 4, 'one [B*T, hidden] f32 input per checkpointed block');
  // without: its output (the next norm's input), q, k, v, the second norm's input, gate and up
  // (norm outputs, the SwiGLU product, attention's output and the attention context are recomputed)
  assert.equal(perBlock, rows * (3 * H + 2 * kv + 2 * I) * 4, 'a block without checkpointing');
});

test('checkpoint: gradients of a function of a tensor and closed-over parameters; nothing recorded under noGrad', async () => {
  setDevice(new CpuBackend());
  await scope(async () => {
    const w = fromArray([0.5, -1, 2], [3], { dtype: 'f64' });
    w.requiresGrad = true;
    const x = fromArray([1, 2, 3], [3], { dtype: 'f64' });
    x.requiresGrad = true;
    const f = (t: Tensor) => A.tanh(A.mul(A.square(t), w));
    const [gx, gw] = A.grad(A.sum(f(x)), [x, w]);
    const y = checkpoint(f, x);
    assert.equal(y.gradNode !== null && y.requiresGrad, true);
    A.backward(A.sum(y));
    assertClose(await x.grad!.toArray(), await gx!.toArray(), 1e-12, 0, 'd/dx');
    assertClose(await w.grad!.toArray(), await gw!.toArray(), 1e-12, 0, 'd/dw');
    assert.equal(A.noGrad(() => checkpoint(f, x)).requiresGrad, false);
    x.grad!.dispose(); w.grad!.dispose();
  });
});
