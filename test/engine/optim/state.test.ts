import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import type { Backend, Tensor } from '../../../index.js';
import { CpuBackend, fromArray, Generator, scope } from '../../../index.js';
import { loadSafetensors, saveSafetensors, SafetensorsError } from '../../../engine/safetensors.js';
import type { Optimizer } from '../../../engine/optim/index.js';
import { AdamW, quantileSorted, SGD } from '../../../engine/optim/index.js';
import { bothBackends, testBothBackends } from '../../helpers/backends.js';
import { hostRandom, param, setGradValues } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'optim-state-test-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const SHAPES = [[4, 3], [5]];
const rnd = hostRandom(11);
const INIT = SHAPES.map((s) => Array.from({ length: s[0]! * (s[1] ?? 1) }, () => rnd()));
/** Gradient of step t for parameter k: a pure function of (t, k), f16-exact, with an overflow at step 2 when asked. */
function gradFor(t: number, k: number, size: number, scale: number, overflowAt: number | null): number[] {
  return Array.from({ length: size }, (_, i) => (t === overflowAt && i === 0 && k === 0 ? Infinity : (((t * 7 + i * 3 + k) % 11) - 5) / 16 * scale));
}

type Config = { name: string; precision: 'fp32' | 'mixed'; make: (ps: Tensor[]) => Optimizer<any> };
const CONFIGS: Config[] = [
  { name: 'AdamW fp32, two groups, clipping', precision: 'fp32', make: (ps) => new AdamW([{ params: [ps[0]!] }, { params: [ps[1]!], lr: 0.003, weightDecay: 0 }], { lr: 0.01, maxGradNorm: 0.5 }) },
  { name: 'AdamW mixed with loss scaling (an overflow before the save)', precision: 'mixed', make: (ps) => new AdamW(ps, { lr: 0.01, precision: 'mixed', lossScaling: { initScale: 256, growthInterval: 3 } }) },
  { name: 'SGD nesterov fp32', precision: 'fp32', make: (ps) => new SGD(ps, { lr: 0.05, momentum: 0.9, nesterov: true }) },
];

async function train(opt: Optimizer<any>, ps: Tensor[], from: number, to: number, overflowAt: number | null): Promise<void> {
  for (let t = from; t < to; t++) {
    const scale = opt.lossScaler ? await opt.lossScaler.readScale() : 1;
    ps.forEach((p, k) => setGradValues(p, gradFor(t, k, p.size, scale, overflowAt)));
    opt.setLrScale(1 - t / 20); // a schedule, as a real run has
    opt.step();
  }
}

async function snapshot(opt: Optimizer<any>, ps: Tensor[]): Promise<unknown> {
  const states = [];
  for (const s of opt.paramStates()) {
    const tensors: Record<string, number[]> = {};
    for (const [k, t] of s.tensors) tensors[k] = [...await t.toArray()];
    states.push({ tensors, master: s.master ? [...await s.master.toArray()] : null });
  }
  return { params: await Promise.all(ps.map(async (p) => [...await p.toArray()])), states, scaler: await opt.lossScaler?.read() ?? null };
}

async function resumeMatches(b: Backend, c: Config): Promise<void> {
  const N = 4, M = 4;
  const dtype = c.precision === 'mixed' ? 'f16' : 'f32';
  const overflowAt = c.precision === 'mixed' ? 2 : null;
  const makeParams = () => INIT.map((v, k) => param(v, SHAPES[k]!, { dtype, label: `p${k}`, device: b }));
  // Uninterrupted run.
  const ps = makeParams();
  const opt = c.make(ps);
  await train(opt, ps, 0, N + M, overflowAt);
  const expected = await snapshot(opt, ps);
  opt.dispose();
  // Interrupted run: N steps, save params and optimizer state, restore into fresh objects, M more.
  const ps1 = makeParams();
  const opt1 = c.make(ps1);
  await train(opt1, ps1, 0, N, overflowAt);
  const paramsPath = join(dir, `params-${b.name}.safetensors`), statePath = join(dir, `state-${b.name}.safetensors`);
  await saveSafetensors(paramsPath, new Map(ps1.map((p) => [p.label, p])));
  await opt1.saveState(statePath);
  opt1.dispose();
  const { tensors } = await loadSafetensors(paramsPath, { device: b, category: 'parameter' });
  const ps2 = [...tensors.values()];
  ps2.forEach((p) => { p.requiresGrad = true; });
  const opt2 = c.make(ps2);
  opt2.setLrScale(0.123); // overwritten by loadState
  await opt2.loadState(statePath);
  await train(opt2, ps2, N, N + M, overflowAt);
  assert.deepEqual(await snapshot(opt2, ps2), expected, `${c.name}: resumed run equals the uninterrupted one bit for bit`);
  opt2.dispose();
}

for (const c of CONFIGS) {
  testBothBackends(`exact resume: ${c.name}`, async (b) => {
    await scope(() => resumeMatches(b, c));
  });
}

test('loadState refuses a state that does not fit, before changing anything', async () => {
  const cpu = new CpuBackend();
  await scope(async () => {
    const p = param([1, 2, 3], [3], { device: cpu, label: 'w' });
    const opt = new AdamW([p], { lossScaling: true });
    setGradValues(p, [1, 1, 1]);
    opt.step();
    const path = join(dir, 'adamw.safetensors');
    await opt.saveState(path);
    const expectRejects = async (o: Optimizer<any>, pattern: RegExp) => {
      await assert.rejects(o.loadState(path), (e: unknown) => e instanceof SafetensorsError && e.message.includes(path) && pattern.test(e.message));
      o.dispose();
    };
    await expectRejects(new SGD([param([1, 2, 3], [3], { device: cpu })], { lr: 1 }), /the state is of a adamw optimizer, this one is sgd/);
    await expectRejects(new AdamW([param([1, 2, 3], [3], { device: cpu, dtype: 'f16' })], { precision: 'mixed', lossScaling: true }), /the state is 'fp32' precision, this optimizer is 'mixed'/);
    await expectRejects(new AdamW([param([1, 2], [2], { device: cpu, label: 'small' })], { lossScaling: true }), /parameter 0 \("w"\) is \[3\] in the state but tensor "small" \[2\] here/);
    await expectRejects(new AdamW([param([1, 2, 3], [3], { device: cpu })]), /the state has a loss scaler but this optimizer has none/);
    await expectRejects(new AdamW([param([1, 2, 3], [3], { device: cpu }), param([1], [1], { device: cpu })], { lossScaling: true }), /the state has 1 parameters, this optimizer 2/);
    const fresh = new AdamW([param([1, 2, 3], [3], { device: cpu })], { lossScaling: true });
    const plain = join(dir, 'plain.safetensors');
    await saveSafetensors(plain, { x: fromArray([1], [1], { device: cpu }) });
    await assert.rejects(fresh.loadState(plain), /not an optimizer state file/);
    assert.deepEqual([...await fresh.paramStates()[0]!.tensors.get('m')!.toArray()], [0, 0, 0], 'nothing was written');
    fresh.dispose();
    opt.dispose();
  });
});

test('quantileSorted interpolates linearly like torch.quantile', () => {
  assert.equal(quantileSorted([0.1, 0.2, 0.3, 0.4, 0.5], 0.4), 0.2 + 0.6 * (0.3 - 0.2));
  assert.equal(quantileSorted([1, 2, 3, 4], 0), 1);
  assert.equal(quantileSorted([1, 2, 3, 4], 1), 4);
  assert.equal(quantileSorted([1, 2, 3, 4], 0.5), 2.5);
  assert.equal(quantileSorted([7], 0.3), 7);
});

/** An AdamW over [a, b] after two steps, with m and v of `a` set to known values. */
async function primed(values: number[]) {
  const a = param(values.map(() => 1), [values.length], { label: 'a' }), b = param([1, 1], [2], { label: 'b' });
  const opt = new AdamW([a, b], { lr: 0.01 });
  for (let t = 0; t < 2; t++) {
    setGradValues(a, values.map(() => 1));
    setGradValues(b, [1, 1]);
    opt.step();
  }
  const [sa, sb] = opt.paramStates();
  for (const t of sa!.tensors.values()) t.backend.write(t.storage, values);
  return { a, b, opt, sa: sa!, sb: sb! };
}

testBothBackends('resetState: zero and magnitude pruning (ReLoRA) touch only the chosen parameters and keep the step count unless asked', async () => {
  await scope(async () => {
    const values = [0.1, -0.5, 0.3, -0.2, 0.4];
    {
      const { a, opt, sa, sb } = await primed(values);
      const bM = [...await sb.tensors.get('m')!.toArray()];
      await opt.resetState([a], { mode: 'magnitude', p: 0.4 });
      // |m| sorted: 0.1 0.2 0.3 0.4 0.5; the 0.4-quantile is 0.26: keep |x| > 0.26.
      assert.deepEqual([...await sa.tensors.get('m')!.toArray()], [0, -0.5, 0.3, 0, 0.4].map(Math.fround));
      assert.deepEqual([...await sa.tensors.get('v')!.toArray()], [0, -0.5, 0.3, 0, 0.4].map(Math.fround));
      assert.deepEqual([...await sb.tensors.get('m')!.toArray()], bM, 'b untouched');
      assert.deepEqual(opt.paramStates().map((s) => s.step), [2, 2]);
      opt.dispose();
    }
    {
      const { opt, sa, sb } = await primed(values);
      await opt.resetState(null, { resetStep: true });
      for (const s of [sa, sb]) for (const t of s.tensors.values()) assert.ok((await t.toArray()).every((x) => x === 0));
      assert.deepEqual(opt.paramStates().map((s) => s.step), [0, 0]);
      // After a step reset, the next step is a first step again: Adam's first update is lr * sign(g) (eps aside).
      const before = [...await sa.param.toArray()];
      setGradValues(sa.param, [2, -3, 0.5, 1, -1]);
      opt.step();
      const after = [...await sa.param.toArray()];
      const moved = after.map((x, i) => (before[i]! * (1 - 0.01 * 0.01) - x) / 0.01);
      moved.forEach((d, i) => assert.ok(Math.abs(d - Math.sign([2, -3, 0.5, 1, -1][i]!)) < 1e-4, `step ${i}: ${d}`));
      opt.dispose();
    }
    const { opt } = await primed(values);
    await assert.rejects(opt.resetState(null, { mode: 'random' }), /mode 'random' needs a pruning fraction p in \[0, 1\], got undefined/);
    await assert.rejects(opt.resetState(null, { mode: 'bogus' as never }), /unknown reset mode "bogus"/);
    await assert.rejects(opt.resetState([param([1], [1], { label: 'stranger' })]), /tensor "stranger" \[1\] is not a parameter of this optimizer/);
    opt.dispose();
  });
});

test('resetState random pruning: zeroes a fraction p, seeded, the same elements on both backends', async (t) => {
  const backends = await bothBackends(t);
  if (!backends) return;
  const masks: boolean[][] = [];
  for (const b of [backends.cpu, backends.gpu]) {
    await scope(async () => {
      const n = 4096;
      const p = param(new Float32Array(n).fill(1), [n], { device: b });
      const opt = new SGD([p], { lr: 0.1, momentum: 0.9 });
      setGradValues(p, new Float32Array(n).fill(1));
      opt.step();
      const buf = opt.paramStates()[0]!.tensors.get('momentum')!;
      await opt.resetState(null, { mode: 'random', p: 0.3, generator: new Generator(5) });
      const values = [...await buf.toArray()];
      const zeroed = values.filter((x) => x === 0).length / n;
      assert.ok(Math.abs(zeroed - 0.3) < 0.03, `fraction zeroed ${zeroed} (expected 0.3 +- 0.03: 4 standard deviations at n = 4096)`);
      assert.ok(values.every((x) => x === 0 || x === 1), 'kept elements are unchanged');
      masks.push(values.map((x) => x === 0));
      opt.dispose();
    });
  }
  assert.deepEqual(masks[1], masks[0], 'same seed, same pruned elements on cpu and webgpu');
});

testBothBackends('resetState with resetStep and a loss scaler: steps skipped before the reset do not count after it', async () => {
  await scope(async () => {
    const run = async (withHistory: boolean) => {
      const p = param([0.5, -1, 2], [3], { dtype: 'f16' });
      const opt = new AdamW([p], { lr: 0.01, precision: 'mixed', lossScaling: { initScale: 64 } });
      if (withHistory) {
        for (const g of [[1, 1, 1], [Infinity, 0, 0], [0.5, 0.5, 0.5]]) {
          setGradValues(p, g.map((x) => x * 64));
          opt.step();
        }
        await opt.resetState(null, { resetStep: true });
        opt.paramStates()[0]!.master!.backend.write(opt.paramStates()[0]!.master!.storage, [0.5, -1, 2]);
        opt.lossScaler!.load({ ...await opt.lossScaler!.read(), scale: 64 });
      }
      for (const g of [[0.25, -0.5, 1], [1, 0.5, -0.25]]) {
        setGradValues(p, g.map((x) => x * 64));
        opt.step();
      }
      const out = [...await opt.paramStates()[0]!.master!.toArray()];
      opt.dispose();
      return out;
    };
    assert.deepEqual(await run(true), await run(false));
  });
});
