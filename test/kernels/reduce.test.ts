import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { Tensor } from '../../index.js';
import {
  memory, resetPeak, arange, CpuBackend, DeviceMismatchError, DTypeError, fromArray, full, max, mean, ones, roundToF16, scope, ShapeError, StepError, sum,
  sumOfSquares, zeros,
} from '../../index.js';
import { sumOfSquaresMany } from '../../kernels/index.js';
import { chunking, planPass } from '../../kernels/reduce-webgpu.js';
import { bothBackends, runOnBoth, testBothBackends } from '../helpers/backends.js';

const vals = async (t: Tensor) => [...await t.toArray()];

testBothBackends('reduce: hand-computed sum, mean, max over axes, negative axes, keepdim', async () => {
  await scope(async () => {
    const x = arange(24).reshape([2, 3, 4]); // x[i,j,k] = 12i + 4j + k
    assert.deepEqual(await vals(sum(x)), [276]);
    assert.deepEqual(sum(x).shape, []);
    assert.deepEqual(await vals(sum(x, { axis: 0 })), [12, 14, 16, 18, 20, 22, 24, 26, 28, 30, 32, 34]);
    assert.deepEqual(await vals(sum(x, { axis: -1 })), [6, 22, 38, 54, 70, 86]);
    assert.deepEqual(await vals(sum(x, { axis: [0, 2] })), [60, 92, 124]);
    assert.deepEqual(sum(x, { axis: [2, 0], keepdim: true }).shape, [1, 3, 1]);
    assert.deepEqual(await vals(mean(x, { axis: 1, keepdim: true })), [4, 5, 6, 7, 16, 17, 18, 19]);
    assert.deepEqual(mean(x, { axis: 1, keepdim: true }).shape, [2, 1, 4]);
    assert.deepEqual(await vals(mean(x)), [11.5]);
    assert.deepEqual(await vals(max(x, { axis: [1] })), [8, 9, 10, 11, 20, 21, 22, 23]);
    assert.deepEqual(await vals(max(fromArray([[3, -1], [-7, 2]]), { axis: 0 })), [3, 2]);
    assert.deepEqual(await vals(sum(x, { axis: [] })), await vals(x), 'no axes: nothing reduced (NumPy)');
    // size-1 dims and a scalar input
    assert.deepEqual(await vals(sum(arange(6).reshape([1, 6, 1]), { axis: [0, 2] })), [0, 1, 2, 3, 4, 5]);
    assert.deepEqual(await vals(max(full([], -3))), [-3]);
    // rank 7 with alternating axes: several reduced dims after merging (the general walk)
    const y = arange(2 * 3 * 2 * 2 * 3 * 2 * 2).reshape([2, 3, 2, 2, 3, 2, 2]);
    const s = await vals(sum(y, { axis: [0, 2, 4, 6] }));
    const expect = new Array<number>(12).fill(0);
    for (let i = 0; i < y.size; i++) {
      const c = [i / 144, (i / 48) % 3, (i / 24) % 2, (i / 12) % 2, (i / 4) % 3, (i / 2) % 2, i % 2].map(Math.floor);
      expect[c[1]! * 4 + c[3]! * 2 + c[5]!]! += i;
    }
    assert.deepEqual(s, expect);
  });
});

testBothBackends('reduce: dtypes (f16 accumulates in f32, i32 wraps, NaN wins max, -inf survives, f64 on cpu)', async (b) => {
  await scope(async () => {
    // f16 accumulation would give 2048 (2048 + 1 rounds back to 2048 twice); f32 gives 2050, exact in f16
    assert.deepEqual(await vals(sum(fromArray([2048, 1, 1], [3], { dtype: 'f16' }))), [2050]);
    assert.equal(sum(fromArray([1], [1], { dtype: 'f16' })).dtype, 'f16');
    const i = fromArray([2 ** 31 - 1, 1, 5, -2], [2, 2], { dtype: 'i32' });
    assert.deepEqual(await vals(sum(i, { axis: 1 })), [-(2 ** 31), 3]);
    assert.deepEqual(await vals(max(i, { axis: 0 })), [2 ** 31 - 1, 1]);
    assert.equal(sum(i).dtype, 'i32');
    const m = await vals(max(fromArray([[1, NaN, 3], [-Infinity, -Infinity, -Infinity]]), { axis: 1 }));
    assert.ok(Number.isNaN(m[0]!), `max with a NaN is NaN, got ${m[0]}`);
    assert.equal(m[1], -Infinity);
    // the same through the vec4 paths: a long row (rows4) and columns of a [3, 8] tensor (cols4)
    const long = Array.from({ length: 40 }, (_, k) => (k === 5 ? NaN : k));
    assert.ok(Number.isNaN((await vals(max(fromArray(long))))[0]!), 'NaN wins in a long row');
    const cols = await vals(max(fromArray(long.slice(0, 24), [3, 8]), { axis: 0 }));
    assert.ok(Number.isNaN(cols[5]!) && cols.filter(Number.isNaN).length === 1, `NaN wins in its column only: ${cols}`);
    assert.deepEqual(await vals(max(fromArray(long.slice(0, 24), [8, 3]), { axis: 0 })).then((v) => v.map(Number.isNaN)), [false, false, true]);
    assert.ok(Number.isNaN((await vals(sum(fromArray([1, NaN, 2]))))[0]!));
    if (b.name === 'cpu') {
      const d = fromArray([0.1, 0.2, 0.3], [3], { dtype: 'f64' });
      assert.deepEqual(await vals(sum(d)), [0.1 + 0.2 + 0.3], 'f64 sums in f64');
      assert.equal(mean(d).dtype, 'f64');
      assert.deepEqual(await vals(max(d)), [0.3]);
    }
    assert.deepEqual(await vals(max(fromArray([-5, -2, -9], [3], { dtype: 'f16' }))), [-2]);
    assert.deepEqual(await vals(mean(fromArray([1, 2, 4, 4], [2, 2], { dtype: 'f16' }), { axis: 0 })), [2.5, 3]);
  });
});

testBothBackends('reduce: multi-pass sizes are exact on integers; the result is deterministic', async (b) => {
  await scope(async () => {
    assert.deepEqual(await vals(sum(ones([40000]))), [40000]); // three passes on WebGPU
    assert.deepEqual(await vals(mean(ones([300, 200]), { axis: 0 })), new Array(200).fill(1));
    const z = arange(300 * 7).reshape([300, 7]); // z[i, j] = 7i + j: column sums 7 * 44850 + 300j, row sums 49i + 21
    assert.deepEqual(await vals(sum(z, { axis: 0 })), [0, 1, 2, 3, 4, 5, 6].map((j) => 313950 + 300 * j));
    assert.deepEqual(await vals(sum(z.reshape([7, 300]), { axis: 1 })), [0, 1, 2, 3, 4, 5, 6].map((i) => 300 * 299 / 2 + 90000 * i));
    assert.deepEqual(await vals(max(z.reshape([150, 2, 7]), { axis: [0, 2] })), [2092, 2099]);
    const a = arange(70001, undefined, 1, { dtype: 'i32' });
    assert.deepEqual(await vals(max(a)), [70000]);
    assert.deepEqual(await vals(sum(a)), [((70000 * 70001) / 2) | 0], 'i32 sum wraps past 2^31');
    const r = arange(0, 5, 0.0001); // 50000 inexact f32 values
    const first = await vals(sum(r)), again = await vals(sum(r));
    assert.deepEqual(again, first, `${b.name}: same bits on a second run`);
    assert.deepEqual(await vals(sumOfSquaresMany([r])), await vals(sumOfSquares(r)));
  });
});

testBothBackends('reduce: empty reductions (sum 0, mean NaN, max throws) and empty outputs', async () => {
  await scope(async () => {
    const e = zeros([2, 0, 3]);
    assert.deepEqual(await vals(sum(e, { axis: 1 })), [0, 0, 0, 0, 0, 0]);
    assert.deepEqual(await vals(sum(zeros([0]))), [0]);
    assert.ok((await vals(mean(e, { axis: [1] }))).every(Number.isNaN));
    assert.throws(() => max(e, { axis: 1 }), (err: unknown) => err instanceof ShapeError && /max: cannot take the max over an empty dim of tensor .* \[2, 0, 3\]/.test(err.message));
    assert.deepEqual(max(e, { axis: 2 }).shape, [2, 0]);
    assert.deepEqual(await vals(max(e, { axis: 2 })), []);
    assert.deepEqual(await vals(sum(e, { axis: 0, keepdim: true })), []);
    assert.deepEqual(await vals(sumOfSquaresMany([zeros([0]), zeros([0, 4])])), [0]);
  });
});

testBothBackends('reduce: bad input gives clear errors', async () => {
  await scope(async () => {
    const x = zeros([2, 3]);
    assert.throws(() => sum(x, { axis: 2 }), (e: unknown) => e instanceof ShapeError && /sum: axis 2 is out of range for shape \[2, 3\] \(rank 2\)/.test(e.message));
    assert.throws(() => mean(x, { axis: -3 }), /mean: axis -3 is out of range/);
    assert.throws(() => max(x, { axis: [1, -1] }), /max: axis \[1, -1\] names a dim .* twice/);
    assert.throws(() => sum(x, { axis: 0.5 }), /axis 0.5 is out of range/);
    assert.throws(() => sum(full([], 1), { axis: 0 }), /is a scalar; it has no axis 0/);
    assert.throws(() => mean(zeros([2], { dtype: 'i32' })), (e: unknown) => e instanceof DTypeError && /mean: .* is i32/.test(e.message));
    assert.throws(() => sumOfSquares(zeros([2], { dtype: 'i32' })), /sumOfSquaresMany: tensor 0 .* is i32/);
    assert.throws(() => sumOfSquaresMany([]), (e: unknown) => e instanceof StepError && /at least one tensor/.test(e.message));
    const other = fromArray([1], [1], { device: new CpuBackend() });
    if (x.backend.name !== 'cpu' || x.backend !== other.backend) {
      assert.throws(() => sumOfSquaresMany([x, other]), (e: unknown) => e instanceof DeviceMismatchError && /tensor 1 .* is on cpu/.test(e.message));
    }
    x.dispose();
    assert.throws(() => sum(x), /sum: tensor .* was used after dispose/);
  });
});

testBothBackends('sumOfSquares: values, mixed dtypes, one scalar for many tensors', async (b) => {
  await scope(async () => {
    assert.deepEqual(await vals(sumOfSquares(fromArray([[1, -2], [3, 0]]))), [14]);
    const s = sumOfSquaresMany([fromArray([1, 2]), fromArray([-3], [1], { dtype: 'f16' }), ones([1000]), zeros([0])]);
    assert.deepEqual(s.shape, []);
    assert.equal(s.dtype, 'f32');
    assert.deepEqual(await vals(s), [1014]);
    assert.deepEqual(await vals(sumOfSquaresMany(new Array(20).fill(0).map((_, k) => full([k + 130], 2)))), [4 * (20 * 130 + 190)]);
    if (b.name === 'cpu') {
      const d = sumOfSquares(fromArray([0.1, 0.2], [2], { dtype: 'f64' }));
      assert.equal(d.dtype, 'f64');
      assert.equal(await d.item(), 0.1 * 0.1 + 0.2 * 0.2);
    }
  });
});

testBothBackends('reduce: scratch partials count as backend staging, so tensor bytes match the cpu backend', async () => {
  await scope(async () => {
    const x = ones([300, 200]); // 240000 bytes; its reductions take several passes on WebGPU
    resetPeak();
    const outs = [sum(x), max(x, { axis: 0 }), sumOfSquaresMany([x, x])];
    await Promise.all(outs.map((o) => o.toArray()));
    const tensors = 240000 + 4 + 800 + 4;
    assert.equal(memory().peakTensors.total, tensors, 'x and the three outputs, nothing else');
    assert.equal(memory().live.temporary, tensors);
  });
});

test('webgpu pass planning: vec4 modes where the layout allows, scalar elsewhere', () => {
  const walk = (dims: [number, number][]) => dims.map(([size, stride]) => ({ size, strides: [stride] }));
  const plan = (kept: [number, number][], red: [number, number][]) => ({
    kept: walk(kept), red: walk(red), outer: kept.reduce((p, d) => p * d[0], 1), inner: red.reduce((p, d) => p * d[0], 1),
  });
  assert.equal(planPass(plan([], [[40001, 1]]), 40001).mode, 'rows4', 'a global sum reads vec4s (scalar tail)');
  assert.equal(planPass(plan([[7, 300]], [[300, 1]]), 2100).mode, 'rows4', 'rows of 300 are 4-aligned');
  assert.equal(planPass(plan([[7, 301]], [[301, 1]]), 2107).mode, 'scalar', 'rows of 301 are not');
  assert.equal(planPass(plan([[200, 1]], [[300, 200]]), 60000).mode, 'cols4', 'a sum over axis 0 with 200 columns');
  assert.equal(planPass(plan([[7, 1]], [[300, 7]]), 2100).mode, 'scalar', '7 columns');
  const p = planPass(plan([], [[40001, 1]]), 40001);
  assert.ok(p.chunk % 4 === 0 && p.chunks * p.chunk >= 40001 && (p.chunks - 1) * p.chunk < 40001, 'rows4 chunks are 4-aligned and cover the row');
  assert.equal(planPass(plan([[200, 1]], [[300, 200]]), 60000).oFast, true, 'cols4 partials are [chunks, outer]');
});

test('webgpu chunking: passes shrink, chunks cover the row, small rows take one pass', () => {
  assert.deepEqual(chunking(1, 100), { chunks: 1, chunk: 100 });
  assert.deepEqual(chunking(100000, 500), { chunks: 1, chunk: 500 });
  for (const [outer, inner] of [[1, 40000], [1, 2 ** 24], [7, 1001], [64, 129]] as const) {
    const { chunks, chunk } = chunking(outer, inner);
    assert.ok(chunks > 1 && chunks < inner, `${outer}x${inner}: ${chunks} chunks`);
    assert.ok(chunk * chunks >= inner && chunk * (chunks - 1) < inner, 'every chunk is non-empty and they cover the row');
  }
});

// ---------------------------------------------------------------------------------------------
// Conformance: webgpu vs cpu vs an independent host reference

/** Per output element: f64 sum, sum of |x|, max, and the row length, by plain index arithmetic. */
function hostReduce(values: readonly number[], shape: readonly number[], axes: readonly number[]) {
  const keptDims = shape.map((_, k) => k).filter((k) => !axes.includes(k));
  const outSize = keptDims.reduce((p, k) => p * shape[k]!, 1);
  const sums = new Array<number>(outSize).fill(0), abs = new Array<number>(outSize).fill(0), maxs = new Array<number>(outSize).fill(-Infinity);
  const count = values.length / Math.max(outSize, 1);
  for (let i = 0; i < values.length; i++) {
    let rest = i, o = 0, scale = 1;
    for (let k = shape.length - 1; k >= 0; k--) {
      const c = rest % shape[k]!;
      rest = Math.floor(rest / shape[k]!);
      if (!axes.includes(k)) { o += c * scale; scale *= shape[k]!; }
    }
    sums[o]! += values[i]!; abs[o]! += Math.abs(values[i]!); maxs[o] = Math.max(maxs[o]!, values[i]!);
  }
  return { sums, abs, maxs, count };
}

const dimArb = fc.oneof({ arbitrary: fc.constant(1), weight: 1 }, { arbitrary: fc.integer({ min: 2, max: 6 }), weight: 4 }, { arbitrary: fc.constantFrom(13, 130), weight: 1 });
/** A shape (at most 20000 elements, to keep tests fast) and axes: undefined, or a random subset in random order, odd ones negative. */
const caseArb = fc.array(dimArb, { maxLength: 5 }).map((s) => {
  while (s.reduce((p, d) => p * d, 1) > 20000) s = s.slice(1);
  return s;
}).chain((shape) => fc.record({
  shape: fc.constant(shape),
  axes: fc.option(fc.array(fc.boolean(), { minLength: shape.length, maxLength: shape.length })
    .map((pick) => shape.map((_, k) => k).filter((k) => pick[k]))
    .chain((a) => fc.shuffledSubarray(a, { minLength: a.length }))
    .map((p) => p.map((k) => (k % 2 ? k - shape.length : k))), { nil: undefined, freq: 4 }),
  keepdim: fc.boolean(),
  seed: fc.nat(),
}));
/** Rank 3-6 with alternating reduced dims: several reduced dims survive merging (the kernel's general walk). */
const alternatingArb = fc.record({
  shape: fc.array(fc.integer({ min: 2, max: 5 }), { minLength: 3, maxLength: 6 }),
  odd: fc.boolean(),
  keepdim: fc.boolean(),
  seed: fc.nat(),
}).map(({ shape, odd, keepdim, seed }) => ({ shape, axes: shape.map((_, k) => k).filter((k) => k % 2 === (odd ? 1 : 0)) as number[] | undefined, keepdim, seed }));
const anyCaseArb = fc.oneof(caseArb, alternatingArb);
const noise = (n: number, seed: number) => Array.from({ length: n }, (_, i) => Math.fround(((Math.sin(seed * 7.1 + i * 12.9898) * 43758.5453) % 1) * 3));
const U32 = 2 ** -24;

test('conformance: sum and mean in f32, within the error bound of f32 summation', async (t) => {
  const both = await bothBackends(t);
  if (!both) return;
  await fc.assert(fc.asyncProperty(anyCaseArb, async ({ shape, axes, keepdim, seed }) => {
    const x = noise(shape.reduce((p, d) => p * d, 1), seed);
    const r = await runOnBoth(both, [{ values: x, shape }], (a) => [sum(a, { axis: axes, keepdim }), mean(a, { axis: axes, keepdim })]);
    const norm = (axes ?? shape.map((_, k) => k)).map((k) => (k < 0 ? k + shape.length : k));
    const h = hostReduce(x, shape, norm);
    // Any order of f32 summation of n terms errs by at most (n-1) u sum|x| (u = 2^-24); the cpu
    // result adds one rounding, and the mean one more for the scale 1/n: (n + 2) u sum|x| covers all.
    for (const [k, name] of [[0, 'sum'], [1, 'mean']] as const) {
      const div = name === 'mean' ? h.count : 1;
      for (let o = 0; o < h.sums.length; o++) {
        const want = h.sums[o]! / div, bound = (h.count + 3) * U32 * h.abs[o]! / div + 1e-30;
        for (const [who, got] of [['gpu', r.gpu[k]![o]!], ['cpu', r.cpu[k]![o]!]] as const) {
          assert.ok(Math.abs(got - want) <= bound, `${name} ${who} ${JSON.stringify({ shape, axes, keepdim })} [${o}]: ${got} vs ${want} (bound ${bound})`);
        }
      }
    }
  }), { numRuns: 30 });
});

test('conformance: max (exact), f16 sums (one f16 ulp), i32 sums (exact, wrapping)', async (t) => {
  const both = await bothBackends(t);
  if (!both) return;
  await fc.assert(fc.asyncProperty(anyCaseArb, fc.constantFrom('f32', 'f16', 'i32'), async ({ shape, axes, keepdim, seed }, dtype) => {
    const n = shape.reduce((p, d) => p * d, 1);
    const x = noise(n, seed).map((v) => (dtype === 'i32' ? Math.round(v * 1e9) | 0 : v));
    const r = await runOnBoth(both, [{ values: x, shape, dtype }], (a) => [max(a, { axis: axes, keepdim }), sum(a, { axis: axes, keepdim })]);
    const stored = dtype === 'f16' ? x.map(roundToF16) : x;
    const h = hostReduce(stored, shape, (axes ?? shape.map((_, k) => k)).map((k) => (k < 0 ? k + shape.length : k)));
    assert.deepEqual(Array.from(r.cpu[0]!), h.maxs, 'cpu max = host max');
    assert.deepEqual(Array.from(r.gpu[0]!), Array.from(r.cpu[0]!), 'max is exact');
    if (dtype === 'i32') {
      assert.deepEqual(Array.from(r.cpu[1]!), h.sums.map((v) => v | 0), 'cpu i32 sum = host sum mod 2^32 (|sum| < 2^53 here)');
      assert.deepEqual(Array.from(r.gpu[1]!), Array.from(r.cpu[1]!), 'i32 sums wrap identically');
    } else if (dtype === 'f16') {
      // Both sum in f32 or better, then round to f16: results may straddle a rounding boundary
      // (one f16 ulp, 2^-10 relative), plus the f32 summation bound on the (f16-rounded) inputs.
      h.sums.forEach((_, o) => {
        const bound = 2 ** -10 * Math.abs(r.cpu[1]![o]!) + (h.count + 3) * U32 * h.abs[o]! + 2 ** -24;
        assert.ok(Math.abs(r.gpu[1]![o]! - r.cpu[1]![o]!) <= bound, `f16 sum [${o}]: ${r.gpu[1]![o]} vs ${r.cpu[1]![o]}`);
      });
    }
  }), { numRuns: 30 });
});

test('conformance: sumOfSquaresMany over mixed f32/f16 tensors, one scalar on the device', async (t) => {
  const both = await bothBackends(t);
  if (!both) return;
  const listArb = fc.array(fc.record({ n: fc.oneof(fc.integer({ min: 0, max: 40 }), fc.integer({ min: 100, max: 3000 })), f16: fc.boolean(), seed: fc.nat() }), { minLength: 1, maxLength: 6 });
  await fc.assert(fc.asyncProperty(listArb, async (list) => {
    const inputs = list.map(({ n, f16, seed }) => ({ values: noise(n, seed), shape: [n], dtype: f16 ? 'f16' as const : 'f32' as const }));
    const r = await runOnBoth(both, inputs, (...xs) => [sumOfSquaresMany(xs), ...xs]);
    const stored = r.cpu.slice(1).flatMap((a) => Array.from(a)); // inputs as stored (f16 rounded)
    const exact = stored.reduce((s, v) => s + v * v, 0);
    // n squares (each rounded, u) summed in f32: (n + 2) u sum(x^2) bounds the error
    const bound = (stored.length + 3) * U32 * exact + 1e-30;
    assert.ok(Math.abs(r.gpu[0]![0]! - exact) <= bound, `gpu ${r.gpu[0]![0]} vs ${exact}`);
    assert.ok(Math.abs(r.cpu[0]![0]! - exact) <= bound, `cpu ${r.cpu[0]![0]} vs ${exact}`);
  }), { numRuns: 20 });
});
