/**
 * Whole-run peak memory of `step train` against the number of micro-batches per step
 * (--grad-accum), on the default tiny preset and corpus: accumulation must keep the peak flat.
 * The peak is the tracker's over the whole run (never reset): evaluation and checkpoints included.
 * Run: `npm run bench:accum` (STEP_BENCH_ACCUM=1,4,16,50; STEP_DEVICE=cpu for the cpu backend).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatBytes, getDevice } from '../index.js';
import { DEFAULT_TRAIN_OPTIONS } from '../step/train/options.js';
import { train } from '../step/train/trainer.js';

const counts = (process.env.STEP_BENCH_ACCUM ?? '1,2,4,8,16,50').split(',').map(Number);
const device = (process.env.STEP_DEVICE ?? 'webgpu') as 'webgpu' | 'cpu';
const STEPS = 2;

const rows: { accum: number; peak: number; activation: number; seconds: number }[] = [];
for (const gradAccum of counts) {
  const runsDir = mkdtempSync(join(tmpdir(), 'step-bench-accum-'));
  const t0 = performance.now();
  await train({ ...DEFAULT_TRAIN_OPTIONS, runsDir, name: 'accum', gradAccum, steps: STEPS, warmupSteps: 1, evalEvery: 0, evalBatches: 2, checkpointEvery: 0, device });
  const m = getDevice().memory();
  rows.push({ accum: gradAccum, peak: m.peak.total, activation: m.peakByCategory.activation, seconds: (performance.now() - t0) / 1000 });
  rmSync(runsDir, { recursive: true, force: true });
}
console.log(`\ndevice: ${getDevice().description}; tiny preset, batch ${DEFAULT_TRAIN_OPTIONS.batchSize} x ${DEFAULT_TRAIN_OPTIONS.seqLen} tokens per micro-batch, ${STEPS} steps + final evaluation and checkpoint`);
console.log('| --grad-accum | whole-run peak | peak activation | peak / peak at 1 |');
console.log('| ---: | ---: | ---: | ---: |');
for (const r of rows) console.log(`| ${r.accum} | ${formatBytes(r.peak)} | ${formatBytes(r.activation)} | ${(r.peak / rows[0]!.peak).toFixed(4)} |`);
