/**
 * Where a training step's time goes on WebGPU: one profiled step (after a warm-up step that
 * builds the pipelines) per preset, with the device time of every dispatch from timestamp
 * queries (WebGPUBackend.profile), summed per kernel family, beside the step's wall time and its
 * dispatches, submits and readbacks. The wall time not covered by kernels is the host's share:
 * recording, submits, waits.
 * Run: `npm run bench:profile` (STEP_BENCH_PRESETS=small,60m:4x256; same shape syntax as bench:train).
 */
import { createWebGPUBackend } from '../index.js';
import { PROFILE_DAWN_FLAGS } from '../engine/webgpu/profiler.js';
import { makeTrainStep, parseShape } from './train-step.js';

const shapes = (process.env.STEP_BENCH_PRESETS ?? 'small,60m:4x256').split(',').map(parseShape);
const gpu = await createWebGPUBackend({ dawnFlags: [...PROFILE_DAWN_FLAGS] });
console.log(`device: ${gpu.description}`);

/** 'matmul(subgroup,f32,32x32)' -> 'matmul'; 'scatterAddRows sort scan' -> 'scatterAddRows'. */
const family = (label: string) => label.split(/[ (]/)[0]!;

for (const shape of shapes) {
  const train = makeTrainStep(gpu, shape);
  await train.run(); // pipelines and optimizer state
  const { report } = await gpu.profile(() => train.run());
  train.dispose();
  const families = new Map<string, { dispatches: number; ms: number }>();
  for (const k of report.kernels) {
    const f = families.get(family(k.label)) ?? { dispatches: 0, ms: 0 };
    f.dispatches += k.dispatches;
    f.ms += k.ms;
    families.set(family(k.label), f);
  }
  console.log(`\n${shape.preset} (batch ${shape.batch} x ${shape.seq}, ${shape.precision}): wall ${report.wallMs.toFixed(1)} ms, kernels ${report.deviceMs.toFixed(1)} ms ` +
    `(${((100 * report.deviceMs) / report.wallMs).toFixed(0)}% of wall); ${report.dispatches} dispatches, ${report.submits} submits, ${report.readbacks} readbacks, ${report.uploads} uploads`);
  console.log(`  ${'kernel family'.padEnd(28)} ${'dispatches'.padStart(10)} ${'ms'.padStart(9)} ${'share'.padStart(6)}`);
  for (const [name, f] of [...families].sort((a, b) => b[1].ms - a[1].ms)) {
    console.log(`  ${name.padEnd(28)} ${String(f.dispatches).padStart(10)} ${f.ms.toFixed(2).padStart(9)} ${((100 * f.ms) / report.deviceMs).toFixed(1).padStart(5)}%`);
  }
}
gpu.destroy();
