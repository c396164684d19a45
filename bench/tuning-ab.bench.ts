/**
 * A/B of matmul layout choices over whole training steps, in one process: each round runs one step
 * per variant of `matmulTuning` (kernels/matmul-texture.ts), alternating the order, and reports each
 * variant's median step time and the median of its per-round speed ratios to the first variant (a
 * shared machine's load slows every variant of a round alike; the ratios are the figure to read).
 *
 *   node dist/bench/tuning-ab.bench.js
 *   VARIANTS='[{},{"copyPacks":false}]' ROUNDS=4 STEP_BENCH_PRESETS=60m:4x256 node dist/bench/tuning-ab.bench.js
 */
import { createWebGPUBackend } from '../index.js';
import { matmulTuning } from '../kernels/matmul-webgpu.js';
import { makeTrainStep, parseShape } from './train-step.js';

type Tuning = Partial<typeof matmulTuning>;
const variants = JSON.parse(process.env.VARIANTS ?? '[{},{"copyPacks":false,"storedTransposeMaxRows":0}]') as Tuning[];
const rounds = Number(process.env.ROUNDS ?? 4);
const defaults = { ...matmulTuning };
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
const gpu = await createWebGPUBackend();
console.log(`device: ${gpu.description}; variants of matmulTuning (defaults ${JSON.stringify(defaults)}), ${rounds} rounds`);
for (const shape of (process.env.STEP_BENCH_PRESETS ?? '60m:4x256').split(',').map(parseShape)) {
  const train = makeTrainStep(gpu, shape);
  const use = (v: Tuning) => Object.assign(matmulTuning, defaults, v);
  for (const v of variants) { use(v); await train.run(); } // pipelines, optimizer state
  const times: number[][] = variants.map(() => []);
  for (let r = 0; r < rounds; r++) {
    const order = variants.map((_, i) => i);
    if (r % 2) order.reverse();
    for (const i of order) {
      use(variants[i]!);
      const t0 = performance.now();
      await train.run();
      times[i]!.push(performance.now() - t0);
    }
  }
  use({});
  train.dispose();
  const tokens = shape.batch * shape.seq;
  variants.forEach((v, i) => {
    const ms = median(times[i]!), ratio = median(times[i]!.map((t, r) => times[0]![r]! / t));
    console.log(`${shape.preset} ${JSON.stringify(v)}: ${ms.toFixed(0)} ms/step (${((tokens * 1000) / ms).toFixed(0)} tok/s), ${ratio.toFixed(3)}x the first's speed`);
  });
}
gpu.destroy();
