import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Backend, DType, Tensor } from '../../index.js';
import { fromArray, Generator, scope } from '../../index.js';
import * as A from '../../autograd/index.js';
import { uniformInPlace } from '../../engine/creation.js';
import { Linear, setTrainable } from '../../models/linear.js';
import { assertClose, testBothBackends } from '../helpers/backends.js';

// x [2, 3, H] -> RMSNorm -> q, k and a frozen linear with a LoRA adapter (dropout) -> gate, up -> SwiGLU -> down
const H = 8, I = 12, ROWS = 6;
const values = (n: number, seed: number, offset = 0) => Array.from({ length: n }, (_, i) => offset + 0.5 * Math.sin(seed * 13 + i * 0.9));
const sizeOf = (dtype: DType) => (dtype === 'f16' ? 2 : 4);

interface Leaves { x: Tensor; norm: Tensor; q: Tensor; k: Tensor; gate: Tensor; up: Tensor; down: Tensor; adapted: Linear }

function leaves(device: Backend, dtype: DType): Leaves {
  const leaf = (shape: number[], seed: number, offset = 0) => {
    const t = fromArray(values(shape.reduce((a, b) => a * b, 1), seed, offset), shape, { dtype, device });
    t.requiresGrad = true;
    return t;
  };
  const adapted = new Linear('adapted', leaf([5, H], 9));
  setTrainable(adapted.weight, false);
  const lora = adapted.addLora(2, 4, new Generator(3), dtype, 0.25);
  uniformInPlace(lora.B, -0.5, 0.5, new Generator(4)); // a zero B would give A no gradient
  return { x: leaf([2, 3, H], 1), norm: leaf([H], 2, 1), q: leaf([5, H], 3), k: leaf([4, H], 4), gate: leaf([I, H], 5), up: leaf([I, H], 6), down: leaf([H, I], 7), adapted };
}

/**
 * The block-like forward. With `copy`, the norm output and the SwiGLU product pass through an
 * exact identity copy (+ 0) first, so the linears save the copies: the path without recomputation.
 */
function forward(p: Leaves, copy: boolean, dropout: Generator): Tensor {
  const maybeCopy = (t: Tensor) => (copy ? A.add(t, 0) : t);
  const h = maybeCopy(A.rmsNorm(p.x, p.norm, 1e-5));
  const q = A.matmul(h, p.q, { transB: true });
  const k = A.matmul(h, p.k, { transB: true });
  const lora = p.adapted.forward(h, dropout);
  const s = maybeCopy(A.swiglu(A.matmul(h, p.gate, { transB: true }), A.matmul(h, p.up, { transB: true })));
  const out = A.matmul(s, p.down, { transB: true });
  // a loss linear in the four outputs saves nothing of its own: what is saved is the block's
  const total = (t: Tensor) => A.sum(A.cast(t, 'f32'));
  return A.add(A.add(total(q), total(k)), A.add(total(lora), total(out)));
}

const trainable = (p: Leaves) => [p.x, p.norm, p.q, p.k, p.gate, p.up, p.down, p.adapted.lora!.A, p.adapted.lora!.B];

/** The gradients, the activation bytes saved by the forward, and the recomputations backward ran. */
async function run(device: Backend, dtype: DType, copy: boolean) {
  const p = leaves(device, dtype);
  const result = await scope(async () => {
    const before = device.memory().live;
    const loss = forward(p, copy, new Generator(11));
    const saved = device.memory().live.activation - before.activation;
    const seq = device.tracker.timeline().at(-1)!.seq;
    A.backward(loss);
    const rebuilt = device.tracker.timeline().filter((e) => e.seq > seq && e.kind === 'alloc' && (e.label === 'rmsNorm' || e.label === 'swiglu')).map((e) => e.label);
    assert.equal(device.memory().live.activation, before.activation, 'backward frees every saved tensor');
    return { saved, rebuilt, grads: await Promise.all(trainable(p).map(async (t) => [...await t.grad!.toArray()])) };
  });
  for (const t of trainable(p)) { t.grad?.dispose(); t.dispose(); }
  p.adapted.dispose();
  return result;
}

testBothBackends('recomputed RMSNorm and SwiGLU outputs: the same gradients as saving them, nothing saved for them, rebuilt once', async (device) => {
  for (const dtype of ['f32', 'f16'] as const) {
    const saving = await run(device, dtype, true);
    const recomputing = await run(device, dtype, false);
    const [rtol, atol] = dtype === 'f32' ? [1e-6, 1e-7] : [1e-3, 1e-4];
    saving.grads.forEach((g, i) => assertClose(recomputing.grads[i]!, g, rtol, atol, `${dtype}: gradient ${i}`));
    // both save gate, up, the adapter's dropout mask and masked input [ROWS, H] and its down-projection [ROWS, 2]
    const common = sizeOf(dtype) * ROWS * (2 * I + 2 * H + 2);
    assert.equal(recomputing.saved, common, `${dtype}: nothing for the norm output and the product (recomputed)`);
    assert.equal(saving.saved, common + sizeOf(dtype) * ROWS * (H + I), `${dtype}: the identity copies of the norm output and the product are saved`);
    // one rebuild each, shared by the norm output's consumers (q, k, gate, up and the adapter)
    assert.deepEqual(recomputing.rebuilt.sort(), ['rmsNorm', 'swiglu'], `${dtype}: rebuilt once each`);
    assert.deepEqual(saving.rebuilt, [], `${dtype}: nothing to rebuild when the copies were saved`);
  }
});

testBothBackends('recomputed outputs: retainGraph runs backward twice; an unused forward and its rebuilt copy are freed', async (device) => {
  const p = leaves(device, 'f32');
  const once = await scope(async () => {
    A.backward(forward(p, false, new Generator(11)));
    return Promise.all(trainable(p).map(async (t) => { const g = [...await t.grad!.toArray()]; t.grad!.dispose(); t.grad = null; return g; }));
  });
  const baseline = device.memory().live;
  await scope(async () => {
    const loss = forward(p, false, new Generator(11));
    A.backward(loss, { retainGraph: true });
    A.backward(loss);
  });
  const twice = await Promise.all(trainable(p).map((t) => t.grad!.toArray()));
  once.forEach((g, i) => assertClose(twice[i]!, g.map((v) => 2 * v), 1e-6, 1e-7, `gradient ${i} after two backwards`));
  for (const t of trainable(p)) { t.grad!.dispose(); t.grad = null; }
  await scope(async () => { forward(p, false, new Generator(11)); }); // never backpropagated
  const after = device.memory().live;
  assert.equal(after.activation, baseline.activation, 'nothing saved outlives the graph');
  assert.equal(after.temporary, baseline.temporary, 'no rebuilt copy outlives the graph');
  for (const t of trainable(p)) t.dispose();
  p.adapted.dispose();
});

testBothBackends('a consumer of a norm output rebuilds it after the norm node is gone, and saves it when its input is freed', async (device) => {
  const p = leaves(device, 'f32');
  for (const inputFreed of [false, true]) {
    const dW = await scope(async () => {
      const input = A.mul(p.x, 1); // an intermediate: freed once its tensor and the norm node let go
      const y = A.rmsNorm(input, p.norm, 1e-5);
      const yv = await y.toArray();
      const consumed = y.detach(); // a consumer outside the norm's graph
      input.dispose(); // the norm node still holds the storage
      if (inputFreed) y.dispose(); // the norm node is dropped with its saved input: nothing can rebuild y
      const before = device.memory().live.activation;
      const loss = A.sum(A.matmul(consumed, p.q, { transB: true }));
      const saved = device.memory().live.activation - before;
      assert.equal(saved, inputFreed ? 4 * ROWS * H : 0, `inputFreed=${inputFreed}: the consumer keeps the output only when it cannot be rebuilt`);
      y.dispose(); // the norm node is dropped; the promise still holds the input's storage
      A.backward(loss);
      // d sum(y W^T) / dW = the column sums of y, for every output row
      const col = Array.from({ length: H }, (_, j) => Array.from({ length: ROWS }, (_, r) => yv[r * H + j]!).reduce((a, b) => a + b, 0));
      return { got: await p.q.grad!.toArray(), want: Array.from({ length: 5 }, () => col).flat() };
    });
    assertClose(dW.got, dW.want, 1e-5, 1e-6, `inputFreed=${inputFreed}: dW`);
    p.q.grad!.dispose();
    p.q.grad = null;
  }
  for (const t of trainable(p)) { t.grad?.dispose(); t.dispose(); }
  p.adapted.dispose();
});

test('gradcheck: RMSNorm into two linears, SwiGLU into a linear, with the recomputed outputs (f64)', async () => {
  const shapes = [[2, 3, 4], [4], [3, 4], [5, 4], [5, 4], [4, 5]];
  const inputs = shapes.map((shape, k) => ({ values: values(shape.reduce((a, b) => a * b, 1), k + 1, k === 1 ? 1 : 0), shape }));
  const r = await A.gradcheck((x, norm, w1, gate, up, down) => {
    const h = A.rmsNorm(x!, norm!, 1e-5);
    const s = A.swiglu(A.matmul(h, gate!, { transB: true }), A.matmul(h, up!, { transB: true }));
    return A.add(A.matmul(h, w1!, { transB: true }), A.sum(A.matmul(s, down!, { transB: true }), { axis: -1, keepdim: true }));
  }, inputs, { rtol: 1e-4, atol: 1e-7 });
  assert.ok(r.ok, `worst relative error ${r.maxRelError} at ${JSON.stringify(r.worst)}`);
});
