import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CpuBackend, fromArray, mul, parameter, randn, scope, setDevice, StepError, zeros } from '../../index.js';

const cpu = new CpuBackend();
setDevice(cpu);

test('parameter() wants gradients, counts as parameter memory and outlives its scope', async () => {
  const p = await scope(async () => {
    const inner = parameter(randn([4, 3], { label: 'w' }));
    zeros([8]); // freed by the scope
    return inner;
  });
  assert.equal(p.requiresGrad, true);
  assert.equal(p.category, 'parameter');
  assert.equal(cpu.memory().live.parameter, 4 * 3 * 4);
  await scope(async () => {
    const q = parameter(zeros([2]));
    return 0 * q.size; // not returned: a parameter still survives the scope
  });
  assert.equal(cpu.memory().live.parameter, 4 * 3 * 4 + 2 * 4);
  p.dispose();
});

test('parameter(t, { trainable: false }) makes a frozen weight', () => {
  const f = parameter(fromArray([1, 2]), { trainable: false });
  assert.equal(f.requiresGrad, false);
  assert.equal(f.category, 'frozen');
  f.dispose();
});

test('parameter() refuses a computed tensor, an i32 tensor and a non-tensor, naming what to do', () => {
  const a = parameter(fromArray([1, 2]));
  const computed = mul(a, 2);
  assert.throws(() => parameter(computed), (e: unknown) => e instanceof StepError && /recorded gradients; a parameter must be a leaf/.test(e.message));
  const ids = fromArray(new Int32Array([1, 2]), [2], { dtype: 'i32' });
  assert.throws(() => parameter(ids), (e: unknown) => e instanceof StepError && /i32; only float tensors/.test(e.message));
  assert.throws(() => parameter([1, 2] as never), (e: unknown) => e instanceof StepError && /expected a Tensor, got object/.test(e.message));
  for (const t of [a, computed, ids]) t.dispose();
});
