import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { Tensor } from '../../index.js';
import {
  arange, concat, CpuBackend, DTypeError, fromArray, full, gatherRows, ones, permute, roundToF16, scope, ShapeError,
  setDevice, slice, StepError, transpose, zeros,
} from '../../index.js';
import { scatterAddRows } from '../../kernels/index.js';
import { bothBackends, runOnBoth, testBothBackends } from '../helpers/backends.js';

const vals = async (t: Tensor) => [...await t.toArray()];
const sizeOf = (s: readonly number[]) => s.reduce((p, d) => p * d, 1);

/** Row-major coordinates of linear index i in shape. */
function coords(i: number, shape: readonly number[]): number[] {
  const c = new Array<number>(shape.length);
  for (let k = shape.length - 1; k >= 0; k--) { c[k] = i % shape[k]!; i = Math.floor(i / shape[k]!); }
  return c;
}
const linear = (c: readonly number[], shape: readonly number[]) => c.reduce((s, v, k) => s * shape[k]! + v, 0);

function hostPermute(x: readonly number[], shape: readonly number[], order: readonly number[]): number[] {
  const outShape = order.map((d) => shape[d]!);
  return Array.from({ length: x.length }, (_, i) => {
    const co = coords(i, outShape), ci = new Array<number>(shape.length);
    order.forEach((d, k) => { ci[d] = co[k]!; });
    return x[linear(ci, shape)]!;
  });
}

testBothBackends('layout: hand-computed transpose, permute, slice, concat', async () => {
  await scope(async () => {
    const m = fromArray([[1, 2, 3], [4, 5, 6]]);
    assert.deepEqual(await vals(transpose(m, 0, 1)), [1, 4, 2, 5, 3, 6]);
    assert.deepEqual(transpose(m, -1, -2).shape, [3, 2]);
    assert.deepEqual(await vals(transpose(m, 1, 1)), [1, 2, 3, 4, 5, 6]);
    const x = arange(24).reshape([2, 3, 4]);
    const p = permute(x, [2, 0, 1]);
    assert.deepEqual(p.shape, [4, 2, 3]);
    assert.deepEqual((await vals(p)).slice(0, 8), [0, 4, 8, 12, 16, 20, 1, 5]);
    assert.deepEqual(await vals(permute(full([], 7), [])), [7]);
    assert.deepEqual(await vals(slice(m, { axis: 1, start: 1 })), [2, 3, 5, 6]);
    assert.deepEqual(await vals(slice(m, { axis: -1, start: -2, end: -1 })), [2, 5]);
    assert.deepEqual(await vals(slice(m, { axis: 1, step: 2 })), [1, 3, 4, 6]);
    assert.deepEqual(await vals(slice(m, [{ axis: 0, start: 1, end: 99 }, { axis: 1, start: 0, end: 2 }])), [4, 5]);
    assert.deepEqual(slice(m, { axis: 1, start: 2, end: 1 }).shape, [2, 0]);
    assert.deepEqual(await vals(slice(x, [1, 1], [1, -1])), [16, 17, 18, 19, 20, 21, 22, 23]);
    assert.deepEqual(slice(x, [0, 1, 2], [2, 2, 1]).shape, [2, 2, 1]);
    assert.deepEqual(await vals(slice(x, [0, 1, 2], [2, 2, 1])), [6, 10, 18, 22]);
    assert.deepEqual(await vals(concat([m, fromArray([[7, 8, 9]])], 0)), [1, 2, 3, 4, 5, 6, 7, 8, 9]);
    assert.deepEqual(await vals(concat([m, zeros([2, 0]), fromArray([[10], [20]])], -1)), [1, 2, 3, 10, 4, 5, 6, 20]);
    assert.deepEqual(await vals(concat([fromArray([1], [1], { dtype: 'i32' })], 0)), [1]);
    assert.deepEqual(await vals(concat([ones([2], { dtype: 'f16' }), full([1], 0.5, { dtype: 'f16' })], 0)), [1, 1, 0.5]);
  });
});

testBothBackends('layout: copies are bit-exact (NaN, -0, Infinity, i32 extremes, f16) up to rank 8', async () => {
  await scope(async () => {
    const odd = [NaN, -0, Infinity, -Infinity, 1e-45, 3.4028234663852886e38];
    assert.deepEqual(await vals(transpose(fromArray(odd, [2, 3]), 0, 1)), [NaN, -Infinity, -0, Math.fround(1e-45), Infinity, Math.fround(3.4028234663852886e38)]);
    assert.deepEqual(await vals(slice(fromArray([2 ** 31 - 1, -(2 ** 31), 5], [3], { dtype: 'i32' }), { axis: 0, end: 2 })), [2 ** 31 - 1, -(2 ** 31)]);
    assert.deepEqual(await vals(permute(fromArray([-0, 65504, 2 ** -24], [3, 1], { dtype: 'f16' }), [1, 0])), [-0, 65504, 2 ** -24]);
    const shape = [2, 1, 3, 2, 1, 2, 3, 2];
    const x = arange(sizeOf(shape)).reshape(shape);
    const order = [7, 6, 5, 4, 3, 2, 1, 0];
    assert.deepEqual(await vals(permute(x, order)), hostPermute([...await x.toArray()], shape, order));
  });
});

test('layout on the cpu backend: f64 copies, gathers and scatter-adds', async () => {
  setDevice(new CpuBackend());
  await scope(async () => {
    const d = fromArray([[0.1, 0.2], [0.3, 0.4]], undefined, { dtype: 'f64' });
    assert.deepEqual(await vals(transpose(d, 0, 1)), [0.1, 0.3, 0.2, 0.4]);
    assert.deepEqual(await vals(concat([d, slice(d, { axis: 0, start: 1 })], 0)), [0.1, 0.2, 0.3, 0.4, 0.3, 0.4]);
    const ids = fromArray([1, 1], [2], { dtype: 'i32' });
    assert.deepEqual(await vals(gatherRows(d, ids)), [0.3, 0.4, 0.3, 0.4]);
    assert.deepEqual(await vals(scatterAddRows(d, ids, 2)), [0, 0, 0.1 + 0.3, 0.2 + 0.4]);
  });
});

testBothBackends('gatherRows and scatterAddRows: hand-computed embedding lookup and its gradient', async (b) => {
  await scope(async () => {
    const table = arange(12).reshape([4, 3]);
    const ids = fromArray([[3, 0], [3, 1]], undefined, { dtype: 'i32' });
    const g = gatherRows(table, ids);
    assert.deepEqual(g.shape, [2, 2, 3]);
    assert.deepEqual(await vals(g), [9, 10, 11, 0, 1, 2, 9, 10, 11, 3, 4, 5]);
    assert.deepEqual(await vals(gatherRows(fromArray([[1, 2], [3, 4]], undefined, { dtype: 'i32' }), fromArray([1], [1], { dtype: 'i32' }))), [3, 4]);
    assert.deepEqual(await vals(gatherRows(fromArray([[0.5], [-2]], undefined, { dtype: 'f16' }), fromArray([1, 1, 0], [3], { dtype: 'i32' }))), [-2, -2, 0.5]);
    const grad = arange(12).reshape([2, 2, 3]);
    const d = scatterAddRows(grad, ids, 5);
    assert.deepEqual(d.shape, [5, 3]);
    // row 3 gets positions 0 and 2: [0,1,2] + [6,7,8]; row 0 position 1; row 1 position 3; rows 2, 4 stay zero
    assert.deepEqual(await vals(d), [3, 4, 5, 9, 10, 11, 0, 0, 0, 6, 8, 10, 0, 0, 0]);
    // f16 gradients accumulate in f32: 2048 + 1 + 1 = 2050 (f16 steps would round back to 2048)
    assert.deepEqual(await vals(scatterAddRows(fromArray([[2048], [1], [1]], undefined, { dtype: 'f16' }), fromArray([1, 1, 1], [3], { dtype: 'i32' }), 2)), [0, 2050]);
    const h = scatterAddRows(full([3, 2], 0.5, { dtype: 'f16' }), fromArray([0, 0, 0], [3], { dtype: 'i32' }), 1, { dtype: 'f32' });
    assert.equal(h.dtype, 'f32');
    assert.deepEqual(await vals(h), [1.5, 1.5]);
    assert.deepEqual(await vals(gatherRows(table, zeros([0], { dtype: 'i32' }))), []);
    assert.deepEqual(await vals(scatterAddRows(zeros([0, 3]), zeros([0], { dtype: 'i32' }), 2)), [0, 0, 0, 0, 0, 0]);
    const bad = fromArray([1, 4, -1], [3], { dtype: 'i32' });
    if (b.name === 'cpu') {
      assert.throws(() => gatherRows(table, bad), (e: unknown) => e instanceof StepError && /gatherRows: id 4 at position 1 is outside the table's 4 rows \(valid ids: 0..3\)/.test(e.message));
      assert.throws(() => scatterAddRows(ones([3, 3]), bad, 4), /scatterAddRows: id 4 at position 1 is outside/);
    } else {
      assert.deepEqual(await vals(gatherRows(table, bad)), [3, 4, 5, 0, 0, 0, 0, 0, 0], 'WebGPU writes zero rows for bad ids');
      assert.deepEqual(await vals(scatterAddRows(ones([3, 1]), bad, 2)), [0, 1], 'WebGPU skips bad ids');
    }
  });
});

testBothBackends('layout: bad input gives clear errors', async () => {
  await scope(async () => {
    const x = zeros([2, 3]);
    assert.throws(() => transpose(x, 0, 2), (e: unknown) => e instanceof ShapeError && /transpose: axis 2 is out of range for shape \[2, 3\]/.test(e.message));
    assert.throws(() => permute(x, [0]), /permute: dims \[0\] must list each of the 2 dims/);
    assert.throws(() => permute(x, [1, -1]), /permute: dims \[1, -1\] repeat a dim/);
    assert.throws(() => slice(x, { axis: 0, step: 0 }), /slice: step 0 on axis 0 must be a positive integer/);
    assert.throws(() => slice(x, [{ axis: 1 }, { axis: -1 }]), /slice: axis -1 given twice/);
    assert.throws(() => slice(x, [3], [1]), /slice: begin 3 at dim 0 is outside 0..2/);
    assert.throws(() => slice(x, [1, 1], [1, 3]), /slice: size 3 at dim 1 from begin 1 exceeds/);
    assert.throws(() => slice(x, [0, 0, 0], [1, 1, 1]), /same length, at most the rank 2/);
    assert.throws(() => slice(x, [0, 1] as never), /slice: give \{axis, start, end, step\} specs, or begin and size arrays/);
    assert.throws(() => concat([], 0), /concat: give at least one tensor/);
    assert.throws(() => concat([x, zeros([2, 4])], 0), (e: unknown) => e instanceof ShapeError && /concat: shapes \[2, 3\], \[2, 4\] differ outside axis 0/.test(e.message));
    assert.throws(() => concat([x, zeros([2])], 0), /differ outside axis 0/);
    assert.throws(() => concat([x, zeros([2, 3], { dtype: 'i32' })], 1), (e: unknown) => e instanceof DTypeError && /tensor 1 .* is i32 but tensor 0 is f32/.test(e.message));
    assert.throws(() => concat([full([], 1)], 0), /is a scalar/);
    assert.throws(() => gatherRows(zeros([4]), zeros([2], { dtype: 'i32' })), /gatherRows: table .* must be 2-D/);
    assert.throws(() => gatherRows(zeros([4, 2]), zeros([2])), (e: unknown) => e instanceof DTypeError && /ids .* must be i32, got f32/.test(e.message));
    assert.throws(() => scatterAddRows(zeros([3, 2]), zeros([2], { dtype: 'i32' }), 4), /scatterAddRows: grad .* \[3, 2\] must be \[...ids.shape, H\] for ids \[2\]/);
    assert.throws(() => scatterAddRows(zeros([2, 2]), zeros([2], { dtype: 'i32' }), -1), /numRows must be an integer >= 0/);
    assert.throws(() => scatterAddRows(zeros([2, 2], { dtype: 'i32' }), zeros([2], { dtype: 'i32' }), 3), /must be float/);
    x.dispose();
    assert.throws(() => permute(x, [1, 0]), /permute: tensor .* was used after dispose/);
  });
});

// ---------------------------------------------------------------------------------------------
// Conformance: webgpu = cpu = an independent host reference, exactly (copies never round)

const dimArb = fc.oneof(fc.constant(1), fc.integer({ min: 0, max: 4 }), fc.constantFrom(7, 13));
const shapeArb = fc.array(dimArb, { maxLength: 6 }).map((s) => { while (sizeOf(s) > 5000) s = s.slice(1); return s; });
const dtypeArb = fc.constantFrom('f32' as const, 'f16' as const, 'i32' as const);
/** Values the dtype stores exactly: small integers, and halves for the float dtypes. */
const exactValues = (n: number, seed: number, dtype = 'f32') =>
  Array.from({ length: n }, (_, i) => ((seed + i * 7919) % 2001 - 1000) / (dtype === 'i32' ? 1 : (i & 1) + 1));

test('conformance: permute of rank 0-6, every dtype, exact', async (t) => {
  const both = await bothBackends(t);
  if (!both) return;
  const arb = shapeArb.chain((shape) => fc.tuple(fc.constant(shape), fc.shuffledSubarray(shape.map((_, k) => k), { minLength: shape.length })));
  await fc.assert(fc.asyncProperty(arb, dtypeArb, fc.nat(), async ([shape, order], dtype, seed) => {
    const x = exactValues(sizeOf(shape), seed, dtype);
    const r = await runOnBoth(both, [{ values: x, shape, dtype }], (a) => permute(a, order));
    const want = hostPermute(x, shape, order);
    assert.deepEqual(Array.from(r.cpu[0]!), want);
    assert.deepEqual(Array.from(r.gpu[0]!), want);
  }), { numRuns: 30 });
});

test('conformance: slice (both forms) and concat, exact', async (t) => {
  const both = await bothBackends(t);
  if (!both) return;
  const sliceArb = shapeArb.filter((s) => s.length > 0).chain((shape) => fc.tuple(
    fc.constant(shape),
    fc.array(fc.record({ start: fc.integer({ min: -9, max: 9 }), end: fc.option(fc.integer({ min: -9, max: 15 })), step: fc.integer({ min: 1, max: 3 }) }), { minLength: shape.length, maxLength: shape.length }),
  ));
  await fc.assert(fc.asyncProperty(sliceArb, dtypeArb, fc.nat(), async ([shape, specs], dtype, seed) => {
    const x = exactValues(sizeOf(shape), seed, dtype);
    // host reference: Python slicing per axis
    const picks = shape.map((dim, k) => {
      const norm = (v: number) => Math.min(Math.max(v < 0 ? v + dim : v, 0), dim);
      const out: number[] = [];
      for (let i = norm(specs[k]!.start); i < norm(specs[k]!.end ?? dim); i += specs[k]!.step) out.push(i);
      return out;
    });
    const outShape = picks.map((p) => p.length);
    const want = Array.from({ length: sizeOf(outShape) }, (_, i) => x[linear(coords(i, outShape).map((c, k) => picks[k]![c]!), shape)]!);
    const begin = picks.map((p) => p[0] ?? 0), size = outShape.map((n, k) => (specs[k]!.step === 1 ? n : -1));
    const r = await runOnBoth(both, [{ values: x, shape, dtype }], (a) => [
      slice(a, specs.map((s, axis) => ({ axis, start: s.start, end: s.end ?? undefined, step: s.step }))),
      slice(a, begin, size),
    ]);
    assert.deepEqual(Array.from(r.cpu[0]!), want);
    assert.deepEqual(Array.from(r.gpu[0]!), want);
    if (specs.every((sp) => sp.step === 1)) assert.deepEqual(Array.from(r.cpu[1]!), want, 'begin/size form');
    assert.deepEqual(Array.from(r.gpu[1]!), Array.from(r.cpu[1]!));
  }), { numRuns: 30 });

  const concatArb = shapeArb.filter((s) => s.length > 0).chain((shape) => fc.tuple(
    fc.constant(shape), fc.nat({ max: shape.length - 1 }), fc.array(fc.integer({ min: 0, max: 4 }), { minLength: 1, maxLength: 4 }),
  ));
  await fc.assert(fc.asyncProperty(concatArb, dtypeArb, fc.nat(), async ([shape, axis, lens], dtype, seed) => {
    const shapes = lens.map((n) => shape.map((d, k) => (k === axis ? n : d)));
    const inputs = shapes.map((s, j) => ({ values: exactValues(sizeOf(s), seed + j, dtype), shape: s, dtype }));
    const outShape = shape.map((d, k) => (k === axis ? lens.reduce((a, b) => a + b, 0) : d));
    const want = Array.from({ length: sizeOf(outShape) }, (_, i) => {
      const c = coords(i, outShape);
      let j = 0;
      while (c[axis]! >= lens[j]!) { c[axis]! -= lens[j]!; j++; }
      return inputs[j]!.values[linear(c, shapes[j]!)]!;
    });
    const r = await runOnBoth(both, inputs, (...xs) => concat(xs, axis - shape.length));
    assert.deepEqual(Array.from(r.cpu[0]!), want);
    assert.deepEqual(Array.from(r.gpu[0]!), want);
  }), { numRuns: 30 });
});

test('conformance: gatherRows exact, scatterAddRows within the f32 summation bound and deterministic', async (t) => {
  const both = await bothBackends(t);
  if (!both) return;
  const arb = fc.record({
    v: fc.integer({ min: 1, max: 9 }), h: fc.oneof(fc.constant(1), fc.integer({ min: 2, max: 70 })),
    idsShape: fc.array(fc.integer({ min: 0, max: 6 }), { maxLength: 2 }), f16: fc.boolean(), seed: fc.nat(),
  });
  await fc.assert(fc.asyncProperty(arb, async ({ v, h, idsShape, f16, seed }) => {
    const n = sizeOf(idsShape);
    const ids = Array.from({ length: n }, (_, i) => (seed + i * i * 31) % v);
    const table = exactValues(v * h, seed);
    const grad = Array.from({ length: n * h }, (_, i) => Math.fround(Math.sin(seed + i) * 2)).map((g) => (f16 ? roundToF16(g) : g));
    const dtype = f16 ? 'f16' as const : 'f32' as const;
    const r = await runOnBoth(both, [{ values: table, shape: [v, h], dtype }, { values: ids, shape: idsShape, dtype: 'i32' }, { values: grad, shape: [...idsShape, h], dtype }],
      (tab, id, g) => [gatherRows(tab, id), scatterAddRows(g, id, v, { dtype: 'f32' }), scatterAddRows(g, id, v, { dtype: 'f32' })]);
    const wantGather = ids.flatMap((id) => table.slice(id * h, id * h + h));
    assert.deepEqual(Array.from(r.cpu[0]!), wantGather);
    assert.deepEqual(Array.from(r.gpu[0]!), wantGather);
    const exact = new Array<number>(v * h).fill(0), abs = new Array<number>(v * h).fill(0), count = new Array<number>(v).fill(0);
    ids.forEach((id, tpos) => {
      count[id]!++;
      for (let c = 0; c < h; c++) { exact[id * h + c]! += grad[tpos * h + c]!; abs[id * h + c]! += Math.abs(grad[tpos * h + c]!); }
    });
    // A row hit k times sums k terms in f32: error <= (k - 1) u sum|g| (u = 2^-24); cpu rounds once.
    exact.forEach((want, k) => {
      const bound = (count[Math.floor(k / h)]! + 1) * 2 ** -24 * abs[k]!;
      assert.ok(Math.abs(r.gpu[1]![k]! - want) <= bound, `gpu [${k}]: ${r.gpu[1]![k]} vs ${want}`);
      assert.ok(Math.abs(r.cpu[1]![k]! - want) <= 2 ** -24 * Math.abs(want), `cpu [${k}]: ${r.cpu[1]![k]} vs ${want}`);
    });
    assert.deepEqual(Array.from(r.gpu[2]!), Array.from(r.gpu[1]!), 'same bits on a second run');
  }), { numRuns: 30 });
});
