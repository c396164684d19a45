/**
 * The multi-tensor optimizer kernels (kernels/optim-multi.ts) against the per-tensor ones: the
 * same bits for every element, on both backends, and far fewer dispatches per step.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Backend, Tensor } from '../../../index.js';
import { AdamW, fromArray, scope, zeros } from '../../../index.js';
import type { AdamAttrs } from '../../../engine/optim/kernels.js';
import { adamwKernel, adamwMultiKernel, gradSqPartialsKernel, gradSqPartialsMultiKernel } from '../../../engine/optim/kernels.js';
import { runKernel } from '../../../engine/registry.js';
import { freshWebGPU, testBothBackends } from '../../helpers/backends.js';
import { param, setGradValues } from './helpers.js';

/** Sizes around the 64-lane workgroup and the 4096-element partials group, and one large tensor. */
const SIZES = [1, 63, 64, 65, 130, 1000, 4097, 9000, 255, 256, 257]; // 256: a workgroup's share of a tensor in adamw_multi
const wave = (n: number, seed: number, scale = 1) => Array.from({ length: n }, (_, i) => Math.sin(seed * 12.9898 + i * 78.233) * scale);

interface Slot { grad: Tensor; param: Tensor; m: Tensor; v: Tensor; master?: Tensor }

/** One parameter's tensors, fresh each call (so both kernels start from the same values). */
function slot(device: Backend, n: number, k: number, mixed: boolean): Slot {
  const dtype = mixed ? 'f16' : 'f32';
  return {
    grad: fromArray(wave(n, k + 1, 0.3), [n], { device, dtype }),
    param: fromArray(wave(n, k + 11), [n], { device, dtype }),
    m: fromArray(wave(n, k + 21, 0.01), [n], { device }),
    v: fromArray(wave(n, k + 31, 0.001).map(Math.abs), [n], { device }),
    master: mixed ? fromArray(wave(n, k + 11), [n], { device }) : undefined,
  };
}

/** Per-parameter attributes that differ (lr, betas, decay, step, skip base) so a mixed-up table would show. */
const attrsOf = (k: number): AdamAttrs => ({
  lr: 1e-3 * (k + 1), beta1: 0.9 - 0.01 * k, beta2: 0.999 - 0.001 * k, eps: 1e-8, l2: k % 2 ? 0.01 : 0, decay: k % 2 ? 1 : 1 - 1e-4 * k, step: k + 2, skipBase: k % 3 === 0 ? 1 : 0,
});

const values = async (s: Slot) => Promise.all([s.param, s.m, s.v, ...(s.master ? [s.master] : [])].map(async (t) => [...await t.toArray()]));

for (const mixed of [false, true]) {
  for (const withStatus of [false, true, 'skip'] as const) {
    testBothBackends(`adamw_multi equals adamw element for element (${mixed ? 'mixed: f16 params, f32 master' : 'fp32'}, ${withStatus === 'skip' ? 'a skipped step' : withStatus ? 'clip and loss-scale status' : 'no status'})`, async (device) => {
      await scope(async () => {
        const status = withStatus ? fromArray([0.37, withStatus === 'skip' ? 1 : 0, 2.5, 1], [4], { device }) : undefined;
        const one = SIZES.map((n, k) => slot(device, n, k, mixed));
        const many = SIZES.map((n, k) => slot(device, n, k, mixed));
        one.forEach((s, k) => runKernel(adamwKernel, { inputs: { grad: s.grad, status }, outputs: { param: s.param, m: s.m, v: s.v, master: s.master }, attrs: attrsOf(k) }));
        runKernel(adamwMultiKernel, {
          inputs: { status, grads: many.map((s) => s.grad) },
          outputs: { states: many.flatMap((s) => [s.param, s.m, s.v, ...(s.master ? [s.master] : [])]) },
          attrs: { params: SIZES.map((_, k) => attrsOf(k)), masters: mixed },
        });
        for (let k = 0; k < SIZES.length; k++) assert.deepEqual(await values(many[k]!), await values(one[k]!), `parameter ${k} (${SIZES[k]} elements)`);
        if (withStatus === 'skip') assert.deepEqual(await values(many[7]!), await values(slot(device, SIZES[7]!, 7, mixed)), 'a skipped step changes nothing');
      });
    });
  }
}

testBothBackends('grad_sq_partials_multi writes the slots the per-gradient kernel writes, bit for bit (20 gradients, f16 and f32, NaN and Inf counted)', async (device) => {
  await scope(async () => {
    const grads = Array.from({ length: 20 }, (_, k) => {
      const n = SIZES[k % SIZES.length]! + k;
      const xs = wave(n, k, 3);
      if (k === 5) xs[n - 1] = NaN;
      if (k === 17) xs[0] = Infinity;
      return fromArray(xs, [n], { device, dtype: k % 3 === 2 ? 'f16' : 'f32' });
    });
    const groups = grads.map((g) => Math.max(1, Math.min(256, Math.ceil(g.size / 4096))));
    const bases = groups.map((_, k) => groups.slice(0, k).reduce((a, b) => a + b, 0));
    const slots = bases[19]! + groups[19]!;
    const one = zeros([2 * slots], { device }), many = zeros([2 * slots], { device });
    grads.forEach((grad, k) => runKernel(gradSqPartialsKernel, { inputs: { grad }, outputs: { partials: one }, attrs: { base: bases[k]!, groups: groups[k]! } }));
    runKernel(gradSqPartialsMultiKernel, { inputs: { grads }, outputs: { partials: many }, attrs: { bases, groups } });
    const got = [...await many.toArray()], want = [...await one.toArray()];
    assert.deepEqual(got, want);
    assert.equal(got.filter((_, i) => i % 2 === 1).reduce((a, b) => a + b, 0), 2, 'one NaN and one Inf counted');
  });
});

test('AdamW with clipping over 57 parameters: a few dispatches instead of two per parameter', async (t) => {
  const b = await freshWebGPU(t);
  if (!b) return;
  try {
    const r = await scope(async () => {
      const params = Array.from({ length: 57 }, (_, k) => param(wave(SIZES[k % SIZES.length]!, k), [SIZES[k % SIZES.length]!], { device: b }));
      const opt = new AdamW(params, { lr: 1e-2, maxGradNorm: 0.5 });
      for (const [k, p] of params.entries()) setGradValues(p, wave(p.size, k + 100));
      await b.sync();
      const before = b.stats.dispatches;
      opt.step();
      const dispatches = b.stats.dispatches - before;
      opt.dispose();
      return { dispatches };
    });
    const perAdam = Math.min(4, Math.floor((b.limits.maxStorageBuffersPerShaderStage - 1) / 4));
    const perPartials = Math.min(15, b.limits.maxStorageBuffersPerShaderStage - 1);
    // the partial sums, the finalize kernel, the updates
    assert.equal(r.dispatches, Math.ceil(57 / perPartials) + 1 + Math.ceil(57 / perAdam), `dispatches of one step (${perAdam} updates, ${perPartials} gradients a dispatch)`);
    assert.ok(r.dispatches < 57, `${r.dispatches} dispatches, below one per parameter`);
  } finally {
    b.destroy();
  }
});
