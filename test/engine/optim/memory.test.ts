import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Backend, Tensor } from '../../../index.js';
import { CpuBackend, DisposedError, DTypeError, fromArray, scope, ShapeError, StepError } from '../../../index.js';
import type { Optimizer } from '../../../engine/optim/index.js';
import { Adam, AdamW, SGD } from '../../../engine/optim/index.js';
import { testBothBackends } from '../../helpers/backends.js';
import { param, setGradValues } from './helpers.js';

const PARAM_SETS: number[][][] = [
  [[3, 5]],
  [[7], [2, 3, 4], [1]],
  [[128, 64], [33], [5, 1, 3]],
];

// Optimizer-state bytes per trainable parameter, written out by hand (not from the library):
// Adam/AdamW keep m and v (f32: 8 bytes), plus an f32 master copy in mixed precision (12);
// SGD keeps a momentum buffer (4) only when momentum > 0, plus the master copy in mixed precision.
const CONFIGS: { name: string; precision: 'fp32' | 'mixed'; bytesPerParam: number; make: (ps: Tensor[]) => Optimizer<any> }[] = [
  { name: 'AdamW fp32', precision: 'fp32', bytesPerParam: 8, make: (ps) => new AdamW(ps) },
  { name: 'Adam fp32', precision: 'fp32', bytesPerParam: 8, make: (ps) => new Adam(ps) },
  { name: 'AdamW mixed', precision: 'mixed', bytesPerParam: 12, make: (ps) => new AdamW(ps, { precision: 'mixed' }) },
  { name: 'SGD fp32', precision: 'fp32', bytesPerParam: 0, make: (ps) => new SGD(ps, { lr: 0.1 }) },
  { name: 'SGD momentum fp32', precision: 'fp32', bytesPerParam: 4, make: (ps) => new SGD(ps, { lr: 0.1, momentum: 0.9 }) },
  { name: 'SGD mixed', precision: 'mixed', bytesPerParam: 4, make: (ps) => new SGD(ps, { lr: 0.1, precision: 'mixed' }) },
  { name: 'SGD momentum mixed', precision: 'mixed', bytesPerParam: 8, make: (ps) => new SGD(ps, { lr: 0.1, momentum: 0.9, precision: 'mixed' }) },
];

const numel = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

testBothBackends('stateBytes() equals the tracker\'s optimizer bytes and the per-parameter formula, for several parameter sets', async (b) => {
  await scope(async () => {
    for (const c of CONFIGS) {
      for (const shapes of PARAM_SETS) {
        const n = shapes.reduce((a, s) => a + numel(s), 0);
        const dtype = c.precision === 'mixed' ? 'f16' : 'f32';
        const ps = shapes.map((s, k) => param(new Float32Array(numel(s)).fill(0.5), s, { dtype, label: `p${k}` }));
        const before = b.memory().live.optimizer;
        const opt = c.make(ps);
        const what = `${c.name} on ${JSON.stringify(shapes)}`;
        assert.equal(opt.stateBytes(), n * c.bytesPerParam, `${what}: formula`);
        assert.equal(b.memory().live.optimizer - before, opt.stateBytes(), `${what}: tracker`);
        ps.forEach((p) => setGradValues(p, new Float32Array(p.size).fill(0.25)));
        opt.step();
        assert.equal(b.memory().live.optimizer - before, n * c.bytesPerParam, `${what}: a step allocates no optimizer state`);
        opt.dispose();
        assert.equal(b.memory().live.optimizer, before, `${what}: dispose frees the state`);
      }
    }
  });
});

testBothBackends('mixed precision: the tracker shows f16 params (2 B), f16 grads (2 B) and f32 master + m + v (12 B): 16 bytes per parameter', async (b) => {
  await scope(async () => {
    const before = b.memory().live;
    const ps = [param(new Float32Array(300).fill(1), [20, 15], { dtype: 'f16', label: 'w1' }), param(new Float32Array(17).fill(1), [17], { dtype: 'f16', label: 'w2' })];
    ps.forEach((p) => setGradValues(p, new Float32Array(p.size).fill(0.5)));
    const opt = new AdamW(ps, { precision: 'mixed', maxGradNorm: 1, lossScaling: true });
    const live = b.memory().live;
    const delta = (k: keyof typeof live) => live[k] - before[k];
    assert.deepEqual([delta('parameter'), delta('gradient'), delta('optimizer')], [2 * 317, 2 * 317, 12 * 317]);
    assert.equal(delta('parameter') + delta('gradient') + delta('optimizer'), 16 * 317);
    assert.equal(delta('temporary'), 16, 'only the loss scaler\'s 4 floats live outside the model-state categories');
    const labels = b.tracker.topLabels(100).filter((l) => l.category === 'optimizer').map((l) => l.label).sort();
    assert.deepEqual(labels, ['adamw.m:w1', 'adamw.m:w2', 'adamw.master:w1', 'adamw.master:w2', 'adamw.v:w1', 'adamw.v:w2']);
    const temporaryBefore = b.memory().live.temporary;
    opt.step({ returnGradNorm: false });
    assert.equal(b.memory().live.temporary, temporaryBefore, 'the step frees its norm partials and status');
    opt.dispose();
    assert.equal(b.memory().live.temporary, before.temporary);
  });
});

testBothBackends('zeroGrad fills zeros in place (grads then accumulate from zero) or drops them; params without a grad are skipped', async (b) => {
  await scope(async () => {
    const p = param([1, 2], [2], { label: 'p' }), q = param([3, 4], [2], { label: 'q' });
    const opt = new SGD([p, q], { lr: 1 });
    try {
      setGradValues(p, [0.5, 0.5]);
      opt.step();
      assert.deepEqual([...await p.toArray()], [0.5, 1.5]);
      assert.deepEqual([...await q.toArray()], [3, 4], 'q had no grad: unchanged');
      assert.deepEqual(opt.paramStates().map((s) => s.step), [1, 0]);
      const g = p.grad!;
      opt.zeroGrad();
      assert.equal(p.grad, g, 'the same buffer');
      assert.deepEqual([...await g.toArray()], [0, 0]);
      const gradBytes = b.memory().live.gradient;
      opt.zeroGrad({ setToNone: true });
      assert.equal(p.grad, null);
      assert.equal(b.memory().live.gradient, gradBytes - 8, 'the grad buffer is freed');
    } finally {
      opt.dispose();
    }
  });
});

test('optimizer errors name the optimizer, the parameter and the value', async () => {
  const cpu = new CpuBackend();
  await scope(async () => {
    const p = param([1, 2, 3], [3], { device: cpu, label: 'w' });
    const frozen = fromArray([1], [1], { device: cpu, label: 'frozen' });
    assert.throws(() => new AdamW([frozen]), (e: unknown) => e instanceof StepError && /adamw group 0: parameter tensor "frozen" \[1\] has requiresGrad = false/.test(e.message));
    const half = param([1], [1], { dtype: 'f16', device: cpu, label: 'h' });
    assert.throws(() => new AdamW([half]), (e: unknown) => e instanceof DTypeError && /"h" \[1\] is f16 but precision 'fp32' needs f32 parameters \(pass precision: 'mixed'\)/.test(e.message));
    assert.throws(() => new AdamW([p], { precision: 'mixed' }), /is f32 but precision 'mixed' needs f16/);
    assert.throws(() => new AdamW([p, p]), /appears twice/);
    const optimizerBytes = cpu.memory().live.optimizer;
    assert.throws(() => new AdamW([{ params: [p] }, { params: [p] }]), /adamw group 1: parameter tensor "w" \[3\] appears twice/);
    assert.throws(() => new AdamW([p], { lossScaling: { initScale: -1 } }), /initScale must be a finite number > 0/);
    assert.equal(cpu.memory().live.optimizer, optimizerBytes, 'a failed constructor frees the state it allocated');
    assert.throws(() => new AdamW([]), /no parameters given/);
    assert.throws(() => new AdamW([p], { betas: [0.9, 1] }), /betas must be two numbers in \[0, 1\), got \[0.9,1\]/);
    assert.throws(() => new Adam([{ params: [p], lr: -1 }]), /adam group 0: lr must be a finite number >= 0, got -1/);
    assert.throws(() => new SGD([p], {} as never), /sgd: lr is required/);
    assert.throws(() => new SGD([p], { lr: 0.1, nesterov: true }), /nesterov needs momentum > 0 and dampening 0/);
    assert.throws(() => new AdamW([p], { maxGradNorm: -1 }), /maxGradNorm must be a finite number >= 0, got -1/);
    assert.throws(() => new AdamW([p], { precision: 'bf16' as never }), /precision must be 'fp32' or 'mixed', got "bf16"/);
    const other = param([1], [1], { device: new CpuBackend(), label: 'elsewhere' });
    assert.throws(() => new AdamW([p, other]), /"elsewhere" \[1\] is on cpu but the others are on cpu/);

    const opt = new AdamW([p]);
    p.grad = fromArray([1, 2], [2], { device: cpu });
    assert.throws(() => opt.step(), (e: unknown) => e instanceof ShapeError && /adamw.step: grad \[2\] does not match parameter tensor "w" \[3\]/.test(e.message));
    p.grad = fromArray([1, 2, 3], [3], { device: cpu, dtype: 'i32' });
    assert.throws(() => opt.step(), (e: unknown) => e instanceof DTypeError && /grad of tensor "w" \[3\] is i32/.test(e.message));
    p.grad.dispose();
    assert.throws(() => opt.step(), (e: unknown) => e instanceof DisposedError && /the grad of tensor "w" \[3\] was disposed/.test(e.message));
    p.grad = null;
    opt.step(); // nothing to do
    assert.throws(() => opt.setLrScale(NaN), /setLrScale: factor must be a finite number >= 0, got NaN/);
    opt.groups[0]!.lr = Infinity;
    assert.throws(() => opt.step(), /adamw.step: group 0 has lr Infinity; it must be a finite number >= 0/);
    opt.dispose();
    opt.dispose();
    assert.throws(() => opt.step(), (e: unknown) => e instanceof DisposedError && /adamw.step: the optimizer was disposed/.test(e.message));
    await assert.rejects(opt.resetState(null), /the optimizer was disposed/);
  });
});

test('optimizer state survives the scope it was created in; the caller frees it with dispose()', async () => {
  const cpu = new CpuBackend();
  const p = param([1, 2], [2], { device: cpu });
  const opt = await scope(async () => new AdamW([p], { lossScaling: true }));
  const live = cpu.memory().live;
  assert.equal(live.optimizer, 16);
  assert.equal(live.temporary, 16);
  setGradValues(p, [1, 1]);
  opt.step();
  opt.dispose();
  assert.equal(cpu.memory().live.optimizer, 0);
  assert.equal(cpu.memory().live.temporary, 0);
  p.grad!.dispose();
  p.dispose();
  assert.equal((cpu as Backend).memory().allocated, 0);
});
