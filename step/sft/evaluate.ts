import { fromArray } from '../../engine/creation.js';
import { scope } from '../../engine/scope.js';
import { noGrad } from '../../autograd/grad-mode.js';
import type { LlamaModel } from '../../models/llama.js';
import type { InstructionExample } from './examples.js';
import { padBatch } from './examples.js';

/**
 * The response-only loss over held-out examples (in file order, the same every time), in batches
 * of `batch`, at most `maxBatches` of them; the mean is over response tokens, so every response
 * token weighs the same whichever batch it falls in.
 */
export async function evaluateResponses(model: LlamaModel, examples: readonly InstructionExample[], options: { batch: number; maxBatches: number; padId: number }): Promise<{ loss: number; perplexity: number; tokens: number }> {
  const device = model.backend;
  let total = 0, count = 0;
  for (let b = 0; b < options.maxBatches && b * options.batch < examples.length; b++) {
    const w = padBatch(examples.slice(b * options.batch, (b + 1) * options.batch), options.padId);
    const loss = await scope(async () => noGrad(async () => {
      const ids = fromArray(w.inputs, [w.rows, w.cols], { dtype: 'i32', device });
      const targets = fromArray(w.targets, [w.rows, w.cols], { dtype: 'i32', device });
      return model.loss(ids, targets).item();
    }));
    total += loss * w.responseTokens;
    count += w.responseTokens;
  }
  const loss = count ? total / count : NaN;
  return { loss, perplexity: Math.exp(loss), tokens: count };
}
