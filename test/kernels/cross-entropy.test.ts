import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import type { Backend, DType, Tensor } from '../../index.js';
import {
  CpuBackend, crossEntropy, DTypeError, fromArray, resetPeak, scope, scopeSync, ShapeError, StepError, zeros,
} from '../../index.js';
import { crossEntropyBackward } from '../../kernels/index.js';
import { bothBackends, runOnBoth, testBothBackends } from '../helpers/backends.js';
import { dim, expectClose, expectConform, fixtureTensor, floats, loadFixture, reductionsFor, runs, withReduction } from './fused-helpers.js';

const cpu = new CpuBackend();
const values = async (t: Tensor) => Array.from(await t.toArray());
const i32 = (xs: number[], device: Backend = cpu) => fromArray(new Int32Array(xs), [xs.length], { device });

test('crossEntropy (cpu): hand-computed losses and gradients', async () => {
  await scope(async () => {
    // row 0: lse = ln 2, loss ln 2; row 1: lse = ln(1 + 3) = ln 4, loss ln 4 - ln 3
    const logits = fromArray([[0, 0], [0, Math.log(3)]], undefined, { device: cpu });
    const t = i32([0, 1]);
    expectClose([await crossEntropy(logits, t).item()], [Math.log(8 / 3) / 2], { rtol: 1e-6, atol: 0 }, 'mean loss');
    // softmax - onehot, over count 2: [0.5 - 1, 0.5] / 2 and [0.25, 0.75 - 1] / 2
    expectClose(await crossEntropyBackward(logits, t).toArray(), [-0.25, 0.25, 0.125, -0.125], { rtol: 1e-6, atol: 1e-7 }, 'dlogits');
    // an ignored row counts for nothing and gets a zero gradient; gradScale multiplies
    const ig = i32([0, -100]);
    expectClose([await crossEntropy(logits, ig).item()], [Math.LN2], { rtol: 1e-6, atol: 0 }, 'ignored row');
    assert.deepEqual(await values(crossEntropyBackward(logits, ig, { gradScale: 3 })), [-1.5, 1.5, 0, 0]);
    // a custom ignoreIndex, and gradScale as a tensor: row 1, target 0: 2 * ([0.25, 0.75] - [1, 0]) / 1
    const scale = fromArray([2], [1], { device: cpu });
    assert.deepEqual(await values(crossEntropyBackward(logits, i32([7, 0]), { ignoreIndex: 7, gradScale: scale })), [0, 0, -1.5, 1.5]);
    // every target ignored, or no rows: loss 0 and zero gradient (PyTorch: NaN; see cross-entropy.ts)
    assert.equal(await crossEntropy(logits, i32([-100, -100])).item(), 0);
    assert.deepEqual(await values(crossEntropyBackward(logits, i32([-100, -100]))), [0, 0, 0, 0]);
    assert.equal(await crossEntropy(zeros([0, 5], { device: cpu }), i32([])).item(), 0);
    // f64 logits (cpu gradient checks) give an f64 loss
    const l64 = crossEntropy(fromArray([[0, 0]], undefined, { device: cpu, dtype: 'f64' }), i32([1]));
    assert.equal(l64.dtype, 'f64');
    assert.equal(await l64.item(), Math.LN2);
    // a large logit does not overflow: loss of the right class is ~0, of the other ~1000
    const big = fromArray([[1000, 0]], undefined, { device: cpu });
    expectClose([await crossEntropy(big, i32([0])).item(), await crossEntropy(big, i32([1])).item()], [0, 1000], { rtol: 1e-7, atol: 1e-7 }, 'large logits');
  });
});

test('crossEntropy (cpu): a target out of range is a clear error', () => {
  scopeSync(() => {
    const logits = zeros([2, 3], { device: cpu });
    assert.throws(() => crossEntropy(logits, i32([0, 3])), (e: unknown) => e instanceof StepError && /crossEntropy: target 3 at row 1 is outside \[0, 3\) and is not ignoreIndex -100/.test(e.message));
    assert.throws(() => crossEntropyBackward(logits, i32([-1, 0])), /crossEntropyBackward: target -1 at row 0 is outside \[0, 3\)/);
  });
});

test('crossEntropy: bad input names the op and the values', () => {
  scopeSync(() => {
    const logits = zeros([2, 3], { device: cpu });
    const t = i32([0, 1]);
    assert.throws(() => crossEntropy(zeros([1, 2, 3], { device: cpu }), t), (e: unknown) => e instanceof ShapeError && /logits must be \[N, V\], got .*\[1, 2, 3\]; reshape/.test(e.message));
    assert.throws(() => crossEntropy(logits, zeros([2], { device: cpu })), (e: unknown) => e instanceof DTypeError && /targets must be i32, got f32/.test(e.message));
    assert.throws(() => crossEntropy(logits, i32([0, 1, 2])), /targets .*\[3\] must be \[N\] = \[2\]/);
    assert.throws(() => crossEntropy(zeros([2, 0], { device: cpu }), t), /have no classes \(V = 0\)/);
    assert.throws(() => crossEntropy(zeros([2, 3], { device: cpu, dtype: 'i32' }), t), /crossEntropy: logits .* is i32/);
    assert.throws(() => crossEntropy(logits, t, { ignoreIndex: 0.5 }), /ignoreIndex must be a 32-bit integer, got 0.5/);
    assert.throws(() => crossEntropyBackward(logits, t, { gradScale: NaN }), /gradScale must be finite/);
    assert.throws(() => crossEntropyBackward(logits, t, { gradScale: zeros([2], { device: cpu }) }), /gradScale .* must be a one-element f32 tensor \(f64 on cpu\), got f32/);
  });
});

/**
 * Golden values from PyTorch (float64 on the same inputs). f32: the loss is a difference of terms
 * up to |logit| + log V (~100 for the large-logit case) with WGSL log accurate to 2^-21 absolute,
 * so 1e-5 relative and absolute; dlogits are probabilities over count (<= 1), computed with a few
 * ulp of exp: 1e-5 relative, 1e-7 absolute. f16 logits: the loss stays f32 (same tolerance); dlogits
 * are rounded once to f16: 2^-10 relative, 2^-14 absolute (f16's spacing near 1/count * 2^-4).
 */
const TOL = {
  loss: { rtol: 1e-5, atol: 1e-5 },
  dlogits: { f32: { rtol: 1e-5, atol: 1e-7 }, f16: { rtol: 2 ** -10, atol: 2 ** -14 } },
};

testBothBackends('crossEntropy matches PyTorch on the golden cases (forward and backward)', async (b) => {
  for (const kind of reductionsFor(b)) {
    for (const c of loadFixture('cross-entropy')) {
      await withReduction(kind, () => scope(async () => {
        const logits = fixtureTensor(c.inputs.logits!, c.dtype, b);
        const targets = fixtureTensor(c.inputs.targets!, 'i32', b);
        const opts = c.options as { ignoreIndex: number; gradScale: number };
        const what = `${c.name} [${kind ?? 'cpu'}]`;
        expectClose([await crossEntropy(logits, targets, opts).item()], c.expected.loss!.values, TOL.loss, `${what}: loss`);
        expectClose(await crossEntropyBackward(logits, targets, opts).toArray(), c.expected.dlogits!.values, TOL.dlogits[c.dtype], `${what}: dlogits`);
      }));
    }
  }
});

testBothBackends('crossEntropy: all ignored gives 0, targets out of range give NaN on webgpu', async (b) => {
  for (const kind of reductionsFor(b)) {
    await withReduction(kind, () => scope(async () => {
      const logits = fromArray([[1, 2, 3], [4, 5, 6]]);
      assert.equal(await crossEntropy(logits, i32([-100, -100], b)).item(), 0);
      assert.deepEqual(await values(crossEntropyBackward(logits, i32([-100, -100], b), { gradScale: fromArray([5], [1]) })), [0, 0, 0, 0, 0, 0]);
      assert.equal(await crossEntropy(zeros([0, 3]), i32([], b)).item(), 0);
      assert.deepEqual(await values(crossEntropyBackward(zeros([0, 3]), i32([], b))), []);
      // V = 1: the only class has probability 1, loss and gradient 0
      assert.equal(await crossEntropy(zeros([3, 1]), i32([0, 0, 0], b)).item(), 0);
      if (b.name === 'webgpu') {
        const bad = i32([0, 3], b);
        assert.ok(Number.isNaN(await crossEntropy(logits, bad).item()), 'the mean loss is NaN');
        const d = await crossEntropyBackward(logits, bad).toArray();
        assert.ok(d.slice(0, 3).every(Number.isFinite) && d.slice(3).every(Number.isNaN), `the bad row is NaN, the good one finite: ${Array.from(d)}`);
      }
    }));
  }
});

testBothBackends('crossEntropy keeps one row-loss vector in the forward and one logits-sized buffer in the backward', async (b) => {
  await scope(async () => {
    const [n, v] = [6, 50];
    const logits = zeros([n, v], { dtype: 'f16' });
    const t = i32([1, 2, 3, 4, 5, -100], b);
    const tensorBytes = () => b.memory().allocated - b.memory().live.staging; // what peakTensors counts
    const before = tensorBytes();
    resetPeak(b);
    const loss = crossEntropy(logits, t);
    assert.equal(tensorBytes() - before, 4, 'only the scalar loss remains');
    assert.equal(b.memory().peakTensors.total - before, 4 + 4 * n, 'plus the per-row losses while it runs');
    resetPeak(b);
    const d = crossEntropyBackward(logits, t);
    assert.equal(tensorBytes() - before, 4 + 2 * n * v, 'dlogits in the logits dtype');
    assert.equal(b.memory().peakTensors.total - before, 4 + 2 * n * v + 4, 'plus one f32 scale while it runs');
    assert.equal(d.dtype, 'f16');
    assert.deepEqual(loss.shape, []);
  });
});

/** webgpu vs cpu on drawn sizes, logits, targets (some ignored), dtypes and gradScale (number or tensor). */
test('crossEntropy: webgpu agrees with cpu on drawn batches', async (t) => {
  const both = await bothBackends(t);
  if (!both) return;
  const kinds = reductionsFor(both.gpu);
  const arb = fc.record({ n: dim(20, true), v: dim(300), dtype: fc.constantFrom<DType>('f32', 'f16'), kind: fc.constantFrom(...kinds), scale: fc.double({ min: -4, max: 4, noNaN: true }), scaleTensor: fc.boolean(), ignore: fc.constantFrom(-100, 0) })
    .chain((s) => fc.record({
      s: fc.constant(s),
      logits: floats(s.n * s.v, 20),
      targets: fc.array(fc.oneof(fc.integer({ min: 0, max: s.v - 1 }), fc.constant(s.ignore)), { minLength: s.n, maxLength: s.n }),
    }));
  await fc.assert(fc.asyncProperty(arb, async ({ s, logits, targets }) => {
    const g = Math.fround(s.scale);
    const inputs = [{ values: logits, shape: [s.n, s.v], dtype: s.dtype }, { values: new Int32Array(targets), shape: [s.n], dtype: 'i32' as DType }, { values: [g], shape: [1] }];
    const r = await withReduction(s.kind, () => runOnBoth(both, inputs, (x, tt, gt) => [
      crossEntropy(x!, tt!, { ignoreIndex: s.ignore }),
      crossEntropyBackward(x!, tt!, { ignoreIndex: s.ignore, gradScale: s.scaleTensor ? gt! : g }),
    ]));
    expectConform(r.gpu[0]!, r.cpu[0]!, TOL.loss, `loss ${JSON.stringify(s)}`);
    const tol = TOL.dlogits[s.dtype as 'f32' | 'f16'];
    expectConform(r.gpu[1]!, r.cpu[1]!, { rtol: tol.rtol, atol: tol.atol * Math.max(1, Math.abs(g)) }, `dlogits ${JSON.stringify(s)}`);
  }), runs(25));
});

testBothBackends("crossEntropy reduction 'sum': the mean times the count, and dlogits without the 1 / count", async (device) => {
  await scope(async () => {
    const logits = fromArray([[0, 1, 2], [2, 0, -1], [0.5, 0.5, 0], [1, -1, 3]], undefined, { device });
    const t = i32([2, -100, 0, 1], device), count = 3;
    const mean = await crossEntropy(logits, t).item();
    expectClose([await crossEntropy(logits, t, { reduction: 'sum' }).item()], [mean * count], { rtol: 1e-6, atol: 0 }, 'summed loss');
    const scale = fromArray([2], [1], { device });
    const dMean = Array.from(await crossEntropyBackward(logits, t, { gradScale: scale }).toArray()).map((x) => x * count);
    expectClose(await crossEntropyBackward(logits, t, { gradScale: scale, reduction: 'sum' }).toArray(), dMean, { rtol: 1e-6, atol: 1e-7 }, 'summed dlogits');
    assert.equal(await crossEntropy(logits, i32([-100, -100, -100, -100], device), { reduction: 'sum' }).item(), 0, 'every target ignored: 0');
    assert.throws(() => crossEntropy(logits, t, { reduction: 'none' as 'sum' }), /crossEntropy: reduction must be 'mean' or 'sum', got none/);
  });
});
