/**
 * `step sft`: supervised fine-tuning of a LLaMA checkpoint on Alpaca instruction records, with the
 * loss over the response tokens only. It runs on `step train`'s trainer (the same loop, atomic
 * checkpoints, exact resume, run lock, progress line, run log, memory events and NaN stop), with
 * the instruction batches as the trainer's batch source (see examples.ts), and at the end writes
 * the tuned model, adapters merged, to RUN/final (step/train/final-model.ts).
 */
import type { TrainResult } from '../train/trainer.js';
import { trainToEnd } from '../train/trainer.js';
import { join } from 'node:path';
import { FINAL_DIR } from '../train/final-model.js';
import type { SftOptions } from './options.js';
import type { SftExtra } from './start.js';
import { startSftRun } from './start.js';

export interface SftResult extends TrainResult {
  /** RUN/final, the tuned plain checkpoint; null when the run stopped early (--stop-after). */
  finalDir: string | null;
}

/** Tunes (or, with `resumeName`, continues tuning) and returns where the tuned model is. */
export async function sft(options: SftOptions, resumeName: string | null = null, extra: SftExtra = {}): Promise<SftResult> {
  const { run } = await startSftRun(options, resumeName, extra);
  // the trainer writes RUN/final (adapters merged) when the run reaches its last step
  const result = await trainToEnd(run);
  return { ...result, finalDir: result.stopped ? null : join(result.runDir, FINAL_DIR) };
}
