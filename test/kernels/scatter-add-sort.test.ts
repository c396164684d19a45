import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { fromArray, scope, setDevice, StepError } from '../../index.js';
import { scatterAddRows } from '../../kernels/index.js';
import { radixPasses } from '../../kernels/scatter-add-sort.js';
import { assertClose, bothBackends, testBothBackends } from '../helpers/backends.js';

testBothBackends('scatterAddRows sort: the hand-computed gradient, any method', async () => {
  await scope(async () => {
    const ids = fromArray([3, 0, 3, 1], [4], { dtype: 'i32' });
    const grad = fromArray([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], [4, 3]);
    for (const method of ['auto', 'links', 'sort'] as const) {
      assert.deepEqual([...await scatterAddRows(grad, ids, 5, { method }).toArray()], [3, 4, 5, 9, 10, 11, 0, 0, 0, 6, 8, 10, 0, 0, 0], method);
    }
    // f16 gradients accumulate in f32 along the sorted segment too
    const h = scatterAddRows(fromArray([2048, 1, 1], [3, 1], { dtype: 'f16' }), fromArray([1, 1, 1], [3], { dtype: 'i32' }), 2, { method: 'sort' });
    assert.deepEqual([...await h.toArray()], [0, 2050]);
    assert.throws(() => scatterAddRows(grad, ids, 5, { method: 'bubble' as 'sort' }), (e: unknown) => e instanceof StepError && /method must be 'auto', 'links' or 'sort', got "bubble"/.test(e.message));
  });
});

test('scatterAddRows sort: radix passes cover the out-of-range key V', () => {
  assert.equal(radixPasses(1), 1);
  assert.equal(radixPasses(255), 1);
  assert.equal(radixPasses(256), 2); // keys 0..256 need 9 bits
  assert.equal(radixPasses(32000), 2);
  assert.equal(radixPasses(65535), 2);
  assert.equal(radixPasses(65536), 3);
});

/** Random ids (repeats, runs, one hot id) and gradients; blocks of 256 positions are crossed. */
const cases = fc.record({
  t: fc.integer({ min: 1, max: 1200 }),
  h: fc.integer({ min: 1, max: 4 }),
  v: fc.constantFrom(1, 7, 300, 70_000),
  hot: fc.double({ min: 0, max: 0.9, noNaN: true }),
  seed: fc.integer({ min: 0, max: 2 ** 30 }),
});

function makeCase(c: { t: number; h: number; v: number; hot: number; seed: number }): { ids: number[]; grad: number[] } {
  let s = c.seed;
  const rand = () => { s = (s * 1103515245 + 12345) % 2 ** 31; return s / 2 ** 31; };
  const ids = Array.from({ length: c.t }, () => (rand() < c.hot ? 0 : Math.floor(rand() * c.v)));
  // not exactly representable sums: a different order of additions changes the bits
  const grad = Array.from({ length: c.t * c.h }, () => (rand() - 0.5) * 3);
  return { ids, grad };
}

test('scatterAddRows sort: bit-for-bit equal to the link method, and to the cpu reference', async (t) => {
  const both = await bothBackends(t);
  if (!both) return;
  await fc.assert(fc.asyncProperty(cases, async (c) => {
    const { ids, grad } = makeCase(c);
    const on = (device: typeof both.gpu, method: 'links' | 'sort') => scope(async () => {
      setDevice(device);
      const out = scatterAddRows(fromArray(grad, [c.t, c.h], { device }), fromArray(ids, [c.t], { dtype: 'i32', device }), c.v, { method });
      return [...await out.toArray()];
    });
    const sorted = await on(both.gpu, 'sort');
    assert.deepEqual(sorted, await on(both.gpu, 'links'), 'same additions in the same order');
    assertClose(sorted, await on(both.cpu, 'sort'), 1e-6, 1e-5, 'scatterAddRows sort vs cpu');
  }), { numRuns: 12, seed: 11 });
});

test('scatterAddRows sort: ids out of range are skipped on WebGPU, the others still summed in order', async (t) => {
  const both = await bothBackends(t);
  if (!both) return;
  setDevice(both.gpu);
  await scope(async () => {
    const t0 = 2000; // > one block of 256 and above SORT_FROM_TOKENS, so 'auto' sorts
    const ids = Array.from({ length: t0 }, (_, i) => (i % 5 === 0 ? -1 : i % 7 === 0 ? 9 : i % 3));
    const grad = Array.from({ length: t0 }, (_, i) => i);
    const expected = [0, 0, 0];
    ids.forEach((id, i) => { if (id >= 0 && id < 3) expected[id]! += i; });
    const out = scatterAddRows(fromArray(grad, [t0, 1]), fromArray(ids, [t0], { dtype: 'i32' }), 3);
    assert.deepEqual([...await out.toArray()], expected);
  });
});
