import assert from 'node:assert/strict';
import {
  arange, clone, DisposedError, DTypeError, empty, fromArray, full, ones, OutOfMemoryError, rand, scope,
  ShapeError, StepError, toDevice, zeros, CpuBackend,
} from '../../index.js';
import { testBothBackends } from '../helpers/backends.js';

testBothBackends('creation: zeros, ones, full, arange, fromArray', async () => {
  await scope(async () => {
    assert.deepEqual([...await zeros([2, 3]).toArray()], [0, 0, 0, 0, 0, 0]);
    assert.deepEqual([...await ones([3], { dtype: 'i32' }).toArray()], [1, 1, 1]);
    assert.deepEqual([...await full([2], -1.5).toArray()], [-1.5, -1.5]);
    assert.deepEqual([...await arange(5).toArray()], [0, 1, 2, 3, 4]);
    assert.deepEqual([...await arange(1, 2, 0.25).toArray()], [1, 1.25, 1.5, 1.75]);
    assert.deepEqual([...await arange(10, 0, -3, { dtype: 'i32' }).toArray()], [10, 7, 4, 1]);
    const m = fromArray([[1, 2, 3], [4, 5, 6]]);
    assert.deepEqual(m.shape, [2, 3]);
    assert.equal(m.dtype, 'f32');
    assert.deepEqual([...await m.toArray()], [1, 2, 3, 4, 5, 6]);
    assert.equal(await fromArray(7).item(), 7);
    assert.equal((await fromArray(new Int32Array([1, -2]))).dtype, 'i32');
  });
});

testBothBackends('dtypes: f16 storage rounds to nearest even, i32 is exact, f32 rounds like Math.fround', async (b) => {
  await scope(async () => {
    const h = fromArray([0.1, 1 + 2 ** -11, 1 + 3 * 2 ** -11, 70000, 2 ** -25], [5], { dtype: 'f16' });
    assert.deepEqual([...await h.toArray()], [0.0999755859375, 1, 1 + 2 ** -9, Infinity, 0]);
    assert.equal(h.storage.allocation.bytes, 10, 'f16 takes 2 bytes per element');
    const i = fromArray([2 ** 31 - 1, -(2 ** 31)], [2], { dtype: 'i32' });
    assert.deepEqual([...await i.toArray()], [2 ** 31 - 1, -(2 ** 31)]);
    assert.deepEqual([...await fromArray([0.1]).toArray()], [Math.fround(0.1)]);
    const c = clone(fromArray([1.7, -2.7]), { dtype: 'i32' });
    assert.deepEqual([...await c.toArray()], [1, -2], 'float -> i32 truncates toward zero');
    if (b.name === 'webgpu') {
      assert.throws(() => zeros([2], { dtype: 'f64' }), (e: unknown) => e instanceof DTypeError && /f64 is not supported by WebGPU/.test(e.message));
    } else {
      const d = fromArray([0.1], [1], { dtype: 'f64' });
      assert.deepEqual([...await d.toArray()], [0.1]);
      assert.ok((await d.toArray()) instanceof Float64Array);
    }
  });
});

testBothBackends('reshape is free: it shares storage and memory', async (b) => {
  await scope(async () => {
    const before = b.memory().allocated;
    const a = arange(12);
    const r = a.reshape([3, -1]);
    assert.deepEqual(r.shape, [3, 4]);
    assert.equal(b.memory().allocated - before, 48, 'one storage of 12 floats');
    a.dispose();
    assert.deepEqual([...await r.toArray()].slice(0, 3), [0, 1, 2], 'the view keeps the storage alive');
    assert.throws(() => r.reshape([5, -1]), (e: unknown) => e instanceof ShapeError && /cannot reshape \[3, 4\] \(12 elements\)/.test(e.message));
    assert.throws(() => r.reshape([-1, -1]), /at most one -1/);
    r.dispose();
    assert.equal(b.memory().allocated, before, 'freed with its last view');
  });
});

testBothBackends('use after dispose names the tensor and the op; dispose is idempotent', async () => {
  const t = zeros([2, 2], { label: 'w_q' });
  t.dispose();
  t.dispose();
  assert.equal(t.isDisposed, true);
  await assert.rejects(t.toArray(), (e: unknown) => e instanceof DisposedError && /toArray: tensor "w_q" \[2, 2\] was used after dispose\(\)/.test(e.message));
  assert.throws(() => t.reshape([4]), (e: unknown) => e instanceof DisposedError && /reshape/.test(e.message));
  assert.throws(() => clone(t), (e: unknown) => e instanceof DisposedError && /^clone: /.test(e.message));
  assert.match(String(t), /disposed/);
});

testBothBackends('bad input: clear errors naming the op and the values', async () => {
  assert.throws(() => zeros([2, NaN]), (e: unknown) => e instanceof ShapeError && /zeros|full/.test(e.message) && /NaN/.test(e.message));
  assert.throws(() => zeros([-1]), /invalid dimension -1/);
  assert.throws(() => zeros([1.5]), /invalid dimension 1.5/);
  assert.throws(() => zeros('3' as never), /shape must be an array/);
  assert.throws(() => full([2], NaN), /full: value must be a number/);
  assert.throws(() => fromArray([[1, 2], [3]]), /ragged nested array/);
  assert.throws(() => fromArray([1, 2, 3], [2, 2]), /3 values do not fill shape \[2, 2\]/);
  assert.throws(() => fromArray([1.5], [1], { dtype: 'i32' }), /not a 32-bit integer/);
  assert.throws(() => zeros([2], { dtype: 'f8' as never }), /unknown dtype "f8"/);
  assert.throws(() => zeros([2], { category: 'weights' as never }), /unknown memory category "weights"/);
  assert.throws(() => arange(0, 5, 0), /step must be finite and non-zero/);
  await scope(async () => {
    await assert.rejects(fromArray([1, 2]).item(), /item: .* has 2 elements, expected 1/);
  });
});

testBothBackends('empty tensors and one-element tensors', async (b) => {
  await scope(async () => {
    const e = zeros([0, 3]);
    assert.equal(e.size, 0);
    assert.deepEqual([...await e.toArray()], []);
    assert.deepEqual([...await arange(0).toArray()], []);
    assert.deepEqual([...await rand([0]).toArray()], []);
    assert.equal(await full([], 3).item(), 3);
    assert.equal(b.memory().live.temporary, 4, 'empty tensors take 0 bytes');
  });
});

testBothBackends('a tensor larger than the binding limit fails clearly and allocates nothing', async (b) => {
  const before = b.memory();
  const limit = b.name === 'webgpu' ? (b as unknown as { limits: GPUSupportedLimits }).limits.maxStorageBufferBindingSize : 2 ** 27;
  const n = Math.floor(limit / 4) + 1;
  assert.throws(() => empty([n]), (e: unknown) => e instanceof OutOfMemoryError && /exceed the device's largest bindable buffer/.test(e.message));
  assert.deepEqual(b.memory().allocated, before.allocated);
});

testBothBackends('toDevice copies across backends; mixing backends in one op is an error', async (b) => {
  await scope(async () => {
    const other = new CpuBackend();
    const a = rand([5]);
    const c = await toDevice(a, other);
    assert.equal(c.backend, other);
    assert.deepEqual([...await c.toArray()], [...await a.toArray()]);
    if (b !== other) {
      assert.equal(other.memory().allocated, 20);
    }
    const { runKernel } = await import('../../kernels/index.js');
    assert.throws(() => runKernel('copy', { inputs: [a], outputs: [c], attrs: {} }), (e: unknown) => e instanceof StepError && /is on (cpu|webgpu) but/.test(e.message));
  });
});
