import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import type { DType, Tensor } from '../../index.js';
import { CpuBackend, DTypeError, fromArray, ones, resetPeak, rmsNorm, scope, scopeSync, ShapeError, zeros } from '../../index.js';
import { rmsNormBackward } from '../../kernels/index.js';
import { DWEIGHT_CHUNK } from '../../kernels/rmsnorm.js';
import { bothBackends, runOnBoth, testBothBackends } from '../helpers/backends.js';
import { dim, expectClose, expectConform, fixtureTensor, floats, loadFixture, maxAbs, reductionsFor, runs, withReduction } from './fused-helpers.js';

const cpu = new CpuBackend();
const values = async (t: Tensor) => Array.from(await t.toArray());

test('rmsNorm (cpu): hand-computed outputs and gradients', async () => {
  await scope(async () => {
    // row [2, -2, 2, -2]: mean square 4, r = 1/2, n = [1, -1, 1, -1]; row of ones: r = 1, n = 1
    const x = fromArray([[2, -2, 2, -2], [1, 1, 1, 1]], undefined, { device: cpu });
    const w = fromArray([1, 2, 3, 4], undefined, { device: cpu });
    assert.deepEqual(await values(rmsNorm(x, w, 0)), [1, -2, 3, -4, 1, 2, 3, 4]);
    // eps enters under the root: mean square 4 + eps 5 = 9, r = 1/3
    expectClose(await rmsNorm(fromArray([[2, 2]], undefined, { device: cpu }), ones([2], { device: cpu }), 5).toArray(), [2 / 3, 2 / 3], { rtol: 1e-7, atol: 0 }, 'eps');
    // dx = r (dn - n mean(dn n)): row 0, dn = e0: 0.5 ([1,0,0,0] - n/4); row 1, dn = e1: [0,1,0,0] - 1/4
    const dy = fromArray([[1, 0, 0, 0], [0, 1, 0, 0]], undefined, { device: cpu });
    const { dx, dweight } = rmsNormBackward(x, ones([4], { device: cpu }), dy, 0);
    assert.deepEqual(await values(dx), [0.375, 0.125, -0.125, 0.125, -0.25, 0.75, -0.25, -0.25]);
    // dweight = sum over rows of dy * n = [1, 0, 0, 0] + [0, 1, 0, 0]
    assert.deepEqual(await values(dweight), [1, 1, 0, 0]);
    // f64 on cpu, for gradient checks
    const d = rmsNorm(fromArray([3, 4], [1, 2], { device: cpu, dtype: 'f64' }), fromArray([1, 1], [2], { device: cpu, dtype: 'f64' }), 0);
    expectClose(await d.toArray(), [3 / Math.sqrt(12.5), 4 / Math.sqrt(12.5)], { rtol: 1e-15, atol: 0 }, 'f64');
  });
});

test('rmsNorm: bad input names the op and the values', () => {
  scopeSync(() => {
    const x = zeros([2, 4], { device: cpu });
    const w = ones([4], { device: cpu });
    assert.throws(() => rmsNorm(x, ones([3], { device: cpu }), 1e-6), (e: unknown) => e instanceof ShapeError && /rmsNorm: weight .*\[3\] must be \[H\] = \[4\] for x .*\[2, 4\]/.test(e.message));
    assert.throws(() => rmsNorm(x, w, -1), /rmsNorm: eps must be a finite number >= 0, got -1/);
    assert.throws(() => rmsNorm(zeros([4], { device: cpu, dtype: 'i32' }), w, 1e-6), (e: unknown) => e instanceof DTypeError && /x .* is i32/.test(e.message));
    assert.throws(() => rmsNormBackward(x, w, zeros([4, 2], { device: cpu }), 1e-6), /rmsNormBackward: x \[2, 4\] and dy \[4, 2\] must have the same shape/);
    assert.throws(() => rmsNormBackward(x, w, zeros([2, 4], { device: cpu, dtype: 'f16' }), 1e-6), /rmsNormBackward: x is f32 but dy is f16/);
  });
});

/**
 * Golden values: LlamaRMSNorm in float64 (PyTorch) on the same inputs. f32: a sum of squares and
 * WGSL inverseSqrt (2 ulp): y within 1e-6 relative. dx cancels (dn - n mean(dn n)), so its
 * absolute term is 1e-6 of |dy| |w| r ~ 1; dweight sums rows of |dy n| ~ 1: 1e-5 absolute.
 * f16: y is rounded twice, as HF does (n to f16, then n * w): 2^-9 relative + 2^-12 absolute; dx and
 * dweight are rounded once: 2^-10 relative, and dx's cancellation 2^-10 absolute.
 */
const TOL = {
  f32: { y: { rtol: 1e-6, atol: 1e-7 }, dx: { rtol: 1e-5, atol: 1e-6 }, dweight: { rtol: 1e-5, atol: 1e-5 } },
  f16: { y: { rtol: 2 ** -9, atol: 2 ** -12 }, dx: { rtol: 2 ** -10, atol: 2 ** -10 }, dweight: { rtol: 2 ** -10, atol: 2 ** -10 } },
};

testBothBackends('rmsNorm matches PyTorch (LlamaRMSNorm) on the golden cases (forward and backward)', async (b) => {
  const cases = loadFixture('rmsnorm');
  // the golden file must cover what the kernel promises: f32, f16, and f16 x with an f32 weight
  assert.deepEqual([...new Set(cases.map((c) => `${c.dtype} x, ${c.weightDtype ?? c.dtype} weight`))].sort(), ['f16 x, f16 weight', 'f16 x, f32 weight', 'f32 x, f32 weight']);
  const kinds = reductionsFor(b);
  assert.ok(kinds.length > 0, `no row reduction to test on ${b.name}`);
  let checked = 0;
  for (const kind of kinds) {
    for (const c of cases) {
      const elements = c.inputs.x!.shape.reduce((p, d) => p * d, 1);
      assert.ok(elements > 0 && c.expected.y!.values.length === elements && c.expected.dx!.values.length === elements, `${c.name}: golden y and dx must hold the ${elements} elements of x`);
      assert.equal(c.expected.dweight!.values.length, c.inputs.weight!.shape[0], `${c.name}: golden dweight must hold H elements`);
      await withReduction(kind, () => scope(async () => {
        const wd = c.weightDtype ?? c.dtype;
        const x = fixtureTensor(c.inputs.x!, c.dtype, b);
        const w = fixtureTensor(c.inputs.weight!, wd, b);
        const eps = c.options.eps as number;
        const what = `${c.name} [${kind ?? 'cpu'}]`;
        expectClose(await rmsNorm(x, w, eps).toArray(), c.expected.y!.values, TOL[c.dtype].y, `${what}: y`);
        const { dx, dweight } = rmsNormBackward(x, w, fixtureTensor(c.inputs.dy!, c.dtype, b), eps);
        assert.equal(dweight.dtype, wd);
        expectClose(await dx.toArray(), c.expected.dx!.values, TOL[c.dtype].dx, `${what}: dx`);
        expectClose(await dweight.toArray(), c.expected.dweight!.values, TOL[wd].dweight, `${what}: dweight`);
        checked++;
      }));
    }
  }
  assert.equal(checked, kinds.length * cases.length, 'every golden case ran under every row reduction');
});

testBothBackends('rmsNorm: empty tensors, H = 1, no rows (dweight = 0), many dweight chunks', async (b) => {
  for (const kind of reductionsFor(b)) {
    await withReduction(kind, () => scope(async () => {
      assert.deepEqual(await values(rmsNorm(zeros([0, 3]), ones([3]), 1e-6)), []);
      assert.deepEqual(await values(rmsNorm(zeros([2, 0]), zeros([0]), 1e-6)), []);
      const none = rmsNormBackward(zeros([0, 3]), ones([3]), zeros([0, 3]), 1e-6);
      assert.deepEqual(await values(none.dweight), [0, 0, 0], 'no rows: zero weight gradient');
      // H = 1: n = x / sqrt(x^2 + eps) = sign(x) when eps = 0
      assert.deepEqual(await values(rmsNorm(fromArray([-3, 0.5, 7], [3, 1]), fromArray([2], [1]), 0)), [-2, 2, 2]);
      // 3 * DWEIGHT_CHUNK + 5 rows of ones: n = 1, so dweight_h = sum of dy = rows * 0.5
      const rows = 3 * DWEIGHT_CHUNK + 5;
      const g = rmsNormBackward(ones([rows, 3]), ones([3]), fromArray(new Float32Array(rows * 3).fill(0.5), [rows, 3]), 0);
      assert.deepEqual(await values(g.dweight), [rows / 2, rows / 2, rows / 2]);
    }));
  }
});

testBothBackends('rmsNormBackward frees its temporaries; outputs take the inputs\' dtypes', async (b) => {
  await scope(async () => {
    const [rows, h] = [70, 6];
    const x = ones([rows, h], { dtype: 'f16' });
    const w = ones([h]);
    const dy = ones([rows, h], { dtype: 'f16' });
    const tensorBytes = () => b.memory().allocated - b.memory().live.staging;
    const before = tensorBytes();
    resetPeak(b);
    const { dx, dweight } = rmsNormBackward(x, w, dy, 1e-6, { category: 'gradient' });
    assert.equal(tensorBytes() - before, rows * h * 2 + h * 4, 'dx (f16) and dweight (f32) remain');
    const temps = rows * 4 + Math.ceil(rows / DWEIGHT_CHUNK) * h * 4;
    assert.equal(b.memory().peakTensors.total - before, rows * h * 2 + h * 4 + temps, 'plus r per row and the chunk sums while it runs');
    assert.equal(dx.category, 'gradient');
    assert.equal(dweight.dtype, 'f32');
    assert.equal(rmsNorm(x, w, 1e-6).dtype, 'f16');
  });
});

/** webgpu vs cpu on drawn shapes (rows past a dweight chunk, widths past a workgroup), dtypes, eps. */
test('rmsNorm: webgpu agrees with cpu on drawn shapes, dtypes and eps', async (t) => {
  const both = await bothBackends(t);
  if (!both) return;
  const kinds = reductionsFor(both.gpu);
  const arb = fc.record({
    lead: dim(3, true), rows: dim(70), h: dim(150), dtype: fc.constantFrom<DType>('f32', 'f16'), wdtype: fc.constantFrom<DType>('f32', 'f16'),
    eps: fc.constantFrom(1e-6, 1e-5, 0.1), kind: fc.constantFrom(...kinds),
  }).chain((s) => fc.record({ s: fc.constant(s), x: floats(s.lead * s.rows * s.h, 4), w: floats(s.h, 2), dy: floats(s.lead * s.rows * s.h, 1) }));
  await fc.assert(fc.asyncProperty(arb, async ({ s, x, w, dy }) => {
    const shape = [s.lead, s.rows, s.h];
    const r = await withReduction(s.kind, () => runOnBoth(both, [
      { values: x, shape, dtype: s.dtype }, { values: w, shape: [s.h], dtype: s.wdtype }, { values: dy, shape, dtype: s.dtype },
    ], (xt, wt, dyt) => {
      const { dx, dweight } = rmsNormBackward(xt!, wt!, dyt!, s.eps);
      return [rmsNorm(xt!, wt!, s.eps), dx, dweight];
    }));
    const tol = TOL[s.dtype as 'f32' | 'f16'];
    // y, dx scale with |w| (<= 2) and, for rows of tiny x, with r <= 1/sqrt(eps): compare relative to the largest output
    const scaleY = Math.max(1, maxAbs(r.cpu[0]!)), scaleDx = Math.max(1, maxAbs(r.cpu[1]!));
    expectConform(r.gpu[0]!, r.cpu[0]!, { rtol: tol.y.rtol, atol: tol.y.atol * scaleY }, `y ${JSON.stringify(s)}`);
    expectConform(r.gpu[1]!, r.cpu[1]!, { rtol: tol.dx.rtol, atol: tol.dx.atol * scaleDx }, `dx ${JSON.stringify(s)}`);
    // dweight sums lead * rows terms of |dy n| <= sqrt(h): the absolute term grows with the row count
    const dwTol = TOL[s.wdtype as 'f32' | 'f16'].dweight;
    expectConform(r.gpu[2]!, r.cpu[2]!, { rtol: dwTol.rtol, atol: dwTol.atol * Math.max(1, maxAbs(r.cpu[2]!)) }, `dweight ${JSON.stringify(s)}`);
  }), runs(25));
});
