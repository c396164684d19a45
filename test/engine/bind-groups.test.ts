import { test } from 'node:test';
import assert from 'node:assert/strict';
import { add, createWebGPUBackend, DeviceError, fromArray, mul, scope, sum } from '../../index.js';
import { freshWebGPU } from '../helpers/backends.js';

test('webgpu: a repeated step over pooled buffers creates no new bind groups', async (t) => {
  const b = await freshWebGPU(t);
  if (!b) return;
  const x = fromArray([1, 2, 3, 4, 5, 6], [2, 3], { device: b });
  const step = () => scope(async () => sum(mul(add(x, 1), x)).item());
  assert.equal(await step(), 2 + 6 + 12 + 20 + 30 + 42);
  assert.equal(await step(), 112); // the pool's free lists settle: step 2 may meet buffers in another order
  const settled = b.bindGroupsCreated;
  for (let i = 0; i < 5; i++) assert.equal(await step(), 112);
  assert.equal(b.bindGroupsCreated, settled, 'steps 3..7 reuse the bind groups of step 2');
  b.destroy();
});

test('webgpu: too many dispatches without a wait give a DeviceError, not a crash; a wait resets the count', async (t) => {
  const probe = await freshWebGPU(t);
  if (!probe) return;
  probe.destroy();
  const b = await createWebGPUBackend({ maxBindGroupsPerWait: 40 });
  const kept = [];
  let x = fromArray([0, 0, 0, 0], [4], { device: b });
  for (let i = 0; i < 30; i++) { x = add(x, 1); kept.push(x); } // every op writes a new (kept) buffer
  await b.sync();
  for (let i = 0; i < 30; i++) { x = add(x, 1); kept.push(x); }
  assert.deepEqual([...await x.toArray()], [60, 60, 60, 60]);
  assert.throws(() => { for (let i = 0; i < 60; i++) { x = add(x, 1); kept.push(x); } },
    (e: unknown) => e instanceof DeviceError && /without waiting for the device.*await device\.sync\(\)/s.test(e.message));
  b.destroy();
});
