import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import type { DType, Tensor } from '../../index.js';
import { CpuBackend, DTypeError, fromArray, roundToF16, scope, scopeSync, ShapeError, swiglu, zeros } from '../../index.js';
import { swigluBackward } from '../../kernels/index.js';
import { bothBackends, runOnBoth, testBothBackends } from '../helpers/backends.js';
import { dim, expectClose, expectWithin, fixtureTensor, floats, loadFixture, runs } from './fused-helpers.js';

const cpu = new CpuBackend();
const values = async (t: Tensor) => Array.from(await t.toArray());
const on = (xs: number[], dtype: DType = 'f32') => fromArray(xs, [xs.length], { device: cpu, dtype });

test('swiglu (cpu): hand-computed values and gradients', async () => {
  await scope(async () => {
    const L = Math.log(3); // sigmoid(ln 3) = 3/4
    const g = on([0, L, 100, -100]);
    const u = on([5, 2, 0.5, 1]);
    // silu(0) = 0; silu(ln 3) = 0.75 ln 3; silu(100) = 100; silu(-100) = -100 e^-100 (underflows in f32)
    expectClose(await swiglu(g, u).toArray(), [0, 1.5 * L, 50, 0], { rtol: 1e-6, atol: 1e-30 }, 'y');
    const dy = on([1, 1, 2, 1]);
    const { dgate, dup } = swigluBackward(g, u, dy);
    // dgate = dy u s (1 + g (1 - s)): 5 * 0.5 at 0; 2 * 0.75 * (1 + ln 3 / 4) at ln 3; 2 * 0.5 * 1 at 100
    expectClose(await dgate.toArray(), [2.5, 1.5 * (1 + L / 4), 1, 0], { rtol: 1e-6, atol: 1e-30 }, 'dgate');
    // dup = dy silu(g)
    expectClose(await dup.toArray(), [0, 0.75 * L, 200, 0], { rtol: 1e-6, atol: 1e-30 }, 'dup');
    // f64 on cpu, for gradient checks
    const d = swiglu(on([L], 'f64'), on([1], 'f64'));
    expectClose(await d.toArray(), [0.75 * L], { rtol: 1e-15, atol: 0 }, 'f64');
  });
});

test('swiglu: bad input names the op and the values', () => {
  scopeSync(() => {
    assert.throws(() => swiglu(zeros([2, 3], { device: cpu }), zeros([3, 2], { device: cpu })), (e: unknown) => e instanceof ShapeError && /swiglu: gate \[2, 3\] and up \[3, 2\] must have the same shape/.test(e.message));
    assert.throws(() => swiglu(zeros([2], { device: cpu }), zeros([2], { device: cpu, dtype: 'f16' })), (e: unknown) => e instanceof DTypeError && /gate is f32 but up is f16/.test(e.message));
    assert.throws(() => swigluBackward(zeros([2], { device: cpu }), zeros([2], { device: cpu }), zeros([3], { device: cpu })), /swigluBackward: gate \[2\] and dy \[3\] must have the same shape/);
    assert.throws(() => swiglu(zeros([2], { device: cpu, dtype: 'i32' }), zeros([2], { device: cpu, dtype: 'i32' })), /swiglu: gate .* is i32/);
  });
});

/**
 * Per-element error bounds, relative even for tiny outputs (a bug in the tail of silu must show).
 * f32: WGSL exp is within 3 + 2|g| ulp, and a handful of multiplies add a few more: (16 + 2|g|) ulp
 * of each term's magnitude. dgate's factor 1 + g (1 - s) cancels near g = -1.28, so its bound scales
 * with |dy up| s (1 + |g| (1 - s)), the size of the terms. f16: one rounding of the output (2^-11)
 * on top: 2^-10 relative. Absolute floor: f32 subnormals may flush to 0 on the GPU (2^-126); f16's
 * subnormal spacing is 2^-24.
 */
function bounds(g: ArrayLike<number>, u: ArrayLike<number>, dy: ArrayLike<number>, dtype: string): { y: number[]; dgate: number[]; dup: number[] } {
  const out = { y: [] as number[], dgate: [] as number[], dup: [] as number[] };
  for (let i = 0; i < g.length; i++) {
    const gi = g[i]!, s = 1 / (1 + Math.exp(-gi));
    const rel = dtype === 'f16' ? 2 ** -10 : (16 + 2 * Math.abs(gi)) * 2 ** -23;
    const floor = dtype === 'f16' ? 2 ** -24 : 2 ** -126;
    out.y.push(rel * Math.abs(gi * s * u[i]!) + floor);
    out.dgate.push(rel * Math.abs(dy[i]! * u[i]!) * s * (1 + Math.abs(gi) * (1 - s)) + floor);
    out.dup.push(rel * Math.abs(dy[i]! * gi * s) + floor);
  }
  return out;
}

testBothBackends('swiglu matches PyTorch on the golden cases (forward and backward)', async (b) => {
  for (const c of loadFixture('swiglu')) {
    await scope(async () => {
      const [g, u, dy] = ['gate', 'up', 'dy'].map((k) => fixtureTensor(c.inputs[k]!, c.dtype, b));
      const bound = bounds(c.inputs.gate!.values, c.inputs.up!.values, c.inputs.dy!.values, c.dtype);
      expectWithin(await swiglu(g!, u!).toArray(), c.expected.y!.values, bound.y, `${c.name}: y`);
      const { dgate, dup } = swigluBackward(g!, u!, dy!);
      expectWithin(await dgate.toArray(), c.expected.dgate!.values, bound.dgate, `${c.name}: dgate`);
      expectWithin(await dup.toArray(), c.expected.dup!.values, bound.dup, `${c.name}: dup`);
    });
  }
});

testBothBackends('swiglu: empty tensors, scalars, extreme gates', async () => {
  await scope(async () => {
    assert.deepEqual(await values(swiglu(zeros([0, 4]), zeros([0, 4]))), []);
    const e = swigluBackward(zeros([3, 0]), zeros([3, 0]), zeros([3, 0]));
    assert.deepEqual([await values(e.dgate), await values(e.dup)], [[], []]);
    assert.equal(await swiglu(fromArray(0), fromArray(7)).item(), 0);
    // sigmoid never overflows: silu(+-1e4) = 1e4 and -0
    const y = await swiglu(fromArray([1e4, -1e4, 88, -88]), fromArray([1, 1, 1, 1])).toArray();
    assert.ok(y[0] === 1e4 && Math.abs(y[1]!) === 0 && Math.abs(y[2]! - 88) < 1e-4 && Math.abs(y[3]!) < 1e-35, `extremes: ${Array.from(y)}`);
  });
});

/** webgpu vs cpu on drawn shapes (any rank, sizes around the workgroup), values and dtypes. */
test('swiglu: webgpu agrees with cpu on drawn shapes and values', async (t) => {
  const both = await bothBackends(t);
  if (!both) return;
  const arb = fc.record({ shape: fc.array(dim(70, true), { minLength: 0, maxLength: 3 }), dtype: fc.constantFrom<DType>('f32', 'f16') })
    .chain((s) => {
      const n = s.shape.reduce((a, d) => a * d, 1);
      return fc.record({ s: fc.constant(s), g: floats(n, 30), u: floats(n, 4), dy: floats(n, 2) });
    });
  await fc.assert(fc.asyncProperty(arb, async ({ s, g, u, dy }) => {
    const ins = [g, u, dy].map((values) => ({ values, shape: s.shape, dtype: s.dtype }));
    const r = await runOnBoth(both, ins, (gt, ut, dyt) => {
      const { dgate, dup } = swigluBackward(gt!, ut!, dyt!);
      return [swiglu(gt!, ut!), dgate, dup];
    });
    // the inputs as stored (f16 rounds them), for the bounds
    const [gs, us, dys] = [g, u, dy].map((a) => (s.dtype === 'f16' ? Array.from(a, roundToF16) : a));
    const bound = bounds(gs!, us!, dys!, s.dtype);
    [bound.y, bound.dgate, bound.dup].forEach((b, k) => {
      expectWithin(r.gpu[k]!, r.cpu[k]!, b, `${['y', 'dgate', 'dup'][k]} ${JSON.stringify(s)}`);
    });
  }), runs(30));
});
