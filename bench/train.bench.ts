/**
 * One LLaMA training step (forward, backward, AdamW with clipping) per preset: tokens/s on the
 * WebGPU backend beside the cpu reference backend in the same run (the ratio is the figure to
 * quote: the machine is shared), peak memory per category, and the dispatches and submits one
 * step costs. Run: `npm run bench:train` (STEP_BENCH_PRESETS=tiny,small; STEP_BENCH_CPU=0 skips cpu).
 * A preset may carry its shape and precision: `STEP_BENCH_PRESETS=60m:8x256,350m:2x256:mixed` (the
 * real sizes: one timed step after one warm-up, WebGPU only unless STEP_BENCH_CPU=1).
 */
import { Bench } from 'tinybench';
import type { Backend } from '../index.js';
import { CpuBackend, createWebGPUBackend, fromArray, scope, setDevice, backward, CATEGORIES, formatBytes } from '../index.js';
import { AdamW } from '../engine/optim/adam.js';
import type { Precision } from '../engine/optim/optimizer.js';
import { presetConfig } from '../models/config-presets.js';
import { initLlama } from '../models/llama.js';

interface Shape { preset: string; batch: number; seq: number; precision: Precision; large: boolean }
/** `preset[:BxT][:mixed]`; the default shape is 8 x 64 in fp32. */
function parseShape(text: string): Shape {
  const [preset, ...rest] = text.split(':');
  const dims = rest.find((r) => /^\d+x\d+$/.test(r));
  const [batch, seq] = dims ? dims.split('x').map(Number) as [number, number] : [8, 64];
  return { preset: preset!, batch, seq, precision: rest.includes('mixed') ? 'mixed' : 'fp32', large: !!dims };
}
const shapes = (process.env.STEP_BENCH_PRESETS ?? 'tiny,small').split(',').map(parseShape);
const cpuFlag = process.env.STEP_BENCH_CPU;

interface Measured { tokensPerSecond: number; dispatches: number; submits: number; peak: Record<string, number>; peakTotal: number }

async function measure(device: Backend, shape: Shape): Promise<Measured> {
  setDevice(device);
  const { preset, batch: BATCH, seq: SEQ, precision } = shape;
  const config = presetConfig(preset);
  const model = initLlama(config, { device, seed: 1, dtype: precision === 'mixed' ? 'f16' : 'f32' });
  const opt = new AdamW(model.parameters(), { lr: 1e-3, maxGradNorm: 1, precision, lossScaling: precision === 'mixed' });
  const ids = Array.from({ length: BATCH * SEQ }, (_, i) => (i * 7919) % config.vocab_size);
  const targets = ids.map((t) => (t + 1) % config.vocab_size);
  const step = () => scope(async () => {
    const x = fromArray(ids, [BATCH, SEQ], { dtype: 'i32' });
    const y = fromArray(targets, [BATCH, SEQ], { dtype: 'i32' });
    const loss = model.loss(x, y);
    backward(opt.lossScaler ? opt.lossScaler.scaleLoss(loss) : loss);
    opt.step();
    opt.zeroGrad();
    await device.sync();
  });
  await step(); // builds the pipelines, allocates state
  if (!shape.large) await step();
  device.tracker.resetPeak(); // the benchmark's own measurement: steady steps only
  const before = { ...device.stats };
  // the real sizes: one timed step (minutes on llvmpipe); the small ones: one counted step, then tinybench
  if (!shape.large) await step();
  const bench = shape.large
    ? new Bench({ time: 0, iterations: 1, warmupIterations: 0 })
    : new Bench({ time: device.name === 'cpu' ? 4000 : 6000, iterations: 3, warmupIterations: 0 });
  let counted: { dispatches: number; submits: number } | null = shape.large ? null : { dispatches: device.stats.dispatches - before.dispatches, submits: device.stats.submits - before.submits };
  const m = shape.large ? null : device.memory();
  bench.add('step', step);
  await bench.run();
  counted ??= { dispatches: device.stats.dispatches - before.dispatches, submits: device.stats.submits - before.submits };
  const mem = m ?? device.memory();
  const r = bench.tasks[0]!.result as unknown as { latency: { mean: number } };
  const mean = r.latency.mean / 1000;
  opt.dispose();
  model.dispose();
  return { tokensPerSecond: (BATCH * SEQ) / mean, ...counted, peak: mem.peakTensors.breakdown, peakTotal: mem.peakTensors.total };
}

const gpu = await createWebGPUBackend();
console.log(`device: ${gpu.description}`);
for (const shape of shapes) {
  const withCpu = cpuFlag === '1' || (cpuFlag !== '0' && !shape.large);
  const g = await measure(gpu, shape);
  const c = withCpu ? await measure(new CpuBackend(), shape) : null;
  console.log(`\n${shape.preset} (batch ${shape.batch} x ${shape.seq}, ${shape.precision}): webgpu ${g.tokensPerSecond.toFixed(0)} tok/s` +
    (c ? `, cpu ${c.tokensPerSecond.toFixed(0)} tok/s (webgpu/cpu ${(g.tokensPerSecond / c.tokensPerSecond).toFixed(1)}x)` : '') +
    `; ${g.dispatches} dispatches and ${g.submits} submits per step`);
  console.log(`  peak tensor memory ${formatBytes(g.peakTotal)}: ` +
    CATEGORIES.filter((k) => g.peak[k]! > 0).map((k) => `${k} ${formatBytes(g.peak[k]!)}`).join(', '));
}
gpu.destroy();
