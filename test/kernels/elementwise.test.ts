import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { Tensor } from '../../index.js';
import {
  add, cast, CpuBackend, div, DTypeError, exp, fromArray, maximum, minimum, mul, neg, pow, relu,
  rsqrt, scope, scopeSync, setDevice, ShapeError, sigmoid, silu, sqrt, square, sub, tanh, where, log, abs, rsub, rdiv, zeros,
} from '../../index.js';
import { addScaledInPlace, greater, lessEqual, equal, notEqual, less } from '../../kernels/index.js';
import { bothBackends, runOnBoth, worstError } from '../helpers/backends.js';

const cpu = new CpuBackend();

test('cpu reference: hand-computed broadcasting cases', async () => {
  setDevice(cpu);
  await scope(async () => {
    const a = fromArray([[1, 2, 3], [4, 5, 6]]);
    const col = fromArray([[10], [20]]);
    const row = fromArray([1, 0, -1]);
    assert.deepEqual([...await add(a, col).toArray()], [11, 12, 13, 24, 25, 26]);
    assert.deepEqual([...await mul(a, row).toArray()], [1, 0, -3, 4, 0, -6]);
    assert.deepEqual([...await sub(col, row).toArray()], [9, 10, 11, 19, 20, 21]);
    assert.deepEqual(sub(col, row).shape, [2, 3]);
    assert.deepEqual([...await div(a, 2).toArray()], [0.5, 1, 1.5, 2, 2.5, 3]);
    assert.deepEqual([...await rsub(row, 1).toArray()], [0, 1, 2]);
    assert.deepEqual([...await rdiv(fromArray([2, 4]), 1).toArray()], [0.5, 0.25]);
    assert.deepEqual([...await maximum(a, 3.5).toArray()], [3.5, 3.5, 3.5, 4, 5, 6]);
    assert.deepEqual([...await minimum(a, col).toArray()], [1, 2, 3, 4, 5, 6]);
    assert.deepEqual([...await where(fromArray([1, 0, 1], [3], { dtype: 'i32' }), a, fromArray(-1)).toArray()], [1, -1, 3, 4, -1, 6]);
    assert.deepEqual([...await div(fromArray([7, -7, 5], [3], { dtype: 'i32' }), fromArray([2, 2, 0], [3], { dtype: 'i32' })).toArray()], [3, -3, 0]);
    assert.deepEqual([...await pow(fromArray([-2, 3, 0, 4]), 3).toArray()], [-8, 27, 0, 64]);
    assert.ok(Number.isNaN((await pow(fromArray([-2]), 0.5).toArray())[0]!));
    assert.deepEqual([...await square(fromArray([3], [1], { dtype: 'i32' })).toArray()], [9]);
    assert.deepEqual([...await relu(fromArray([-1, 2])).toArray()], [0, 2]);
    assert.deepEqual([...await greater(a, col).toArray()], [0, 0, 0, 0, 0, 0]);
    assert.deepEqual([...await less(row, 0.5).toArray()], [0, 1, 1]);
    assert.deepEqual([...await equal(a, fromArray([1, 5, 3])).toArray()], [1, 0, 1, 0, 1, 0]);
    assert.deepEqual([...await neg(fromArray([1, -2])).toArray()], [-1, 2]);
    const s = await silu(fromArray([0, 1])).toArray();
    assert.equal(s[0], 0);
    assert.equal(s[1], Math.fround(1 / (1 + Math.exp(-1))));
    assert.deepEqual([...await cast(fromArray([1.5, -2.5, 70000]), 'f16').toArray()], [1.5, -2.5, Infinity]);
    assert.deepEqual([...await cast(fromArray([1.9, -1.9]), 'i32').toArray()], [1, -1]);
    const y = fromArray([1, 2, 3]);
    addScaledInPlace(y, fromArray([1, 1, 1]), -0.5);
    assert.deepEqual([...await y.toArray()], [0.5, 1.5, 2.5]);
  });
});

test('bad input: dtype and shape mismatches name the op', () => {
  setDevice(cpu);
  scopeSync(() => {
    assert.throws(() => add(zeros([2]), zeros([2], { dtype: 'i32' })), (e: unknown) => e instanceof DTypeError && /add: dtypes differ/.test(e.message));
    assert.throws(() => mul(zeros([2, 3]), zeros([4])), (e: unknown) => e instanceof ShapeError && /mul: shapes \[2, 3\] and \[4\] do not broadcast/.test(e.message));
    assert.throws(() => exp(zeros([2], { dtype: 'i32' })), /exp: .* is i32; exp needs a float tensor/);
    assert.throws(() => add(zeros([2], { dtype: 'i32' }), 0.5), /not an integer/);
    assert.throws(() => addScaledInPlace(zeros([2]), zeros([3])), /shapes differ/);
    assert.throws(() => add(zeros(new Array(9).fill(1)), zeros([1])), /add: rank 9 exceeds 8/);
  });
});

/** Random shapes that broadcast: an output shape, and inputs that drop leading dims or set dims to 1. */
const dimArb = fc.oneof(fc.constant(1), fc.integer({ min: 0, max: 7 }), fc.constantFrom(11, 13));
const broadcastPair = fc.array(dimArb, { minLength: 0, maxLength: 4 }).chain((out) => fc.tuple(
  fc.constant(out),
  fc.tuple(fc.nat({ max: out.length }), fc.array(fc.boolean(), { minLength: out.length, maxLength: out.length })),
  fc.tuple(fc.nat({ max: out.length }), fc.array(fc.boolean(), { minLength: out.length, maxLength: out.length })),
)).map(([out, [da, ma], [db, mb]]) => ({
  a: out.slice(da).map((d, i) => (ma[i + da] ? 1 : d)),
  b: out.slice(db).map((d, i) => (mb[i + db] ? 1 : d)),
}));

const values = (n: number, seed: number, lo = -4, hi = 4) => Array.from({ length: n }, (_, i) => lo + ((Math.sin(seed * 999 + i * 12.9898) * 43758.5453) % 1 + 1) % 1 * (hi - lo));
const size = (s: readonly number[]) => s.reduce((x, y) => x * y, 1);

// Tolerances: + - * are correctly rounded in f32 on both (exact match); WGSL allows 2.5 ulp for
// division; min/max are exact. f16 results may differ by one f16 ulp (2^-10 relative) when the f32
// values straddle a rounding boundary.
const BINARY_TOL: Record<string, number> = { add: 0, sub: 0, mul: 0, div: 4e-7, maximum: 0, minimum: 0, greater: 0, lessEqual: 0, equal: 0, notEqual: 0 };
const BINARY_FNS: Record<string, (a: Tensor, b: Tensor) => Tensor> = { add, sub, mul, div, maximum, minimum, greater, lessEqual, equal, notEqual };

test('conformance: binary ops with broadcasting, webgpu = cpu', async (t) => {
  const both = await bothBackends(t);
  if (!both) return;
  await fc.assert(fc.asyncProperty(broadcastPair, fc.constantFrom(...Object.keys(BINARY_FNS)), fc.constantFrom('f32', 'f16', 'i32'), fc.nat(),
    async ({ a, b }, op, dtype, seed) => {
      const ints = dtype === 'i32';
      const av = values(size(a), seed).map((v) => (ints ? Math.round(v * 100) : v));
      const bv = values(size(b), seed + 1).map((v) => (ints ? Math.round(v * 100) : v));
      const r = await runOnBoth(both, [{ values: av, shape: a, dtype: dtype as never }, { values: bv, shape: b, dtype: dtype as never }], BINARY_FNS[op]!);
      const tol = dtype === 'f16' ? 2e-3 : BINARY_TOL[op]!;
      const w = worstError(r.gpu[0]!, r.cpu[0]!, tol, tol === 0 ? 0 : 1e-30);
      assert.ok(w.ratio <= 1, `${op} ${dtype} ${JSON.stringify(a)} ${JSON.stringify(b)}: index ${w.index} gpu ${r.gpu[0]![w.index]} cpu ${r.cpu[0]![w.index]}`);
    }), { numRuns: 40 });
});

// Vulkan's precision rules for the builtins: exp 3+2|x| ulp, log 3 ulp (2^-21 absolute near 1),
// sqrt/inverseSqrt ~2-3 ulp, tanh inherited from exp; sigmoid/silu compound exp + division.
const UNARY_CASES: { name: string; fn: (x: Tensor) => Tensor; lo: number; hi: number; rtol: number; atol: number }[] = [
  { name: 'neg', fn: neg, lo: -4, hi: 4, rtol: 0, atol: 0 },
  { name: 'abs', fn: abs, lo: -4, hi: 4, rtol: 0, atol: 0 },
  { name: 'square', fn: square, lo: -4, hi: 4, rtol: 0, atol: 0 },
  { name: 'relu', fn: relu, lo: -4, hi: 4, rtol: 0, atol: 0 },
  { name: 'exp', fn: exp, lo: -5, hi: 5, rtol: 2e-6, atol: 0 },
  { name: 'log', fn: log, lo: 0.01, hi: 10, rtol: 1e-6, atol: 1e-6 },
  { name: 'sqrt', fn: sqrt, lo: 0, hi: 10, rtol: 4e-7, atol: 0 },
  { name: 'rsqrt', fn: rsqrt, lo: 0.01, hi: 10, rtol: 4e-7, atol: 0 },
  { name: 'sigmoid', fn: sigmoid, lo: -8, hi: 8, rtol: 2e-6, atol: 1e-7 },
  { name: 'silu', fn: silu, lo: -8, hi: 8, rtol: 2e-6, atol: 1e-7 },
  { name: 'tanh', fn: tanh, lo: -4, hi: 4, rtol: 1e-5, atol: 1e-6 },
  { name: 'pow 3', fn: (x) => pow(x, 3), lo: -3, hi: 3, rtol: 4e-6, atol: 1e-6 },
  { name: 'pow -0.5', fn: (x) => pow(x, -0.5), lo: 0.01, hi: 4, rtol: 4e-6, atol: 0 },
  { name: 'add 0.1', fn: (x) => add(x, 0.1), lo: -4, hi: 4, rtol: 0, atol: 0 },
  { name: 'mul -3', fn: (x) => mul(x, -3), lo: -4, hi: 4, rtol: 0, atol: 0 },
  { name: 'rdiv 1', fn: (x) => rdiv(x, 1), lo: 0.1, hi: 4, rtol: 4e-7, atol: 0 },
  { name: 'greater 0.5', fn: (x) => greater(x, 0.5), lo: -2, hi: 2, rtol: 0, atol: 0 },
];

test('conformance: unary and scalar ops, webgpu = cpu within the builtin precision', async (t) => {
  const both = await bothBackends(t);
  if (!both) return;
  await fc.assert(fc.asyncProperty(fc.constantFrom(...UNARY_CASES), fc.array(dimArb, { maxLength: 3 }), fc.constantFrom('f32', 'f16'), fc.nat(),
    async (c, shape, dtype, seed) => {
      const r = await runOnBoth(both, [{ values: values(size(shape), seed, c.lo, c.hi), shape, dtype: dtype as never }], c.fn);
      const rtol = dtype === 'f16' ? Math.max(c.rtol, 2e-3) : c.rtol;
      const atol = dtype === 'f16' ? Math.max(c.atol, 1e-4) : c.atol;
      const w = worstError(r.gpu[0]!, r.cpu[0]!, rtol, atol || 1e-30);
      assert.ok(w.ratio <= 1, `${c.name} ${dtype} ${JSON.stringify(shape)}: index ${w.index} gpu ${r.gpu[0]![w.index]} cpu ${r.cpu[0]![w.index]}`);
    }), { numRuns: 40 });
});

test('conformance: where, cast and in-place axpy match exactly', async (t) => {
  const both = await bothBackends(t);
  if (!both) return;
  await fc.assert(fc.asyncProperty(broadcastPair, fc.nat(), async ({ a, b }, seed) => {
    const cond = values(size(a), seed).map((v) => (v > 0 ? 1 : 0));
    const r = await runOnBoth(both, [
      { values: cond, shape: a, dtype: 'i32' }, { values: values(size(b), seed + 2), shape: b }, { values: [7], shape: [] },
    ], (c, x, y) => [where(c, x, y), cast(x, 'f16'), cast(x, 'i32'), addScaledInPlace(mul(x, 1), x, 0.37)]);
    r.cpu.forEach((c, k) => assert.deepEqual(Array.from(r.gpu[k]!), Array.from(c), `output ${k}`));
  }), { numRuns: 30 });
});

test('conformance: each access path of the binary kernel (full, suffix, splat, strided; vec4 and scalar)', async (t) => {
  const both = await bothBackends(t);
  if (!both) return;
  const cases: [number[], number[]][] = [[[6, 8], [8]], [[3, 4, 4], [4, 4]], [[8], [1]], [[5, 3], [3]], [[4, 4], [4, 1]], [[2, 3, 8], [1, 8]], [[7], [7]], [[4, 1], [1, 8]]];
  for (const [sa, sb] of cases) {
    for (const op of ['add', 'sub', 'div', 'greater'] as const) {
      const r = await runOnBoth(both, [{ values: values(size(sa), 3), shape: sa }, { values: values(size(sb), 4, 0.5, 3), shape: sb }], BINARY_FNS[op]!);
      const w = worstError(r.gpu[0]!, r.cpu[0]!, BINARY_TOL[op]!, 1e-30);
      assert.ok(w.ratio <= 1, `${op} ${JSON.stringify(sa)} with ${JSON.stringify(sb)}: index ${w.index} gpu ${r.gpu[0]![w.index]} cpu ${r.cpu[0]![w.index]}`);
      const r2 = await runOnBoth(both, [{ values: values(size(sb), 4, 0.5, 3), shape: sb }, { values: values(size(sa), 3), shape: sa }], BINARY_FNS[op]!);
      assert.ok(worstError(r2.gpu[0]!, r2.cpu[0]!, BINARY_TOL[op]!, 1e-30).ratio <= 1, `${op} swapped ${JSON.stringify(sb)} with ${JSON.stringify(sa)}`);
    }
  }
});
