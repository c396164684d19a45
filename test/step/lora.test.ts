import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CpuBackend, fromArray, Generator, rand, scope, setDevice } from '../../index.js';
import * as A from '../../autograd/index.js';
import { addScaledInPlace } from '../../kernels/elementwise.js';
import { initLlama } from '../../models/llama.js';
import type { LlamaDims } from '../../models/llama.js';
import { freezeLayersWithLora, mergeLora, restartLora } from '../../step/freeze.js';
import { restartGenerator } from '../../step/train/methods.js';
import { testBothBackends } from '../helpers/backends.js';

const config: LlamaDims = {
  vocab_size: 23, hidden_size: 16, intermediate_size: 24, num_hidden_layers: 2, num_attention_heads: 2,
  rms_norm_eps: 1e-5, rope_theta: 10000, tie_word_embeddings: true, initializer_range: 0.2,
};

testBothBackends('LoRA on frozen layers: no change at start, only adapters train, exact merge', async (device) => {
  await scope(async () => {
    const model = initLlama(config, { device, seed: 5 });
    const ids = fromArray([[1, 2, 3, 4, 5], [6, 7, 8, 9, 10]], [2, 5], { dtype: 'i32' });
    const targets = fromArray([[2, 3, 4, 5, -100], [7, 8, 9, 10, -100]], [2, 5], { dtype: 'i32' });
    const before = await model.forward(ids).toArray();
    freezeLayersWithLora(model, [0], { rank: 4, alpha: 8, seed: 1 });
    const frozen = model.layers[0]!;
    assert.equal(frozen.q.weight.requiresGrad, false);
    assert.equal(frozen.q.weight.category, 'frozen');
    assert.equal(frozen.q.lora!.A.category, 'parameter');
    const start = await model.forward(ids).toArray();
    assert.deepEqual(Array.from(start), Array.from(before), 'B = 0: the adapters add nothing at first');
    // a few SGD steps on the trainable tensors only
    for (let step = 0; step < 3; step++) {
      await scope(async () => {
        const loss = model.loss(ids, targets);
        A.backward(loss);
        for (const p of model.parameters()) { addScaledInPlace(p, p.grad!, -0.5); p.grad!.dispose(); p.grad = null; }
      });
    }
    assert.equal(frozen.q.weight.grad, null, 'a frozen weight never gets a gradient');
    const bNorm = Array.from(await frozen.q.lora!.B.toArray()).reduce((s, x) => s + Math.abs(x), 0);
    assert.ok(bNorm > 0, 'B received gradient from step 1');
    const trained = await model.forward(ids).toArray();
    const frozenBytes = device.memory().live.frozen;
    assert.equal(mergeLora(model), 7);
    assert.equal(frozen.q.lora, null);
    const merged = await model.forward(ids).toArray();
    let worst = 0, scale = 0;
    for (let i = 0; i < merged.length; i++) { worst = Math.max(worst, Math.abs(merged[i]! - trained[i]!)); scale = Math.max(scale, Math.abs(trained[i]!)); }
    assert.ok(worst <= 1e-5 * Math.max(1, scale), `logits changed by ${worst} across the merge`);
    assert.equal(device.memory().live.frozen, frozenBytes, 'the merge writes into the frozen weights in place');
    model.dispose();
  });
});


test('LoRA dropout: applied only while a generator is set, reproducible per seed, inverted scaling', async () => {
  const device = new CpuBackend();
  setDevice(device);
  await scope(async () => {
    const model = initLlama(config, { device, seed: 5 });
    freezeLayersWithLora(model, [0, 1], { rank: 4, alpha: 8, seed: 1, dropout: 0.5 });
    for (const l of model.layers) for (const x of l.linears) device.write(x.lora!.B.storage, new Array(x.lora!.B.size).fill(0.05));
    const ids = fromArray([[1, 2, 3, 4]], [1, 4], { dtype: 'i32' });
    const plain = await model.forward(ids).toArray();
    model.dropoutGenerator = new Generator(9);
    const d1 = await model.forward(ids).toArray();
    model.dropoutGenerator = new Generator(9);
    const d2 = await model.forward(ids).toArray();
    model.dropoutGenerator = new Generator(10);
    const d3 = await model.forward(ids).toArray();
    model.dropoutGenerator = null;
    assert.deepEqual(Array.from(await model.forward(ids).toArray()), Array.from(plain), 'no generator: no dropout');
    assert.deepEqual(Array.from(d1), Array.from(d2), 'same seed, same masks');
    assert.notDeepEqual(Array.from(d1), Array.from(plain));
    assert.notDeepEqual(Array.from(d1), Array.from(d3));
    assert.throws(() => model.layers[0]!.q.addLora(2, 2, new Generator(0), 'f32', 1), /already has a LoRA adapter|dropout must be in \[0, 1\)/);
    model.dispose();
  });
});

testBothBackends('ReLoRA restart: merges each adapter into its weight and re-initialises the same tensors as a new adapter would be', async (device) => {
  await scope(async () => {
    const model = initLlama(config, { device, seed: 5 });
    const ids = fromArray([[1, 2, 3, 4, 5]], [1, 5], { dtype: 'i32' });
    freezeLayersWithLora(model, [0, 1], { rank: 4, alpha: 8, seed: 1 });
    for (const l of model.layers) for (const x of l.linears) device.write(x.lora!.B.storage, Array.from({ length: x.lora!.B.size }, (_, i) => 0.01 * ((i % 7) - 3)));
    const adapters = model.layers.flatMap((l) => l.linears.map((x) => x.lora!));
    const before = await model.forward(ids).toArray();
    assert.equal(restartLora(model, (layer, linear) => new Generator(100 * layer + linear)), 14);
    // same tensor objects (the optimizer's state stays attached), B zero, A the draws of a fresh adapter from the same stream
    assert.deepEqual(model.layers.flatMap((l) => l.linears.map((x) => x.lora!)).map((a) => [a.A, a.B]), adapters.map((a) => [a.A, a.B]));
    for (const [li, l] of model.layers.entries()) {
      for (const [xi, x] of l.linears.entries()) {
        const bound = 1 / Math.sqrt(x.inFeatures);
        const fresh = rand(x.lora!.A.shape as number[], { low: -bound, high: bound, generator: new Generator(100 * li + xi), device });
        assert.deepEqual(Array.from(await x.lora!.A.toArray()), Array.from(await fresh.toArray()), `${x.name}: A redrawn`);
        assert.ok(Array.from(await x.lora!.B.toArray()).every((v) => v === 0), `${x.name}: B zeroed`);
      }
    }
    const after = await model.forward(ids).toArray();
    let worst = 0;
    for (let i = 0; i < after.length; i++) worst = Math.max(worst, Math.abs(after[i]! - before[i]!));
    assert.ok(worst > 0 || before.length === 0, 'B was non-zero, so the weights moved');
    assert.ok(worst <= 1e-5, `the merge keeps the function: logits moved by ${worst}`);
    model.dispose();
  });
});

test('restartGenerator: per restart one seed, per adapter slot its own window of the stream, wider than any adapter', () => {
  const states = [];
  for (const step of [3, 4]) for (let layer = 0; layer < 3; layer++) for (let linear = 0; linear < 7; linear++) states.push(restartGenerator(10, step, layer, linear).getState());
  assert.deepEqual(new Set(states.map((s) => s.seed)), new Set([13, 14]), 'seed: run seed + step');
  for (const seed of [13, 14]) {
    const offsets = states.filter((s) => s.seed === seed).map((s) => s.offset).sort((a, b) => a - b);
    assert.equal(offsets[0], 0);
    // an A of rank r x in draws ceil(r * in / 4) blocks: windows of 2^24 blocks fit any A up to 2^26 elements
    for (let k = 1; k < offsets.length; k++) assert.equal(offsets[k]! - offsets[k - 1]!, 2 ** 24, 'adjacent slots are one window apart');
  }
  assert.deepEqual(restartGenerator(7, 9, 1, 2).getState(), restartGenerator(7, 9, 1, 2).getState(), 'a resumed run derives the same stream');
});
