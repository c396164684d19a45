/**
 * GaLore's projector refresh against ordinary training steps of the same model (issue 14's
 * target: a refresh costs at most 3 steps on llvmpipe). One process, one WebGPU device:
 *   step     = forward + backward + AdamW (the vanilla step), synced, median of REPS;
 *   refresh  = GaLore's optimizer step that recomputes every projector minus the same step
 *              without a refresh (same gradients; updateGap 2 alternates them), median of REPS.
 * Run: `npm run bench:galore` (STEP_BENCH_PRESET=small, STEP_BENCH_SHAPE=8x64, STEP_BENCH_RANK:
 * default hidden/4, STEP_BENCH_REPS=5). The machine is shared: the load average is printed.
 */
import { loadavg } from 'node:os';
import { backward, createWebGPUBackend, fromArray, scope, setDevice } from '../index.js';
import type { Tensor } from '../index.js';
import { AdamW } from '../engine/optim/adam.js';
import { GALORE_DEFAULTS, GaLoreAdamW } from '../engine/optim/galore.js';
import { presetConfig } from '../models/config-presets.js';
import { initLlama } from '../models/llama.js';

const preset = process.env.STEP_BENCH_PRESET ?? 'small';
const [BATCH, SEQ] = (process.env.STEP_BENCH_SHAPE ?? '8x64').split('x').map(Number) as [number, number];
const REPS = Number(process.env.STEP_BENCH_REPS ?? 5);
const config = presetConfig(preset);
const rank = Number(process.env.STEP_BENCH_RANK ?? Math.floor(config.hidden_size / 4));

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const device = await createWebGPUBackend();
setDevice(device);
const model = initLlama(config, { device, seed: 1 });
const ids = Array.from({ length: BATCH * SEQ }, (_, i) => (i * 7919) % config.vocab_size);
const targets = ids.map((t) => (t + 1) % config.vocab_size);
const lossAndGrads = () => scope(async () => {
  const x = fromArray(ids, [BATCH, SEQ], { dtype: 'i32' });
  const y = fromArray(targets, [BATCH, SEQ], { dtype: 'i32' });
  backward(model.loss(x, y));
});

// The ordinary step: forward, backward, AdamW.
const adam = new AdamW(model.parameters(), { lr: 1e-4, maxGradNorm: 1 });
const ordinary: number[] = [];
for (let k = 0; k <= REPS; k++) {
  const t0 = performance.now();
  await lossAndGrads();
  adam.step();
  adam.zeroGrad();
  await device.sync();
  if (k > 0) ordinary.push(performance.now() - t0); // the first builds the pipelines
}
adam.dispose();

// GaLore's optimizer step on fixed gradients: odd steps refresh (updateGap 2), even ones do not.
await lossAndGrads();
const projected = new Set<Tensor>(model.layers.flatMap((l) => l.linears.map((x) => x.weight)));
const params = model.parameters();
const galore = new GaLoreAdamW([
  { params: params.filter((p) => !projected.has(p)) },
  { params: params.filter((p) => projected.has(p)), rank, updateGap: 2 },
], { lr: 1e-4, maxGradNorm: 1 });
const withRefresh: number[] = [], without: number[] = [];
for (let k = 0; k <= REPS; k++) {
  for (const list of [withRefresh, without]) {
    const t0 = performance.now();
    galore.step();
    await device.sync();
    if (k > 0) list.push(performance.now() - t0);
  }
}
const step = median(ordinary), refresh = median(withRefresh) - median(without);
console.log(`device: ${device.description}`);
console.log(`${preset} (batch ${BATCH} x ${SEQ}, fp32), GaLore rank ${rank}, ${GALORE_DEFAULTS.iterations} subspace iterations, ` +
  `${model.layers.length * 7} projected matrices; medians of ${REPS}`);
console.log(`ordinary training step (forward, backward, AdamW): ${step.toFixed(1)} ms`);
console.log(`GaLore optimizer step: ${median(without).toFixed(1)} ms without a refresh, ${median(withRefresh).toFixed(1)} ms with one`);
console.log(`projector refresh: ${refresh.toFixed(1)} ms = ${(refresh / step).toFixed(2)} ordinary steps (target <= 3)`);
console.log(`load average (the machine is shared): ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
galore.dispose();
model.dispose();
