import { fromArray } from '../../engine/creation.js';
import { scope } from '../../engine/scope.js';
import { noGrad } from '../../autograd/grad-mode.js';
import { sequentialWindows } from '../../models/data/windows.js';
import type { LlamaModel } from '../../models/llama.js';

export interface EvalResult {
  loss: number;
  perplexity: number;
  tokens: number;
}

/**
 * Mean next-token loss over the first `maxBatches` batches of non-overlapping validation windows
 * (the same windows every time, so evaluations compare), weighted by tokens.
 */
export async function evaluate(model: LlamaModel, tokens: ArrayLike<number> & { length: number }, options: { batch: number; seqLen: number; maxBatches: number }): Promise<EvalResult> {
  const device = model.backend;
  let total = 0, count = 0, batches = 0;
  for (const w of sequentialWindows(tokens as Uint32Array, { batch: options.batch, seqLen: options.seqLen })) {
    if (batches++ >= options.maxBatches) break;
    const rows = w.inputs.length / options.seqLen;
    const loss = await scope(async () => noGrad(async () => {
      const ids = fromArray(w.inputs, [rows, options.seqLen], { dtype: 'i32', device });
      const targets = fromArray(w.targets, [rows, options.seqLen], { dtype: 'i32', device });
      return model.loss(ids, targets).item();
    }));
    total += loss * w.inputs.length;
    count += w.inputs.length;
  }
  const loss = count ? total / count : NaN;
  return { loss, perplexity: Math.exp(loss), tokens: count };
}
