/**
 * A run frees the WebGPU device it opened: a process that trains run after run (step experiment,
 * experiment-tasks) kept every run's device before, with its pooled buffers and pipelines, until
 * lavapipe's memory maps reached vm.max_map_count and the process died without a word.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { getDevice } from '../../engine/device.js';
import { DeviceError } from '../../engine/errors.js';
import { fromArray } from '../../engine/creation.js';
import { train } from '../../step/train/trainer.js';
import { freshWebGPU } from '../helpers/backends.js';
import { runOptions } from './run-fixtures.js';

test('step train frees the WebGPU device it opened, after a finished run and after a failed start', async (t) => {
  const probe = await freshWebGPU(t); // skips, or fails under STEP_REQUIRE_WEBGPU=1, without an adapter
  if (!probe) return;
  probe.destroy();
  const o = runOptions({ steps: 2, warmupSteps: 1, checkpointEvery: 0, device: 'webgpu' });
  await train(o);
  const used = getDevice(); // the run's device stays the default, destroyed
  assert.equal(used.name, 'webgpu');
  assert.throws(() => fromArray([1, 2], [2], { device: used }), (e: unknown) => e instanceof DeviceError && /the WebGPU device is destroyed/.test(e.message), 'the run destroyed its device');
  // a start refused after the device was opened (the model state cannot fit --memory-limit) frees it too
  await assert.rejects(train({ ...o, name: 'r2' }, null, { memoryLimit: 1 }), /out of memory before allocating anything/);
  const refused = getDevice();
  assert.notEqual(refused, used);
  assert.throws(() => fromArray([1], [1], { device: refused }), /the WebGPU device is destroyed/);
});
