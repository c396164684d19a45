import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import type { DType, RopeLayout, Tensor } from '../../index.js';
import { CpuBackend, DTypeError, fromArray, rope, scope, scopeSync, ShapeError, StepError, zeros } from '../../index.js';
import { ropeBackward, ropeInvFreq } from '../../kernels/index.js';
import { bothBackends, runOnBoth, testBothBackends } from '../helpers/backends.js';
import { dim, expectClose, expectConform, fixtureTensor, floats, loadFixture, maxAbs, runs } from './fused-helpers.js';

const cpu = new CpuBackend();
const values = async (t: Tensor) => Array.from(await t.toArray());

test('rope (cpu): hand-computed rotations, layouts, and the inverse', async () => {
  await scope(async () => {
    // headDim 2: inv_freq = [1], so position p rotates (x0, x1) by p radians
    const x = fromArray([1, 0, 1, 0, 0, 1], [1, 3, 1, 2], { device: cpu });
    expectClose(await rope(x).toArray(), [1, 0, Math.cos(1), Math.sin(1), -Math.sin(2), Math.cos(2)], { rtol: 1e-7, atol: 1e-7 }, 'headDim 2');
    // positionOffset shifts every position
    expectClose(await rope(x, { positionOffset: 5 }).toArray(), [Math.cos(5), Math.sin(5), Math.cos(6), Math.sin(6), -Math.sin(7), Math.cos(7)], { rtol: 1e-6, atol: 1e-7 }, 'offset');
    // headDim 4, theta 10000: inv_freq = [1, 1/100]; the pairs are (0, 2) and (1, 3), not neighbours
    assert.deepEqual(Array.from(ropeInvFreq(4, 10000)), [1, Math.fround(0.01)]);
    const y = rope(fromArray([0, 0, 0, 0, 1, 1, 0, 0], [1, 2, 1, 4], { device: cpu }));
    const a = Math.fround(0.01);
    expectClose(await y.toArray(), [0, 0, 0, 0, Math.cos(1), Math.cos(a), Math.sin(1), Math.sin(a)], { rtol: 1e-7, atol: 1e-7 }, 'headDim 4');
    // BHTD: the time axis is axis 2; [1, 2 heads, 2 steps, 2]: both heads rotate step 1 by 1 radian
    const h = rope(fromArray([1, 0, 1, 0, 1, 0, 1, 0], [1, 2, 2, 2], { device: cpu }), { layout: 'BHTD' });
    expectClose(await h.toArray(), [1, 0, Math.cos(1), Math.sin(1), 1, 0, Math.cos(1), Math.sin(1)], { rtol: 1e-7, atol: 1e-7 }, 'BHTD');
    // the backward is the inverse rotation
    const r = fromArray([0.5, -1, 2, 3, 0.25, 1, -2, 4], [1, 2, 1, 4], { device: cpu });
    expectClose(await ropeBackward(rope(r, { positionOffset: 9 }), { positionOffset: 9 }).toArray(), await r.toArray(), { rtol: 1e-6, atol: 1e-6 }, 'inverse');
  });
});

test('rope: bad input names the op and the values', () => {
  scopeSync(() => {
    assert.throws(() => rope(zeros([2, 3, 4], { device: cpu })), (e: unknown) => e instanceof ShapeError && /rope: x must be \[B, T, nHeads, headDim\] .* got .*\[2, 3, 4\]/.test(e.message));
    assert.throws(() => rope(zeros([1, 2, 1, 5], { device: cpu })), /rope: headDim 5 of .* must be even/);
    assert.throws(() => ropeBackward(zeros([1, 2, 1, 4], { device: cpu, dtype: 'i32' })), (e: unknown) => e instanceof DTypeError && /ropeBackward: x .* is i32/.test(e.message));
    assert.throws(() => rope(zeros([1, 2, 1, 4], { device: cpu }), { theta: 0 }), /rope: theta must be a finite number > 0, got 0/);
    assert.throws(() => rope(zeros([1, 2, 1, 4], { device: cpu }), { positionOffset: 1.5 }), /positionOffset must be an integer in \[0, 2\^24\)/);
    assert.throws(() => rope(zeros([1, 2, 1, 4], { device: cpu }), { layout: 'TBHD' as RopeLayout }), (e: unknown) => e instanceof StepError && /layout must be 'BTHD' or 'BHTD', got TBHD/.test(e.message));
    assert.throws(() => rope(zeros([1, 2, 1, 4], { device: cpu }), { positionOffset: 2 ** 24 - 1 }), /exceed 2\^24/);
    assert.throws(() => rope(zeros([1, 2, 1, 4], { device: cpu }), { invFreq: zeros([4], { device: cpu }) }), /invFreq .*\[4\] \(f32\) must be f32 \[headDim \/ 2\] = \[2\]/);
  });
});

/**
 * Golden values: HF's apply_rotary_pos_emb with LlamaRotaryEmbedding's f32 inv_freq and f32 angles,
 * cos/sin in float64. Both backends build the same f32 angles; cos/sin are then within ~1e-7
 * (WebGPU's polynomials, the cpu's Math.cos), and each output is a sum of two products of values
 * <= 3: 1e-6 relative and absolute. f16: one rounding of outputs up to ~4: 2^-10 relative, 2^-11 absolute.
 */
const TOL = { f32: { rtol: 1e-6, atol: 1e-6 }, f16: { rtol: 2 ** -10, atol: 2 ** -11 } };

testBothBackends('rope matches PyTorch (HF rotate-half) on the golden cases (forward and backward)', async (b) => {
  for (const c of loadFixture('rope')) {
    await scope(async () => {
      const opts = c.options as { theta: number; positionOffset: number; layout: RopeLayout };
      const x = fixtureTensor(c.inputs.x!, c.dtype, b);
      expectClose(await rope(x, opts).toArray(), c.expected.y!.values, TOL[c.dtype], `${c.name}: y`);
      expectClose(await ropeBackward(fixtureTensor(c.inputs.dy!, c.dtype, b), opts).toArray(), c.expected.dx!.values, TOL[c.dtype], `${c.name}: dx`);
    });
  }
});

testBothBackends('rope: empty tensors, headDim 0, one step; the inverse-frequency upload is freed', async (b) => {
  await scope(async () => {
    assert.deepEqual(await values(rope(zeros([0, 3, 2, 4]))), []);
    assert.deepEqual(await values(rope(zeros([2, 0, 2, 4]))), []);
    assert.deepEqual(await values(ropeBackward(zeros([1, 3, 2, 0]))), []);
    // a single step at position 0 is the identity
    assert.deepEqual(await values(rope(fromArray([1, 2, 3, 4], [1, 1, 1, 4]))), [1, 2, 3, 4]);
    const tensorBytes = () => b.memory().allocated - b.memory().live.staging;
    const x = fromArray(new Float32Array(2 * 3 * 2 * 8).map((_, i) => Math.sin(i)), [2, 3, 2, 8], { dtype: 'f16' });
    const before = tensorBytes();
    const y = rope(x, { category: 'activation', positionOffset: 4 });
    assert.equal(tensorBytes() - before, 2 * 3 * 2 * 8 * 2, 'only the output remains');
    // a caller-made inverse-frequency tensor gives the same result and is left alone
    const inv = fromArray(ropeInvFreq(8, 10000), [4]);
    assert.deepEqual(await values(rope(x, { positionOffset: 4, invFreq: inv })), await values(y));
    assert.equal(inv.isDisposed, false);
  });
});

/** webgpu vs cpu on drawn shapes, offsets, thetas, layouts, dtypes (the same f32 angles on both). */
test('rope: webgpu agrees with cpu on drawn shapes, positions and layouts', async (t) => {
  const both = await bothBackends(t);
  if (!both) return;
  const arb = fc.record({
    b: dim(3), t: dim(9), h: dim(5), half: dim(40), offset: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 60000 })),
    theta: fc.constantFrom(10000, 500000, 1), layout: fc.constantFrom<RopeLayout>('BTHD', 'BHTD'), dtype: fc.constantFrom<DType>('f32', 'f16'),
  }).chain((s) => fc.record({ s: fc.constant(s), x: floats(s.b * s.t * s.h * 2 * s.half, 4) }));
  await fc.assert(fc.asyncProperty(arb, async ({ s, x }) => {
    const shape = s.layout === 'BTHD' ? [s.b, s.t, s.h, 2 * s.half] : [s.b, s.h, s.t, 2 * s.half];
    const opts = { theta: s.theta, positionOffset: s.offset, layout: s.layout };
    const r = await runOnBoth(both, [{ values: x, shape, dtype: s.dtype }], (xt) => [rope(xt!, opts), ropeBackward(xt!, opts)]);
    // cos/sin differ by ~1e-7 between the backends; outputs combine two values up to max|x|
    const tol = s.dtype === 'f32' ? { rtol: 1e-6, atol: 5e-7 * Math.max(1, maxAbs(x)) } : { rtol: 2 ** -10, atol: 2 ** -12 * Math.max(1, maxAbs(x)) };
    expectConform(r.gpu[0]!, r.cpu[0]!, tol, `y ${JSON.stringify(s)}`);
    expectConform(r.gpu[1]!, r.cpu[1]!, tol, `dx ${JSON.stringify(s)}`);
  }), runs(25));
});
