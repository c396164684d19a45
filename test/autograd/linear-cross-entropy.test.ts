import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { Backend } from '../../index.js';
import { CpuBackend, fromArray, Generator, rand, scope } from '../../index.js';
import * as A from '../../autograd/index.js';
import { defaultChunkRows } from '../../autograd/ops/linear-cross-entropy.js';
import { initLlama } from '../../models/llama.js';
import { assertClose, testBothBackends } from '../helpers/backends.js';

const F32 = 4;

interface Case { n: number; hidden: number; vocab: number; chunkRows: number; targets: number[]; seed: number }

const caseArb = fc.record({ n: fc.integer({ min: 0, max: 13 }), hidden: fc.integer({ min: 1, max: 6 }), vocab: fc.integer({ min: 1, max: 11 }), chunkRows: fc.integer({ min: 1, max: 16 }), seed: fc.nat() })
  .chain((c) => fc.array(fc.oneof(fc.integer({ min: 0, max: c.vocab - 1 }), fc.constant(-100)), { minLength: c.n, maxLength: c.n }).map((targets): Case => ({ ...c, targets })));

/** A case's h [n, hidden] and weight [vocab, hidden] (both requiring grad) and i32 targets, from its seed. */
function inputsOf(device: Backend, c: Case) {
  const g = new Generator(c.seed);
  const h = rand([c.n, c.hidden], { generator: g, low: -2, high: 2, device });
  const w = rand([c.vocab, c.hidden], { generator: g, low: -2, high: 2, device });
  h.requiresGrad = true; w.requiresGrad = true;
  return { h, w, t: fromArray(new Int32Array(c.targets), [c.n], { dtype: 'i32', device }) };
}

/** Loss and gradients (h, weight) of the fused op or of matmul + crossEntropy, as host arrays. */
async function lossAndGrads(device: Backend, c: Case, fused: boolean): Promise<number[][]> {
  return scope(async () => {
    const { h, w, t } = inputsOf(device, c);
    const loss = fused ? A.linearCrossEntropy(h, w, t, { chunkRows: c.chunkRows }) : A.crossEntropy(A.matmul(h, w, { transB: true }), t);
    const [dh, dw] = A.grad(loss, [h, w]);
    return Promise.all([loss, dh!, dw!].map(async (x) => Array.from(await x.toArray() as Float32Array)));
  });
}

testBothBackends('property: fused loss and gradients equal matmul + crossEntropy (ignored targets, chunks that do not divide N, N < chunk)', async (device) => {
  await fc.assert(fc.asyncProperty(caseArb, async (c) => {
    const [fused, plain] = [await lossAndGrads(device, c, true), await lossAndGrads(device, c, false)];
    ['loss', 'dh', 'dweight'].forEach((what, k) => assertClose(fused[k]!, plain[k]!, 1e-5, 1e-6, `${what} of ${JSON.stringify(c)}`));
  }), { numRuns: device.name === 'cpu' ? 60 : 15, seed: 7 });
});

test('gradcheck: linearCrossEntropy in f64, several chunks, an ignored target', async () => {
  const rnd = (n: number, seed: number) => Array.from({ length: n }, (_, i) => Math.sin(seed * 97 + i * 12.9898) * 1.5);
  for (const chunkRows of [1, 2, 3, 8]) {
    const r = await A.gradcheck((h, w, t) => A.linearCrossEntropy(h, w, t, { chunkRows }), [
      { values: rnd(5 * 3, 1), shape: [5, 3] }, { values: rnd(4 * 3, 2), shape: [4, 3] },
      { values: [0, 3, -100, 2, 1], shape: [5], dtype: 'i32', requiresGrad: false },
    ]);
    assert.ok(r.ok, `chunkRows ${chunkRows}: max rel error ${r.maxRelError} at ${JSON.stringify(r.worst)}`);
  }
});

testBothBackends('a frozen head gets no gradient, a frozen h neither; a tied head sums both uses', async (device) => {
  await scope(async () => {
    const g = new Generator(3);
    const embed = rand([7, 4], { generator: g, device }); embed.requiresGrad = true;
    const ids = fromArray(new Int32Array([1, 6, 0, 2, 2]), [5], { dtype: 'i32', device });
    const t = fromArray(new Int32Array([6, 0, -100, 3, 1]), [5], { dtype: 'i32', device });
    // tied: h comes from the same leaf the head reads
    const tied = (fused: boolean) => {
      const h = A.tanh(A.gatherRows(embed, ids));
      return fused ? A.linearCrossEntropy(h, embed, t, { chunkRows: 2 }) : A.crossEntropy(A.matmul(h, embed, { transB: true }), t);
    };
    const [gf] = A.grad(tied(true), [embed]), [gp] = A.grad(tied(false), [embed]);
    assertClose(await gf!.toArray(), await gp!.toArray(), 1e-5, 1e-6, 'tied embedding gradient');

    const h = rand([5, 4], { generator: g, device }); h.requiresGrad = true;
    const frozen = rand([7, 4], { generator: g, device });
    const loss = A.linearCrossEntropy(h, frozen, t, { chunkRows: 2 });
    A.backward(loss);
    assert.equal(frozen.grad, null, 'a frozen head gets no gradient');
    assert.ok(h.grad, 'h gets its gradient');
    const hFixed = rand([5, 4], { generator: g, device });
    const w = rand([7, 4], { generator: g, device }); w.requiresGrad = true;
    A.backward(A.linearCrossEntropy(hFixed, w, t, { chunkRows: 3 }));
    assert.equal(hFixed.grad, null, 'an input without requiresGrad gets no gradient');
    assert.ok(w.grad, 'the head gets its gradient');
    assert.equal(A.linearCrossEntropy(hFixed, frozen, t).gradNode, null, 'nothing to differentiate: nothing recorded');
  });
});

testBothBackends('gradients are made in forward: backward only scales them (upstream gradient, retainGraph twice, a forward never backpropagated frees all)', async (device) => {
  const c: Case = { n: 9, hidden: 5, vocab: 11, chunkRows: 4, targets: [3, -100, 0, 10, 2, 2, 7, 1, 5], seed: 11 };
  const [, dh1, dw1] = await lossAndGrads(device, c, false);
  await scope(async () => {
    const { h, w, t } = inputsOf(device, c);
    const loss = A.mul(A.linearCrossEntropy(h, w, t, { chunkRows: c.chunkRows }), 3);
    const before = device.stats.dispatches;
    A.backward(loss, { retainGraph: true });
    // the seed, the mul's backward, and per gradient a cast and a scaling (recomputing 3 chunks would take 12 products and more)
    assert.ok(device.stats.dispatches - before <= 8, `backward ran ${device.stats.dispatches - before} kernels`);
    assertClose(await h.grad!.toArray(), dh1!.map((x) => 3 * x), 1e-5, 1e-6, 'dh times the upstream 3');
    assertClose(await w.grad!.toArray(), dw1!.map((x) => 3 * x), 1e-5, 1e-6, 'dW times the upstream 3');
    A.backward(loss); // the second, final backward sees the same saved gradients
    assertClose(await w.grad!.toArray(), dw1!.map((x) => 6 * x), 1e-5, 1e-6, 'dW accumulated twice');
    assertClose(await h.grad!.toArray(), dh1!.map((x) => 6 * x), 1e-5, 1e-6, 'dh accumulated twice');
    assert.throws(() => A.backward(loss), /already freed/);
    const allocated = device.memory().allocated;
    const unused = A.linearCrossEntropy(h, w, t, { chunkRows: c.chunkRows });
    assert.ok(device.memory().allocated > allocated, 'the forward holds its gradients for backward');
    unused.dispose();
    assert.equal(device.memory().allocated, allocated, 'disposing a loss never backpropagated frees the gradients it held');
  });
});

/** Peak allocated bytes above the start while `fn` runs (loss + backward), everything freed after. */
async function peakOf(device: Backend, fn: () => Promise<void>): Promise<number> {
  device.tracker.resetPeak();
  const before = device.memory().allocated;
  await fn();
  return device.memory().peak.total - before;
}

testBothBackends('memory: loss + backward of a [N, V] case peaks below the logits, within two chunks of logits plus the gradients', async (device) => {
  const n = 64, hidden = 8, vocab = 512, chunkRows = 8;
  const logitsBytes = n * vocab * F32, chunkBytes = chunkRows * vocab * F32;
  const run = (fused: boolean) => peakOf(device, () => scope(async () => {
    const g = new Generator(5);
    const h = rand([n, hidden], { generator: g, device }); h.requiresGrad = true;
    const w = rand([vocab, hidden], { generator: g, device }); w.requiresGrad = true;
    const t = fromArray(new Int32Array(n).map((_, i) => (i * 37) % vocab), [n], { dtype: 'i32', device });
    const loss = fused ? A.linearCrossEntropy(h, w, t, { chunkRows }) : A.crossEntropy(A.matmul(h, w, { transB: true }), t);
    A.backward(loss);
  }));
  const fused = await run(true), plain = await run(false);
  // inputs h, w, targets; the chunk's logits and dlogits; dW (accumulator + one chunk's) and dh (its chunks + the concat); a few
  // scalars and the chunk's h rows, targets and per-row losses
  const inputs = (n * hidden + vocab * hidden + n) * F32;
  const bound = inputs + 2 * chunkBytes + 2 * vocab * hidden * F32 + 2 * n * hidden * F32 + chunkRows * (hidden + 2) * F32 + 64;
  assert.ok(fused <= bound, `fused peak ${fused} bytes exceeds the bound ${bound}`);
  assert.ok(fused - inputs < logitsBytes, `fused peak above the inputs ${fused - inputs} is not below the logits' ${logitsBytes} bytes`);
  assert.ok(plain - inputs >= 2 * logitsBytes, `the unfused path holds logits and dlogits (${plain - inputs} bytes above the inputs)`);
});

test('the fused loss runs where the [N, V] logits exceed the largest buffer the device allows', async () => {
  const device = new CpuBackend({ maxBufferBytes: 16 * 1024 });
  await scope(async () => {
    const g = new Generator(9);
    const n = 64, vocab = 256; // logits: 64 KiB, four times the limit
    assert.equal(defaultChunkRows(vocab, 'f32', device.maxBufferBytes), 16);
    const h = rand([n, 8], { generator: g, device }); h.requiresGrad = true;
    const w = rand([vocab, 8], { generator: g, device }); w.requiresGrad = true;
    const t = fromArray(new Int32Array(n).map((_, i) => i % vocab), [n], { dtype: 'i32', device });
    assert.throws(() => A.matmul(h, w, { transB: true }), /largest bindable buffer/);
    const loss = A.linearCrossEntropy(h, w, t);
    A.backward(loss);
    assert.ok(Number.isFinite(await loss.item()) && w.grad !== null && h.grad !== null);
  });
});

test('defaultChunkRows keeps a chunk under 32 MiB and the binding limit, at least one row', () => {
  assert.equal(defaultChunkRows(32000, 'f32', 2 ** 30), Math.floor(32 * 2 ** 20 / (32000 * 4)));
  assert.equal(defaultChunkRows(1000, 'f32', 8000), 2);
  assert.equal(defaultChunkRows(1000, 'f16', 2 ** 30), Math.floor(32 * 2 ** 20 / 2000));
  assert.equal(defaultChunkRows(10 ** 9, 'f32', 2 ** 30), 1);
});

testBothBackends('LLaMA: the fused loss equals the unfused one, and the step peak drops by about the logits', async (device) => {
  const config = { vocab_size: 512, hidden_size: 16, intermediate_size: 32, num_hidden_layers: 1, num_attention_heads: 2, rms_norm_eps: 1e-5, rope_theta: 10000, tie_word_embeddings: false };
  const b = 2, t = 32, chunkRows = 8, n = b * t;
  const model = initLlama(config, { device, seed: 2 });
  const ids = fromArray(new Int32Array(n).map((_, i) => (i * 131) % config.vocab_size), [b, t], { dtype: 'i32', device });
  const losses: number[] = [];
  const step = (fused: boolean) => peakOf(device, () => scope(async () => {
    const loss = fused ? model.loss(ids, ids, { chunkRows })
      : A.crossEntropy(A.reshape(model.forward(ids), [n, config.vocab_size]), A.reshape(ids, [n]));
    losses.push(await loss.item());
    A.backward(loss);
    for (const p of model.parameters()) { p.grad?.dispose(); p.grad = null; }
  }));
  const plain = await step(false), fused = await step(true);
  assert.ok(Math.abs(losses[0]! - losses[1]!) <= 1e-5 * losses[0]!, `losses ${losses[0]} (unfused) vs ${losses[1]} (fused)`);
  const logitsBytes = n * config.vocab_size * F32;
  // the unfused step holds the logits and, at its peak, their gradient too; the fused one a chunk of each (and a second
  // lm_head gradient). Where the peak falls depends on the rest of the step, so the test asks for one logits' worth at least
  const expectedDrop = logitsBytes;
  assert.ok(plain - fused >= expectedDrop, `peak ${plain} -> ${fused} bytes: dropped ${plain - fused}, expected at least ${expectedDrop}`);
  ids.dispose();
  model.dispose();
});

test('errors name linearCrossEntropy and the values involved', () => {
  const device = new CpuBackend();
  const h = rand([4, 3], { device }), w = rand([5, 3], { device });
  const t = fromArray(new Int32Array([0, 1, 2, 3]), [4], { dtype: 'i32', device });
  assert.throws(() => A.linearCrossEntropy(h, rand([5, 2], { device }), t), /linearCrossEntropy: h .*\[4, 3\].* must share the hidden size/);
  assert.throws(() => A.linearCrossEntropy(h, w, t, { chunkRows: 0 }), /linearCrossEntropy: chunkRows must be a positive integer, got 0/);
  assert.throws(() => A.linearCrossEntropy(h, w, fromArray(new Int32Array([0, 1]), [2], { dtype: 'i32', device })), /linearCrossEntropy: targets .* must be i32 \[N\] = \[4\]/);
  assert.throws(() => A.linearCrossEntropy(rand([4], { device }), w, t), /linearCrossEntropy: h must be \[N, H\]/);
});
