/**
 * `step sft`: supervised fine-tuning of a LLaMA checkpoint on Alpaca instruction records, with the
 * loss over the response tokens only. It runs on `step train`'s trainer (the same loop, atomic
 * checkpoints, exact resume, run lock, progress line, run log, memory events and NaN stop), with
 * the instruction batches as the trainer's batch source (see examples.ts), and at the end writes
 * the tuned model, adapters merged, to RUN/final (see model.ts).
 */
import type { TrainResult } from '../train/trainer.js';
import { trainToEnd } from '../train/trainer.js';
import { writeTunedModel } from './model.js';
import type { SftOptions } from './options.js';
import type { SftExtra } from './start.js';
import { startSftRun } from './start.js';

export interface SftResult extends TrainResult {
  /** RUN/final, the tuned plain checkpoint; null when the run stopped early (--stop-after). */
  finalDir: string | null;
}

/** Tunes (or, with `resumeName`, continues tuning) and returns where the tuned model is. */
export async function sft(options: SftOptions, resumeName: string | null = null, extra: SftExtra = {}): Promise<SftResult> {
  const { run, tokenizer } = await startSftRun(options, resumeName, extra);
  let finalDir: string | null = null;
  const result = await trainToEnd(run, async (r) => {
    finalDir = await writeTunedModel(r.runDir, r.model, r.config, tokenizer);
    r.log.write('final', { step: r.state.step, dir: finalDir, merged: r.state.lora !== null });
  });
  return { ...result, finalDir };
}
