import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Backend, MemoryReport } from '../../index.js';
import { CATEGORIES, CpuBackend, fromArray, ones, rand, scope, setDevice, UNIFORM_ARENA_BYTES, zeros } from '../../index.js';
import { freshWebGPU } from '../helpers/backends.js';

/** A program touching every category, dtype, reshape, dispose, retag, readback and resetPeak. */
async function program(b: Backend): Promise<MemoryReport[]> {
  setDevice(b);
  const snaps: MemoryReport[] = [];
  const p = rand([100, 33], { category: 'parameter', label: 'p' });
  const fz = ones([7, 5], { category: 'frozen', dtype: 'f16', label: 'frozen' });
  snaps.push(b.memory());
  await scope(async () => {
    const a = zeros([1000], { category: 'activation' });
    const view = a.reshape([10, 100]);
    const g = zeros([100, 33], { category: 'gradient' });
    const m = zeros([100, 33], { category: 'optimizer' });
    const v = zeros([100, 33], { category: 'optimizer' });
    fromArray([1, 2, 3], [3], { dtype: 'i32' });
    await view.toArray();
    snaps.push(b.memory());
    a.dispose();
    g.setCategory('temporary');
    await m.toArray();
    snaps.push(b.memory());
    v.dispose();
  });
  snaps.push(b.memory());
  b.tracker.resetPeak();
  zeros([5000], { category: 'activation' }).dispose();
  snaps.push(b.memory());
  p.dispose();
  fz.dispose();
  b.trim();
  snaps.push(b.memory());
  await b.sync(); // surfaces any error the device reported (e.g. a destroyed buffer still in use)
  return snaps;
}

/** Everything but the backend's own staging buffers (the WebGPU uniform arena and readbacks). */
function tensorView(r: MemoryReport, arena: number) {
  const noStaging = (x: Record<string, number>) => Object.fromEntries(CATEGORIES.filter((c) => c !== 'staging').map((c) => [c, x[c]]));
  return {
    allocated: r.allocated - r.live.staging,
    reserved: r.reserved - arena,
    live: noStaging(r.live),
    peakTensors: r.peakTensors,
    peakByCategory: noStaging(r.peakByCategory),
  };
}

test('memory: the same program reports the same bytes on cpu and webgpu (staging aside)', async (t) => {
  const gpu = await freshWebGPU(t);
  if (!gpu) return;
  const cpuSnaps = await program(new CpuBackend());
  const gpuSnaps = await program(gpu);
  assert.equal(cpuSnaps.length, gpuSnaps.length);
  cpuSnaps.forEach((c, i) => {
    assert.deepEqual(tensorView(gpuSnaps[i]!, UNIFORM_ARENA_BYTES), tensorView(c, 0), `snapshot ${i}`);
    assert.equal(c.live.staging, 0, 'the cpu backend has no staging buffers');
    assert.equal(gpuSnaps[i]!.live.staging, UNIFORM_ARENA_BYTES, 'webgpu: only the uniform arena between readbacks');
  });
  // Hand-checked numbers of the first snapshot: 100*33*4 parameter bytes, 35*2 frozen f16 bytes.
  assert.equal(cpuSnaps[0]!.live.parameter, 13200);
  assert.equal(cpuSnaps[0]!.live.frozen, 70);
  // Inside the scope: activation 4000, gradient 13200, optimizer 2*13200, temporary 12 (i32).
  assert.deepEqual(tensorView(cpuSnaps[1]!, 0).live, { parameter: 13200, frozen: 70, gradient: 13200, optimizer: 26400, activation: 4000, temporary: 12 });
  assert.equal(cpuSnaps[5]!.allocated, 0);
  assert.equal(cpuSnaps[5]!.reserved, 0, 'trim releases every cached buffer');
  assert.equal(cpuSnaps[4]!.peakTensors.total, 13200 + 70 + 20000, 'peak after resetPeak');
  gpu.destroy();
});
