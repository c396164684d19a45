import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { CpuBackend, createWebGPUBackend, DeviceError, fromArray, initDevice, StepError, zeros } from '../../index.js';
import { freshWebGPU } from '../helpers/backends.js';

const run = (code: string, env: Record<string, string>) =>
  spawnSync(process.execPath, ['--input-type=module', '-e', code], { env: { ...process.env, ...env }, encoding: 'utf8' });

const INDEX = new URL('../../index.js', import.meta.url).href;

test('STEP_DEVICE=cpu selects the cpu backend; an unknown value is refused', async () => {
  const r = run(`import { initDevice } from '${INDEX}'; const d = await initDevice(); console.log(d.name);`, { STEP_DEVICE: 'cpu' });
  assert.equal(r.stdout.trim(), 'cpu');
  const bad = run(`import { initDevice } from '${INDEX}'; await initDevice();`, { STEP_DEVICE: 'tpu' });
  assert.notEqual(bad.status, 0);
  assert.match(bad.stderr, /unknown device "tpu".*valid: webgpu, cpu, auto/);
  await assert.rejects(initDevice('metal' as never), (e: unknown) => e instanceof StepError && /unknown device "metal"/.test(e.message));
});

test('auto takes WebGPU when an adapter exists, else falls back with one line on stderr', async (t) => {
  const r = run(`import { initDevice } from '${INDEX}'; const d = await initDevice('auto'); console.log(d.name); d.destroy();`, {});
  const gpu = await freshWebGPU(t);
  if (gpu) {
    assert.equal(r.stdout.trim(), 'webgpu');
    gpu.destroy();
  }
  // With Vulkan pointed at nothing, Dawn finds no adapter: auto falls back, webgpu fails clearly.
  const none = { VK_ICD_FILENAMES: '/nonexistent.json', VK_DRIVER_FILES: '/nonexistent.json' };
  const fb = run(`import { initDevice } from '${INDEX}'; const d = await initDevice('auto'); console.log(d.name);`, none);
  assert.equal(fb.stdout.trim(), 'cpu');
  assert.match(fb.stderr, /step: WebGPU unavailable \(.*\); using the cpu backend/);
  const strict = run(`import { initDevice } from '${INDEX}'; await initDevice('webgpu');`, none);
  assert.notEqual(strict.status, 0);
  assert.match(strict.stderr, /no WebGPU adapter found.*lavapipe|bookworm-backports/s);
});

test('webgpu backend: requested the adapter maximum limits and the wanted features', async (t) => {
  const b = await freshWebGPU(t);
  if (!b) return;
  for (const k of ['maxBufferSize', 'maxStorageBufferBindingSize', 'maxComputeWorkgroupStorageSize'] as const) {
    assert.equal(b.limits[k], b.adapter.limits[k], k);
  }
  for (const f of ['shader-f16', 'subgroups', 'timestamp-query']) {
    if (b.adapter.features.includes(f)) assert.ok(b.hasFeature(f), f);
  }
  b.destroy();
  assert.throws(() => zeros([2], { device: b }), (e: unknown) => e instanceof DeviceError && /destroyed/.test(e.message));
});

test('webgpu backend batches dispatches: many kernels, one submit, no readback until asked', async (t) => {
  const b = await freshWebGPU(t);
  if (!b) return;
  const s0 = { ...b.stats };
  const ts = Array.from({ length: 50 }, (_, i) => zeros([i + 1], { device: b }));
  assert.equal(b.stats.dispatches - s0.dispatches, 50);
  assert.equal(b.stats.submits - s0.submits, 0, 'nothing submitted before a readback or sync');
  assert.equal(b.stats.readbacks - s0.readbacks, 0);
  await ts[49]!.toArray();
  assert.equal(b.stats.submits - s0.submits, 1, 'one submit for the batch plus the readback copy');
  assert.equal(b.stats.pipelinesBuilt, 1, 'one fill pipeline serves every shape');
  for (const x of ts) x.dispose();
  b.destroy();
});

test('cpu backend holds every dtype', () => {
  const c = new CpuBackend();
  for (const d of ['f32', 'f16', 'i32', 'f64'] as const) c.checkDType(d, 'test');
});

test('step info prints the adapter and its limits (or why there is none)', async (t) => {
  const cli = new URL('../../step/cli.js', import.meta.url).pathname;
  const gpu = await freshWebGPU(t);
  if (!gpu) return;
  const desc = gpu.adapter.description;
  gpu.destroy();
  const out = execFileSync(process.execPath, [cli, 'info'], { encoding: 'utf8' });
  assert.match(out, /^device: webgpu$/m);
  assert.ok(out.includes(`adapter: ${desc}`));
  assert.match(out, /maxStorageBufferBindingSize\s+\d+/);
  assert.match(out, /features used: .*/);
  const json = JSON.parse(execFileSync(process.execPath, [cli, 'info', '--json'], { encoding: 'utf8' }));
  assert.equal(json.webgpu.description, desc);
  const bad = spawnSync(process.execPath, [cli, 'frobnicate'], { encoding: 'utf8' });
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /unknown command "frobnicate"/);
});

test('createWebGPUBackend with Dawn flags: the instance outlives garbage collection (its promises settle)', async (t) => {
  const probe = await freshWebGPU(t); // skips (or fails under STEP_REQUIRE_WEBGPU=1) without an adapter
  if (!probe) return;
  probe.destroy();
  const b = await createWebGPUBackend({ dawnFlags: ['disable-dawn-features=timestamp_quantization'] });
  try {
    setFlagsFromString('--expose-gc');
    (runInNewContext('gc') as () => void)(); // before the fix, this collected the flagged Dawn instance
    const x = fromArray([1, 2, 3], [3], { device: b });
    assert.deepEqual([...await x.toArray()], [1, 2, 3]);
    await b.sync();
  } finally {
    b.destroy();
  }
});
