import assert from 'node:assert/strict';
import type { Tensor } from '../../../index.js';
import { fromArray, scope } from '../../../index.js';
import { AdamW, SGD } from '../../../engine/optim/index.js';
import { assertClose, testBothBackends } from '../../helpers/backends.js';
import { adamReference, globalNorm, hostRandom, param, setGradValues } from './helpers.js';

const A0 = [0.5, -1, 2, 0.25, -0.75], B0 = [1, 2, 3];
// Two steps of gradients whose global norms are 13 and 5 (3-4-12 and 3-4 triangles, split over two tensors).
const GA = [[3, 0, 0, 0, 0], [0, 3, 0, 0, 0]];
const GB = [[4, 0, 12], [0, 4, 0]];
const HYPER = { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, decoupled: true };

testBothBackends('clipping by global norm: grads scaled by min(1, maxNorm / (norm + 1e-6)) on the device; the norm comes back on request', async () => {
  await scope(async () => {
    const a = param(A0, [5], { label: 'a' }), b = param(B0, [3], { label: 'b' });
    const opt = new AdamW([a, b], { lr: 0.1, weightDecay: 0, maxGradNorm: 2 });
    try {
      const norms: Tensor[] = [];
      for (let t = 0; t < 2; t++) {
        setGradValues(a, GA[t]!);
        setGradValues(b, GB[t]!);
        norms.push(opt.step({ returnGradNorm: true }).gradNorm!);
      }
      assertClose([await norms[0]!.item(), await norms[1]!.item()], [13, 5], 1e-6, 0, 'global norms');
      assert.equal(norms[0]!.category, 'temporary');
      const clipped = (t: number, g: number[]) => g.map((x) => x * Math.min(1, 2 / (globalNorm([GA[t]!, GB[t]!]) + 1e-6)));
      const refA = adamReference(A0, GA.map((g, t) => clipped(t, g)), HYPER);
      const refB = adamReference(B0, GB.map((g, t) => clipped(t, g)), HYPER);
      assertClose(await a.toArray(), refA.p, 1e-5, 1e-6, 'a');
      assertClose(await b.toArray(), refB.p, 1e-5, 1e-6, 'b');
      assertClose(await opt.paramStates()[1]!.tensors.get('m')!.toArray(), refB.m, 1e-5, 1e-9, 'm of b sees the clipped grads');
    } finally {
      opt.dispose();
    }
  });
});

testBothBackends('clipping above the norm changes nothing: bit-identical to an unclipped run', async () => {
  await scope(async () => {
    const run = async (maxGradNorm: number) => {
      const a = param(A0, [5]), b = param(B0, [3]);
      const opt = new SGD([a, b], { lr: 0.1, momentum: 0.9, maxGradNorm });
      for (let t = 0; t < 2; t++) {
        setGradValues(a, GA[t]!);
        setGradValues(b, GB[t]!);
        opt.step();
      }
      opt.dispose();
      return [...await a.toArray(), ...await b.toArray()];
    };
    assert.deepEqual(await run(100), await run(0));
  });
});

testBothBackends('step() reads nothing back, with clipping and loss scaling on', async (b) => {
  await scope(async () => {
    const p = param([1, 2, 3, 4], [4], { dtype: 'f16' });
    const opt = new AdamW([p], { precision: 'mixed', maxGradNorm: 1, lossScaling: true });
    try {
      setGradValues(p, [1, -1, 2, 0]);
      const before = b.stats.readbacks;
      for (let i = 0; i < 5; i++) opt.step();
      assert.equal(b.stats.readbacks, before, 'no readbacks during step()');
    } finally {
      opt.dispose();
    }
  });
});

/**
 * Mixed-precision AdamW (or SGD with momentum) with a loss scaler fed `grads` (unscaled values,
 * f16-exact with few mantissa bits) multiplied by the current scale, read back each step as a
 * user may. An 'inf' or 'nan' entry injects an overflow in the scaled gradient.
 */
async function scaledRun(grads: (number[] | 'inf' | 'nan')[], initScale: number, growthInterval = 1000, kind: 'adamw' | 'sgd' = 'adamw') {
  const p = param([0.5, -0.25, 1, 2], [4], { dtype: 'f16', label: 'w' });
  const lossScaling = { initScale, growthInterval };
  const opt = kind === 'adamw'
    ? new AdamW([p], { lr: 0.01, precision: 'mixed', lossScaling })
    : new SGD([p], { lr: 0.01, momentum: 0.9, dampening: 0.1, precision: 'mixed', lossScaling });
  const seen: { scale: number; overflow: boolean; param: number[] }[] = [];
  for (const g of grads) {
    const scale = await opt.lossScaler!.readScale();
    const values = g === 'inf' ? [1, Infinity, 0, 1] : g === 'nan' ? [NaN, 0, 0, 1] : g.map((x) => x * scale);
    setGradValues(p, values);
    opt.step();
    seen.push({ scale, overflow: await opt.lossScaler!.overflowed(), param: [...await p.toArray()] });
  }
  const st = opt.paramStates()[0]!;
  const out = {
    param: [...await p.toArray()], master: [...await st.master!.toArray()],
    state: Object.fromEntries(await Promise.all([...st.tensors].map(async ([name, t]) => [name, [...await t.toArray()]] as const))),
    scaler: await opt.lossScaler!.read(), seen,
  };
  opt.dispose();
  return out;
}

const G1 = [0.5, -0.25, 0.125, 1], G2 = [-1, 0.75, 0.5, -0.5], G3 = [0.25, 0.25, -2, 1];

testBothBackends('loss scaler: an inf or NaN gradient skips the step on the device (AdamW and SGD alike), halves the scale, and the run equals one without that step', async () => {
  await scope(async () => {
    for (const kind of ['adamw', 'sgd'] as const) {
      const clean = await scaledRun([G1, G2, G3], 1024, 1000, kind);
      // at step 1 too: the next step is then the first applied one (Adam's bias correction, SGD's buf = g)
      for (const at of [0, 1]) {
        for (const bad of ['inf', 'nan'] as const) {
          const grads: (number[] | 'inf' | 'nan')[] = [G1, G2, G3];
          grads.splice(at, 0, bad);
          const withOverflow = await scaledRun(grads, 1024, 1000, kind);
          const what = `${kind}, ${bad} at step ${at + 1}`;
          assert.deepEqual(withOverflow.seen.map((s) => s.scale), [0, 1, 2, 3].map((k) => (k <= at ? 1024 : 512)), what);
          assert.deepEqual(withOverflow.seen.map((s) => s.overflow), [0, 1, 2, 3].map((k) => k === at), what);
          assert.deepEqual(withOverflow.seen[at]!.param, at === 0 ? [0.5, -0.25, 1, 2] : withOverflow.seen[at - 1]!.param, `${what}: the step changed nothing`);
          // Unscaling by a power of two is exact and the step count counts applied steps only, so
          // the remaining updates are bit for bit those of the clean run.
          for (const k of ['param', 'master', 'state'] as const) assert.deepEqual(withOverflow[k], clean[k], `${what}: ${k}`);
          assert.deepEqual(Object.keys(clean.state), kind === 'adamw' ? ['m', 'v'] : ['momentum']);
          assert.deepEqual(withOverflow.scaler, { scale: 512, goodSteps: 3 - at, skippedSteps: 1, lastOverflow: false }, what);
        }
      }
    }
  });
});

testBothBackends('loss scaler: the scale grows after growthInterval good steps, and an f16 overflow of the scaled gradient backs it off', async () => {
  await scope(async () => {
    const r = await scaledRun([G1, G2, G3, G1, G2, G3, G1], 2 ** 13, 2);
    // 2^13 -> 2^14 after 2 good steps -> 2^15 after 2 more; then G3 * 2^15 = -65536 overflows f16 -> inf -> back to 2^14.
    assert.deepEqual(r.seen.map((s) => Math.log2(s.scale)), [13, 13, 14, 14, 15, 15, 14]);
    assert.deepEqual(r.seen.map((s) => s.overflow), [false, false, false, false, false, true, false]);
    assert.deepEqual(r.scaler, { scale: 2 ** 14, goodSteps: 1, skippedSteps: 1, lastOverflow: false });
  });
});

testBothBackends('loss scaler: scaleLoss multiplies by the device-side scale; options are validated', async (b) => {
  await scope(async () => {
    const p = param([1], [1]);
    const opt = new AdamW([p], { lossScaling: { initScale: 8 } });
    try {
      assert.deepEqual([...await opt.lossScaler!.scaleLoss(fromArray([1.5, -2])).toArray()], [12, -16]);
      assert.equal(opt.lossScaler!.state.category, 'temporary');
      assert.equal(opt.lossScaler!.state.backend, b);
    } finally {
      opt.dispose();
    }
    assert.throws(() => new AdamW([param([1], [1])], { lossScaling: { initScale: 0 } }), /initScale must be a finite number > 0, got 0/);
    assert.throws(() => new AdamW([param([1], [1])], { lossScaling: { backoffFactor: 2 } }), /backoffFactor must be in \(0, 1\), got 2/);
    assert.throws(() => new AdamW([param([1], [1])], { lossScaling: { growthInterval: 1.5 } }), /growthInterval must be an integer >= 1/);
  });
});

testBothBackends('global norm over large odd-sized gradients (many workgroups per tensor) matches f64; an inf deep inside one is caught', async () => {
  await scope(async () => {
    const sizes = [100_003, 4097, 1];
    const rnd = hostRandom(21);
    const grads = sizes.map((n) => Array.from({ length: n }, () => Math.fround(rnd())));
    const ps = sizes.map((n, k) => param(new Float32Array(n), [n], { label: `p${k}` }));
    const opt = new SGD(ps, { lr: 0, lossScaling: { initScale: 1 } });
    try {
      ps.forEach((p, k) => setGradValues(p, grads[k]!));
      const norm = opt.step({ returnGradNorm: true }).gradNorm!;
      // f32 partial sums of ~1e5 squares: relative error well under 1e-5.
      assertClose([await norm.item()], [globalNorm(grads)], 1e-5, 0, 'global norm');
      assert.equal(await opt.lossScaler!.overflowed(), false);
      const bad = [...grads[0]!];
      bad[99_999] = -Infinity;
      setGradValues(ps[0]!, bad);
      opt.step();
      assert.equal(await opt.lossScaler!.overflowed(), true, 'the inf in the last workgroup of the first tensor was seen');
    } finally {
      opt.dispose();
    }
  });
});
