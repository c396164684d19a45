import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import type { DType, Tensor } from '../../index.js';
import { CpuBackend, DTypeError, fromArray, scope, scopeSync, ShapeError, softmax, StepError, zeros } from '../../index.js';
import { softmaxBackward } from '../../kernels/index.js';
import { bothBackends, runOnBoth, testBothBackends } from '../helpers/backends.js';
import {
  dim, expectClose, expectConform, fixtureTensor, floats, loadFixture, reductionsFor, runs, withReduction,
} from './fused-helpers.js';

const cpu = new CpuBackend();
const values = async (t: Tensor) => Array.from(await t.toArray());

test('softmax (cpu): hand-computed rows, masks and gradients', async () => {
  await scope(async () => {
    // exp([0, ln 2, ln 3]) = [1, 2, 3], so the row is [1, 2, 3] / 6
    const y = softmax(fromArray([[0, Math.log(2), Math.log(3)], [5, 5, 5]], undefined, { device: cpu }));
    expectClose(await y.toArray(), [1 / 6, 1 / 3, 1 / 2, 1 / 3, 1 / 3, 1 / 3], { rtol: 1e-6, atol: 0 }, 'plain rows');
    // huge and -inf scores: no overflow, masked-out keys get exactly 0
    assert.deepEqual(await values(softmax(fromArray([1000, 0, -Infinity], [1, 3], { device: cpu }))), [1, 0, 0]);
    // causal over zeros: row i averages keys 0..i
    const c = softmax(zeros([1, 3, 3], { device: cpu }), { causal: true });
    expectClose(await c.toArray(), [1, 0, 0, 0.5, 0.5, 0, 1 / 3, 1 / 3, 1 / 3], { rtol: 1e-7, atol: 0 }, 'causal');
    // offset 1: two queries at positions 1 and 2 over three keys
    const o = softmax(zeros([2, 3], { device: cpu }), { causal: true, positionOffset: 1 });
    expectClose(await o.toArray(), [0.5, 0.5, 0, 1 / 3, 1 / 3, 1 / 3], { rtol: 1e-7, atol: 0 }, 'causal offset');
    // y = 1/4 each, dy = e0: sum(dy * y) = 1/4, dx = y * (dy - 1/4)
    const dx = softmaxBackward(fromArray([0.25, 0.25, 0.25, 0.25], [1, 4], { device: cpu }), fromArray([1, 0, 0, 0], [1, 4], { device: cpu }));
    assert.deepEqual(await values(dx), [0.1875, -0.0625, -0.0625, -0.0625]);
    // f64 on cpu (for gradient checks): exact to f64 rounding
    const d = softmax(fromArray([0, Math.log(3)], [2], { device: cpu, dtype: 'f64' }));
    assert.equal(d.dtype, 'f64');
    expectClose(await d.toArray(), [0.25, 0.75], { rtol: 1e-15, atol: 0 }, 'f64');
  });
});

test('softmax: bad input names the op and the values', () => {
  scopeSync(() => {
    const x = zeros([2, 3], { device: cpu });
    assert.throws(() => softmax(zeros([3], { device: cpu, dtype: 'i32' })), (e: unknown) => e instanceof DTypeError && /softmax: x .* is i32/.test(e.message));
    assert.throws(() => softmax(zeros([], { device: cpu })), (e: unknown) => e instanceof ShapeError && /softmax: .* is a scalar/.test(e.message));
    assert.throws(() => softmax(zeros([4], { device: cpu }), { causal: true }), (e: unknown) => e instanceof ShapeError && /causal softmax needs x of shape \[\.\.\., T, C\]/.test(e.message));
    assert.throws(() => softmax(x, { positionOffset: 2 }), /positionOffset 2 only applies with causal: true/);
    assert.throws(() => softmax(x, { causal: true, positionOffset: -1 }), (e: unknown) => e instanceof StepError && /positionOffset must be an integer/.test(e.message));
    assert.throws(() => softmaxBackward(x, zeros([3, 2], { device: cpu })), /softmaxBackward: y \[2, 3\] and dy \[3, 2\] must have the same shape/);
    assert.throws(() => softmaxBackward(x, zeros([2, 3], { device: cpu, dtype: 'f64' })), /softmaxBackward: y is f32 but dy is f64/);
  });
});

/**
 * Golden values from PyTorch (float64 reference on the same inputs). f32: the exp/log of WGSL
 * are within 3 + 2|x| ulp and outputs are <= 1, so 1e-5 relative (about 80 ulp) with 1e-7 absolute
 * for the tiny tail of large-score rows; dx cancels (dy - sum), so its absolute term scales with |dy| ~ 1.
 * f16: one f16 rounding of the output (2^-11) and of y feeding the backward: 2^-9 relative, 2^-12 absolute.
 */
const TOL: Record<'f32' | 'f16', { y: { rtol: number; atol: number }; dx: { rtol: number; atol: number } }> = {
  f32: { y: { rtol: 1e-5, atol: 1e-7 }, dx: { rtol: 1e-5, atol: 1e-6 } },
  f16: { y: { rtol: 2 ** -9, atol: 2 ** -12 }, dx: { rtol: 2 ** -9, atol: 2 ** -10 } },
};

testBothBackends('softmax matches PyTorch on the golden cases (forward and backward)', async (b) => {
  for (const kind of reductionsFor(b)) {
    for (const c of loadFixture('softmax')) {
      await withReduction(kind, () => scope(async () => {
        const x = fixtureTensor(c.inputs.x!, c.dtype, b);
        const y = softmax(x, c.options as { causal: boolean; positionOffset: number });
        const dx = softmaxBackward(y, fixtureTensor(c.inputs.dy!, c.dtype, b));
        const what = `${c.name} [${kind ?? 'cpu'}]`;
        expectClose(await y.toArray(), c.expected.y!.values, TOL[c.dtype].y, `${what}: y`);
        expectClose(await dx.toArray(), c.expected.dx!.values, TOL[c.dtype].dx, `${what}: dx`);
      }));
    }
  }
});

testBothBackends('softmax: empty tensors, rows of one, long rows, more rows than one grid dimension', async (b) => {
  for (const kind of reductionsFor(b)) {
    await withReduction(kind, () => scope(async () => {
      assert.deepEqual(await values(softmax(zeros([0, 5]))), []);
      assert.deepEqual(await values(softmax(zeros([3, 0]))), []);
      assert.deepEqual(await values(softmaxBackward(zeros([0, 4]), zeros([0, 4]))), []);
      assert.deepEqual(await values(softmax(fromArray([-3, 0, 7], [3, 1]))), [1, 1, 1]);
      assert.deepEqual(await values(softmax(fromArray([-3, 0, 7], [3, 1, 1]), { causal: true })), [1, 1, 1]);
      // 1000 equal scores: every lane strides many times, the result is exactly uniform up to rounding
      const long = await softmax(zeros([2, 1000], { dtype: 'f16' })).toArray();
      expectClose(long, new Float32Array(2000).fill(0.001), { rtol: 2 ** -10, atol: 0 }, 'long rows');
      // 65537 rows need a second grid dimension
      const many = await softmax(fromArray(new Float32Array(2 * 65537).map((_, i) => i % 2), [65537, 2])).toArray();
      const e = 1 / (1 + Math.E);
      assert.ok(Math.abs(many[0]! - e) < 1e-6 && Math.abs(many[2 * 65536 + 1]! - (1 - e)) < 1e-6, `last row ${many[2 * 65536]}, ${many[2 * 65536 + 1]}`);
    }));
  }
});

testBothBackends('softmax allocates only its output', async (b) => {
  await scope(async () => {
    const x = zeros([5, 7], { dtype: 'f16' });
    const before = b.memory().allocated;
    const y = softmax(x, { category: 'activation' });
    assert.equal(b.memory().allocated - before, 5 * 7 * 2);
    assert.equal(y.category, 'activation');
    assert.equal(y.dtype, 'f16');
  });
});

/**
 * webgpu vs cpu on drawn shapes and values (f32 and f16, both row reductions). The cpu computes
 * in f64 and rounds once, so the tolerances of the golden test apply (scores up to 30 in magnitude).
 */
test('softmax: webgpu agrees with cpu on drawn shapes, masks, dtypes', async (t) => {
  const both = await bothBackends(t);
  if (!both) return;
  const kinds = reductionsFor(both.gpu);
  const arb = fc.record({ lead: dim(4), rows: dim(9), cols: dim(150), causal: fc.boolean(), offset: fc.integer({ min: 0, max: 3 }), dtype: fc.constantFrom<DType>('f32', 'f16'), kind: fc.constantFrom(...kinds) })
    .chain((s) => fc.record({ s: fc.constant(s), x: floats(s.lead * s.rows * s.cols, 30), dy: floats(s.lead * s.rows * s.cols, 2) }));
  await fc.assert(fc.asyncProperty(arb, async ({ s, x, dy }) => {
    const shape = [s.lead, s.rows, s.cols];
    const opts = s.causal ? { causal: true, positionOffset: s.offset } : {};
    const r = await withReduction(s.kind, () => runOnBoth(both, [{ values: x, shape, dtype: s.dtype }, { values: dy, shape, dtype: s.dtype }], (xt, dyt) => {
      const y = softmax(xt!, opts);
      return [y, softmaxBackward(y, dyt!)];
    }));
    expectConform(r.gpu[0]!, r.cpu[0]!, TOL[s.dtype as 'f32' | 'f16'].y, `y ${JSON.stringify(s)}`);
    expectConform(r.gpu[1]!, r.cpu[1]!, { rtol: TOL[s.dtype as 'f32' | 'f16'].dx.rtol, atol: TOL[s.dtype as 'f32' | 'f16'].dx.atol * 2 }, `dx ${JSON.stringify(s)}`);
  }), runs(25));
});
