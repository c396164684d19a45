/**
 * Each run's final evaluation: its plain final model (runs/NAME/final) on the first N held-out
 * tokens of the validation split (the same windows for every run of the experiment), cached in
 * runs/NAME/final-eval.json so a rerun of the experiment does not evaluate again.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../../engine/atomic-write.js';
import { initDevice } from '../../engine/device.js';
import { StepError } from '../../engine/errors.js';
import { loadCheckpointModel } from '../commands/checkpoint-model.js';
import { prepareData } from '../train/data.js';
import { evaluate } from '../train/evaluate.js';
import { finalModelDir } from '../train/final-model.js';
import type { TrainOptions } from '../train/options.js';

export interface FinalEval {
  loss: number;
  perplexity: number;
  /** Tokens scored (fewer than asked when the validation split is shorter). */
  tokens: number;
  requestedTokens: number;
}

export async function finalEvaluation(runDir: string, o: TrainOptions, requestedTokens: number): Promise<FinalEval> {
  const cache = join(runDir, 'final-eval.json');
  if (existsSync(cache)) {
    const saved = JSON.parse(readFileSync(cache, 'utf8')) as FinalEval;
    if (saved.requestedTokens === requestedTokens) return saved;
  }
  const dir = finalModelDir(runDir);
  if (!dir) throw new StepError(`step experiment: ${runDir} has no final model of its latest step; finish the run (step train --resume) first`);
  const device = await initDevice(o.device);
  const { model, tokenizer } = await loadCheckpointModel(dir, device);
  try {
    const data = await prepareData(o.data, model.config.vocab_size, tokenizer ? join(dir, 'tokenizer.json') : null);
    const maxBatches = Math.ceil(requestedTokens / (o.batchSize * o.seqLen));
    const ev = await evaluate(model, data.validation, { batch: o.batchSize, seqLen: o.seqLen, maxBatches });
    const result: FinalEval = { loss: ev.loss, perplexity: ev.perplexity, tokens: ev.tokens, requestedTokens };
    await writeFileAtomic(cache, JSON.stringify(result, null, 2) + '\n');
    return result;
  } finally {
    model.dispose();
    if (device.name === 'webgpu') device.destroy(); // one device per evaluation: freed, or a long experiment runs out of memory maps
  }
}
