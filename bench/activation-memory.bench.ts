/**
 * Activation memory of one LLaMA training step (forward + backward) at a real size, with and
 * without activation checkpointing: the tracker's peak per category over the step (the peak is
 * reset once before each configuration: each row is one configuration's own step).
 * Run: `npm run bench:activations` (STEP_BENCH_PRESET=60m, STEP_BENCH_BATCH=4, STEP_BENCH_SEQ=256; WebGPU).
 */
import { backward, createWebGPUBackend, formatBytes, fromArray, scope, setDevice } from '../index.js';
import { presetConfig } from '../models/config-presets.js';
import { initLlama } from '../models/llama.js';

const preset = process.env.STEP_BENCH_PRESET ?? '60m';
const B = Number(process.env.STEP_BENCH_BATCH ?? 4), T = Number(process.env.STEP_BENCH_SEQ ?? 256);
const device = await createWebGPUBackend();
setDevice(device);
const config = presetConfig(preset);
const model = initLlama(config, { device, seed: 1 });
const ids = Array.from({ length: B * T }, (_, i) => (i * 7919) % config.vocab_size);
console.log(`device: ${device.description}; ${preset}, batch ${B} x ${T} tokens, fp32, one forward + backward`);
console.log('| checkpointing | peak activation | peak total | seconds |');
console.log('| --- | ---: | ---: | ---: |');
for (const checkpointing of [false, true]) {
  model.checkpointActivations = checkpointing;
  const window = device.tracker.openPeakWindow(); // one window per configuration: the tracker's peak is never reset
  const t0 = performance.now();
  await scope(async () => {
    const x = fromArray(ids, [B, T], { dtype: 'i32' });
    backward(model.loss(x, x));
    await device.sync();
  });
  const m = window.report();
  window.close();
  console.log(`| ${checkpointing ? 'per block' : 'off'} | ${formatBytes(m.peakByCategory.activation)} | ${formatBytes(m.peak.total)} | ${((performance.now() - t0) / 1000).toFixed(1)} |`);
  for (const p of model.parameters()) { p.grad?.dispose(); p.grad = null; }
}
model.dispose();
