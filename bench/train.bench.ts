/**
 * One LLaMA training step (forward, backward, AdamW with clipping) per preset: tokens/s on the
 * WebGPU backend beside the cpu reference backend in the same run (the ratio is the figure to
 * quote: the machine is shared), peak memory per category, and the dispatches and submits one
 * step costs. Run: `npm run bench:train` (STEP_BENCH_PRESETS=tiny,small; STEP_BENCH_CPU=0 skips cpu).
 */
import { Bench } from 'tinybench';
import type { Backend } from '../index.js';
import { CpuBackend, createWebGPUBackend, fromArray, scope, setDevice, backward, CATEGORIES, formatBytes } from '../index.js';
import { AdamW } from '../engine/optim/adam.js';
import { presetConfig } from '../models/config-presets.js';
import { initLlama } from '../models/llama.js';

const presets = (process.env.STEP_BENCH_PRESETS ?? 'tiny,small').split(',');
const withCpu = process.env.STEP_BENCH_CPU !== '0';
const BATCH = 8, SEQ = 64;

interface Measured { tokensPerSecond: number; dispatches: number; submits: number; peak: Record<string, number>; peakTotal: number }

async function measure(device: Backend, preset: string): Promise<Measured> {
  setDevice(device);
  const config = presetConfig(preset);
  const model = initLlama(config, { device, seed: 1 });
  const opt = new AdamW(model.parameters(), { lr: 1e-3, maxGradNorm: 1 });
  const ids = Array.from({ length: BATCH * SEQ }, (_, i) => (i * 7919) % config.vocab_size);
  const targets = ids.map((t) => (t + 1) % config.vocab_size);
  const step = () => scope(async () => {
    const x = fromArray(ids, [BATCH, SEQ], { dtype: 'i32' });
    const y = fromArray(targets, [BATCH, SEQ], { dtype: 'i32' });
    backward(model.loss(x, y));
    opt.step();
    opt.zeroGrad();
    await device.sync();
  });
  await step(); // builds the pipelines, allocates state
  await step();
  device.tracker.resetPeak();
  const before = { ...device.stats };
  await step();
  const dispatches = device.stats.dispatches - before.dispatches, submits = device.stats.submits - before.submits;
  const m = device.memory();
  const bench = new Bench({ time: device.name === 'cpu' ? 4000 : 6000, iterations: 3, warmupIterations: 0 });
  bench.add('step', step);
  await bench.run();
  const r = bench.tasks[0]!.result as unknown as { latency: { mean: number } };
  const mean = r.latency.mean / 1000;
  opt.dispose();
  model.dispose();
  return { tokensPerSecond: (BATCH * SEQ) / mean, dispatches, submits, peak: m.peakTensors.breakdown, peakTotal: m.peakTensors.total };
}

const gpu = await createWebGPUBackend();
console.log(`device: ${gpu.description}; batch ${BATCH} x ${SEQ} tokens per step`);
for (const preset of presets) {
  const g = await measure(gpu, preset);
  const c = withCpu ? await measure(new CpuBackend(), preset) : null;
  console.log(`\n${preset}: webgpu ${g.tokensPerSecond.toFixed(0)} tok/s` +
    (c ? `, cpu ${c.tokensPerSecond.toFixed(0)} tok/s (webgpu/cpu ${(g.tokensPerSecond / c.tokensPerSecond).toFixed(1)}x)` : '') +
    `; ${g.dispatches} dispatches and ${g.submits} submits per step`);
  console.log(`  peak tensor memory ${formatBytes(g.peakTotal)}: ` +
    CATEGORIES.filter((k) => g.peak[k]! > 0).map((k) => `${k} ${formatBytes(g.peak[k]!)}`).join(', '));
}
gpu.destroy();
