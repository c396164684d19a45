/**
 * GaLore against PyTorch (test/fixtures/make_galore_fixtures.py -> galore.json): the subspace
 * iteration against torch.linalg.svd (principal angles), and the projected AdamW step against a
 * PyTorch reimplementation of GaLore's step on the same gradients; then memory, resume and errors.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { Backend, Tensor } from '../../../index.js';
import { CpuBackend, fromArray, roundToF16, scope, StepError } from '../../../index.js';
import { GaLoreAdamW } from '../../../engine/optim/index.js';
import { topSingularSubspace } from '../../../engine/optim/galore-subspace.js';
import { assertClose, testBothBackends } from '../../helpers/backends.js';
import { hostRandom, param, setGradValues } from './helpers.js';

interface Fixture {
  hyper: { lr: number; betas: [number, number]; eps: number; weight_decay: number; scale: number; update_gap: number };
  subspaces: { shape: [number, number]; rank: number; g: number[]; basis: number[] }[];
  steps: { shape: [number, number]; rank: number; p0: number[]; grads: number[][]; p: number[]; m: number[]; v: number[]; projector: number[] }[];
}
const fixture = JSON.parse(readFileSync(new URL('../../../../test/fixtures/galore.json', import.meta.url), 'utf8')) as Fixture;

/** (Q^T B) for column-major-free row-major [s, r] matrices Q and B. */
function crossGram(q: ArrayLike<number>, b: ArrayLike<number>, s: number, r: number): number[][] {
  const out = Array.from({ length: r }, () => new Array<number>(r).fill(0));
  for (let i = 0; i < r; i++) for (let j = 0; j < r; j++) for (let k = 0; k < s; k++) out[i]![j]! += q[k * r + i]! * b[k * r + j]!;
  return out;
}

/** sin of the largest principal angle between span(Q) and span(B) (both orthonormal [s, r]): ||B - Q Q^T B||_2 <= its Frobenius norm. */
function largestAngleSinBound(q: ArrayLike<number>, b: ArrayLike<number>, s: number, r: number): number {
  const c = crossGram(q, b, s, r);
  let sq = 0;
  for (let k = 0; k < s; k++) {
    for (let j = 0; j < r; j++) {
      let proj = 0;
      for (let i = 0; i < r; i++) proj += q[k * r + i]! * c[i]![j]!;
      sq += (b[k * r + j]! - proj) ** 2;
    }
  }
  return Math.sqrt(sq);
}

function orthonormalityError(q: ArrayLike<number>, s: number, r: number): number {
  const g = crossGram(q, q, s, r);
  let worst = 0;
  for (let i = 0; i < r; i++) for (let j = 0; j < r; j++) worst = Math.max(worst, Math.abs(g[i]![j]! - (i === j ? 1 : 0)));
  return worst;
}

testBothBackends('the subspace iteration finds torch.linalg.svd\'s top-r subspace on GaLore\'s side (principal angles < 1e-4), orthonormal and repeatable', async (b) => {
  await scope(async () => {
    for (const c of fixture.subspaces) {
      const [m, n] = c.shape, s = Math.min(m, n);
      const g = fromArray(c.g, c.shape);
      const q1 = Array.from(await topSingularSubspace(g, { rank: c.rank, iterations: 10, seed: 3 }).toArray());
      const q2 = Array.from(await topSingularSubspace(g, { rank: c.rank, iterations: 10, seed: 3 }).toArray());
      const what = `${m}x${n} rank ${c.rank} on ${b.name}`;
      assert.deepEqual(q2, q1, `${what}: same seed, same numbers`);
      assert.ok(orthonormalityError(q1, s, c.rank) < 1e-5, `${what}: Q^T Q = I (error ${orthonormalityError(q1, s, c.rank)})`);
      const angle = largestAngleSinBound(q1, c.basis, s, c.rank);
      assert.ok(angle < 1e-4, `${what}: largest principal angle sin <= ${angle}`);
      // With well separated singular values the columns converge to the singular vectors themselves (up to sign).
      const cosines = crossGram(q1, c.basis, s, c.rank).map((row, i) => Math.abs(row[i]!));
      assert.ok(cosines.every((x) => x > 1 - 1e-6), `${what}: |<q_i, u_i>| = ${cosines.join(', ')}`);
    }
  });
});

testBothBackends('the subspace stays orthonormal for a rank-deficient gradient (rank 1, and all zeros)', async (b) => {
  await scope(async () => {
    const m = 10, n = 30, r = 4;
    const rnd = hostRandom(5);
    const u = Array.from({ length: m }, () => rnd() - 0.5), v = Array.from({ length: n }, () => rnd() - 0.5);
    const outer = Array.from({ length: m * n }, (_, k) => u[Math.floor(k / n)]! * v[k % n]!);
    for (const [name, values] of [['rank 1', outer], ['zeros', new Array<number>(m * n).fill(0)]] as const) {
      const q = await topSingularSubspace(fromArray(values, [m, n]), { rank: r, iterations: 3, seed: 1 }).toArray();
      assert.ok(orthonormalityError(q, m, r) < 1e-5, `${name} on ${b.name}: Q^T Q = I (error ${orthonormalityError(q, m, r)})`);
      if (name === 'rank 1') {
        const norm = Math.hypot(...u);
        const cos = Math.abs(u.reduce((a, x, i) => a + x * q[i * r]!, 0)) / norm;
        assert.ok(cos > 1 - 1e-5, `rank 1 on ${b.name}: the first column is the left singular vector (|cos| ${cos})`);
      }
    }
  });
});

function makeGalore(p: Tensor, rank: number, precision: 'fp32' | 'mixed' = 'fp32', extra: Partial<{ updateGap: number }> = {}): GaLoreAdamW {
  const h = fixture.hyper;
  return new GaLoreAdamW([{ params: [p], rank, updateGap: extra.updateGap ?? h.update_gap, scale: h.scale }], {
    lr: h.lr, betas: h.betas, eps: h.eps, weightDecay: h.weight_decay, iterations: 12, precision, lossScaling: precision === 'mixed',
  });
}

testBothBackends('GaLore\'s projected AdamW equals the PyTorch reimplementation on the same gradients (5 steps, a refresh at step 4; left and right)', async (b) => {
  await scope(async () => {
    for (const c of fixture.steps) {
      const p = param(c.p0, c.shape, { label: 'w' });
      const opt = makeGalore(p, c.rank);
      for (const g of c.grads) {
        setGradValues(p, g);
        opt.step();
      }
      const what = `${c.shape.join('x')} rank ${c.rank} on ${b.name}`;
      const s = opt.paramStates()[0]!;
      assertClose(await s.tensors.get('projector')!.toArray(), c.projector, 0, 1e-4, `${what}: projector`);
      assertClose(await s.tensors.get('m')!.toArray(), c.m, 1e-3, 1e-5, `${what}: m`);
      assertClose(await s.tensors.get('v')!.toArray(), c.v, 1e-3, 1e-7, `${what}: v`);
      assertClose(await p.toArray(), c.p, 1e-5, 1e-5, `${what}: weights`);
      opt.dispose();
    }
  });
});

testBothBackends('GaLore in mixed precision with loss scaling equals fp32 GaLore on the same f16-rounded inputs (master), weights its f16 rounding', async (b) => {
  await scope(async () => {
    const c = fixture.steps[0]!;
    const h = fixture.hyper;
    const p0 = c.p0.map(roundToF16), grads = c.grads.map((g) => g.map(roundToF16));
    const ref = param(p0, c.shape, { label: 'w' });
    const refOpt = makeGalore(ref, c.rank);
    const p = param(p0, c.shape, { label: 'w', dtype: 'f16' });
    const scale = 1024; // a power of two: the scaled f16 gradients are exact
    const opt = new GaLoreAdamW([{ params: [p], rank: c.rank, updateGap: h.update_gap, scale: h.scale }], {
      lr: h.lr, betas: h.betas, eps: h.eps, weightDecay: h.weight_decay, iterations: 12, precision: 'mixed', lossScaling: { initScale: scale },
    });
    for (const g of grads) {
      setGradValues(ref, g);
      refOpt.step();
      setGradValues(p, g.map((x) => x * scale), 'f16');
      opt.step();
    }
    const expected = await ref.toArray();
    assertClose(await opt.paramStates()[0]!.master!.toArray(), expected, 1e-5, 1e-6, `mixed master on ${b.name}`);
    assertClose(await p.toArray(), Array.from(expected, roundToF16), 1e-3, 1e-6, `mixed f16 weights on ${b.name}`);
  });
});

testBothBackends('a step the loss scaler skips (an inf gradient on a refresh step) changes nothing: projector, moments, master and weights', async (b) => {
  await scope(async () => {
    const c = fixture.steps[0]!;
    const p = param(c.p0.map(roundToF16), c.shape, { label: 'w', dtype: 'f16' });
    const opt = new GaLoreAdamW([{ params: [p], rank: c.rank, updateGap: 1 }], { lr: 0.01, precision: 'mixed', lossScaling: { initScale: 1024 } });
    setGradValues(p, c.grads[0]!.map((x) => x * 1024), 'f16');
    opt.step();
    const s = opt.paramStates()[0]!;
    const snapshot = async () => Promise.all([s.tensors.get('projector')!, s.tensors.get('m')!, s.tensors.get('v')!, s.master!, p].map(async (t) => Array.from(await t.toArray())));
    const before = await snapshot();
    const bad = c.grads[1]!.map((x) => x * 1024);
    bad[3] = Infinity;
    setGradValues(p, bad, 'f16');
    opt.step();
    assert.equal(await opt.lossScaler!.overflowed(), true);
    assert.deepEqual(await snapshot(), before, `skipped step on ${b.name}`);
  });
});

// Bytes written out by hand: m and v are [r, n] (left, m < n) or [m, r] (right), the projector
// [min(m, n), r], all f32; plus an f32 master of [m, n] in mixed precision; a rank-0 group is AdamW.
testBothBackends('GaLore\'s state bytes: moments and projector in the optimizer category, equal to the formula and the tracker', async (b) => {
  await scope(async () => {
    for (const precision of ['fp32', 'mixed'] as const) {
      const dtype = precision === 'mixed' ? 'f16' : 'f32';
      const wide = param(new Float32Array(12 * 40).fill(0.1), [12, 40], { dtype, label: 'wide' });
      const tall = param(new Float32Array(30 * 9).fill(0.1), [30, 9], { dtype, label: 'tall' });
      const norm = param(new Float32Array(9).fill(1), [9], { dtype, label: 'norm' });
      const before = b.memory().live.optimizer;
      const opt = new GaLoreAdamW([{ params: [wide, tall], rank: 4 }, { params: [norm] }], { precision });
      const master = precision === 'mixed' ? 4 * (12 * 40 + 30 * 9 + 9) : 0;
      const expected = 4 * (2 * 4 * 40 + 12 * 4) + 4 * (2 * 30 * 4 + 9 * 4) + 4 * 2 * 9 + master;
      assert.equal(opt.stateBytes(), expected, precision);
      assert.equal(b.memory().live.optimizer - before, expected, `${precision}: tracker`);
      for (const p of [wide, tall, norm]) setGradValues(p, new Float32Array(p.size).fill(0.01), dtype);
      opt.step();
      assert.equal(b.memory().live.optimizer - before, expected, `${precision}: a step allocates no optimizer state`);
      opt.dispose();
      assert.equal(b.memory().live.optimizer, before, `${precision}: dispose frees it`);
    }
  });
});

testBothBackends('GaLore resumes exactly: save after 2 steps, load into a fresh optimizer, 4 more steps (a refresh among them) equal an uninterrupted run', async (b) => {
  const dir = mkdtempSync(join(tmpdir(), 'galore-'));
  try {
    await scope(async () => {
      const c = fixture.steps[1]!;
      const grads = [...c.grads, ...c.grads.slice(0, 1)];
      const run = async (interrupt: boolean): Promise<number[]> => {
        let p = param(c.p0, c.shape, { label: 'w' });
        let opt = makeGalore(p, c.rank, 'fp32', { updateGap: 3 });
        for (let t = 0; t < grads.length; t++) {
          if (interrupt && t === 2) {
            await opt.saveState(join(dir, 'opt.safetensors'));
            const values = await p.toArray();
            opt.dispose();
            p = param(values, c.shape, { label: 'w' });
            opt = makeGalore(p, c.rank, 'fp32', { updateGap: 3 });
            await opt.loadState(join(dir, 'opt.safetensors'));
          }
          setGradValues(p, grads[t]!);
          opt.step();
        }
        return Array.from(await p.toArray());
      };
      assert.deepEqual(await run(true), await run(false), `resume on ${b.name}`);
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('GaLore refuses what it cannot project, naming the parameter and the limit', () => {
  const b: Backend = new CpuBackend();
  const w = param(new Float32Array(6 * 4), [6, 4], { device: b, label: 'w' });
  const v = param(new Float32Array(4), [4], { device: b, label: 'v' });
  assert.throws(() => new GaLoreAdamW([{ params: [w], rank: 5 }]), (e: Error) => e instanceof StepError && /rank 5 exceeds min\(6, 4\)/.test(e.message));
  assert.throws(() => new GaLoreAdamW([{ params: [v], rank: 2 }]), (e: Error) => e instanceof StepError && /not a matrix/.test(e.message));
  assert.throws(() => new GaLoreAdamW([{ params: [w], rank: 2, updateGap: 0 }]), (e: Error) => e instanceof StepError && /updateGap must be an integer >= 1/.test(e.message));
});
