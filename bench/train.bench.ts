/**
 * One LLaMA training step (forward, backward, AdamW with clipping) per preset: tokens/s on the
 * WebGPU backend beside the cpu reference backend and PyTorch (float32 CPU, all cores, same config
 * and token ids) in the same run (the ratios are the figures to quote: the machine is shared), peak
 * memory per category, and the dispatches and submits one step costs.
 * Run: `npm run bench:train`. STEP_BENCH_PRESETS (default below) lists `preset[:BxT][:mixed]`
 * entries; besides the model presets, `h128` (h128 f344 L4 V2048) and `h256` (h256 f688 L8 V4096)
 * are the configs of the speed issue. The cpu backend runs the default 8 x 64 shapes only unless
 * STEP_BENCH_CPU=1 (0 skips it); STEP_BENCH_TORCH=0 skips PyTorch. A step whose warm-up takes more
 * than 20 s (350m and up) is timed once; faster ones by tinybench over >= 6 s.
 */
import { Bench } from 'tinybench';
import type { Backend } from '../index.js';
import { CpuBackend, createWebGPUBackend, CATEGORIES, formatBytes } from '../index.js';
import { torchAvailable, torchTrainStep } from './peers/torch.js';
import type { Shape } from './train-step.js';
import { batchOf, configOf, makeTrainStep, parseShape } from './train-step.js';

const shapes = (process.env.STEP_BENCH_PRESETS ?? 'tiny,small,h128:8x256,h256:8x256,60m:4x256,60m:8x256,350m:2x256:mixed').split(',').map(parseShape);
const cpuFlag = process.env.STEP_BENCH_CPU;

interface Measured { tokensPerSecond: number; dispatches: number; submits: number; peak: Record<string, number>; peakTotal: number }

async function measure(device: Backend, shape: Shape): Promise<Measured> {
  const { batch: BATCH, seq: SEQ } = shape;
  // this shape's whole life (model, optimizer, warm-up and timed steps) in one window: never a reset peak
  const window = device.tracker.openPeakWindow();
  const train = makeTrainStep(device, shape);
  const step = train.run;
  const t0 = performance.now();
  await step(); // builds the pipelines, allocates state
  const once = performance.now() - t0 > 20_000;
  if (!once) await step();
  const before = { ...device.stats };
  // the real sizes: one timed step (minutes on llvmpipe); the small ones: one counted step, then tinybench
  if (!once) await step();
  const bench = once
    ? new Bench({ time: 0, iterations: 1, warmupIterations: 0 })
    : new Bench({ time: device.name === 'cpu' ? 4000 : 6000, iterations: 3, warmupIterations: 0 });
  let counted: { dispatches: number; submits: number } | null = once ? null : { dispatches: device.stats.dispatches - before.dispatches, submits: device.stats.submits - before.submits };
  bench.add('step', step);
  await bench.run();
  counted ??= { dispatches: device.stats.dispatches - before.dispatches, submits: device.stats.submits - before.submits };
  const peak = window.report().peakTensors;
  window.close();
  const r = bench.tasks[0]!.result as unknown as { latency: { mean: number } };
  const mean = r.latency.mean / 1000;
  train.dispose();
  return { tokensPerSecond: (BATCH * SEQ) / mean, ...counted, peak: peak.breakdown, peakTotal: peak.total };
}

const gpu = await createWebGPUBackend();
const withTorch = torchAvailable();
console.log(`device: ${gpu.description}; PyTorch peer: ${withTorch ? 'yes' : 'no (not importable, or STEP_BENCH_TORCH=0)'}`);
for (const shape of shapes) {
  const withCpu = cpuFlag === '1' || (cpuFlag !== '0' && !shape.large);
  const g = await measure(gpu, shape);
  const c = withCpu ? await measure(new CpuBackend(), shape) : null;
  // PyTorch only for fp32 (its CPU half precision is not what a user would train with)
  const config = configOf(shape.preset), { ids, targets } = batchOf(config, shape);
  const t = withTorch && shape.precision === 'fp32' ? torchTrainStep(config, shape.batch, shape.seq, ids, targets, 6) : null;
  console.log(`\n${shape.preset} (batch ${shape.batch} x ${shape.seq}, ${shape.precision}): webgpu ${g.tokensPerSecond.toFixed(0)} tok/s` +
    (c ? `, cpu ${c.tokensPerSecond.toFixed(0)} tok/s (webgpu/cpu ${(g.tokensPerSecond / c.tokensPerSecond).toFixed(1)}x)` : '') +
    (t ? `, PyTorch ${t.torch} ${t.tokens_per_second.toFixed(0)} tok/s (${t.threads} threads, ${t.blas}; webgpu/PyTorch ${(g.tokensPerSecond / t.tokens_per_second).toFixed(2)}x)` : '') +
    `; ${g.dispatches} dispatches and ${g.submits} submits per step`);
  console.log(`  whole-shape peak tensor memory ${formatBytes(g.peakTotal)}: ` +
    CATEGORIES.filter((k) => g.peak[k]! > 0).map((k) => `${k} ${formatBytes(g.peak[k]!)}`).join(', '));
}
gpu.destroy();
