/**
 * Greedy generation for many prompts at once: the same tokens as models/generate.ts with
 * temperature 0, one forward per step for a whole batch instead of one per prompt. Rows are
 * right-padded (causal attention keeps the pads from touching real positions) and only each row's
 * last position's logits are gathered and read back.
 */
import { fromArray } from '../../engine/creation.js';
import { StepError } from '../../engine/errors.js';
import { scope } from '../../engine/scope.js';
import { noGrad } from '../../autograd/grad-mode.js';
import { gatherRows } from '../../kernels/layout-rows.js';
import type { LlamaModel } from '../../models/llama.js';

export interface GreedyRequest {
  prompt: readonly number[];
  maxNewTokens: number;
}

export interface GreedyBatchOptions {
  /** Stop a row after it emits this token (it is included in the output). */
  eosTokenId: number;
  /** The model's context: prompt + maxNewTokens must fit in it. */
  maxContext: number;
  /** Bytes of logits one forward may hold, [rows x length x vocab] f32 (default 16 MiB; at least one row runs). */
  maxLogitBytes?: number;
}

/** The index of the largest logit, the first on ties (as models/generate.ts's greedy pick). */
function argmaxRow(row: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i]! > row[best]!) best = i;
  return best;
}

/** Greedy continuations of every request, in order; each stops at eosTokenId or its maxNewTokens. */
export async function greedyBatch(model: LlamaModel, requests: readonly GreedyRequest[], options: GreedyBatchOptions): Promise<number[][]> {
  requests.forEach((r, i) => {
    if (r.prompt.length === 0) throw new StepError(`greedyBatch: request ${i} has an empty prompt`);
    if (r.prompt.length + r.maxNewTokens > options.maxContext) {
      throw new StepError(`greedyBatch: request ${i} needs ${r.prompt.length} + ${r.maxNewTokens} positions, more than the model's context of ${options.maxContext}`);
    }
  });
  const vocab = model.config.vocab_size;
  const rows = Math.max(1, Math.floor((options.maxLogitBytes ?? 16 * 2 ** 20) / (options.maxContext * vocab * 4)));
  const order = requests.map((_, i) => i).sort((a, b) => requests[b]!.prompt.length - requests[a]!.prompt.length || a - b);
  const out: number[][] = requests.map(() => []);
  for (let start = 0; start < order.length; start += rows) {
    const batch = order.slice(start, start + rows);
    const tokens = batch.map((i) => [...requests[i]!.prompt]);
    let live = batch.map((_, b) => b).filter((b) => requests[batch[b]!]!.maxNewTokens > 0);
    while (live.length > 0) {
      const next = await nextTokens(model, live.map((b) => tokens[b]!));
      const still: number[] = [];
      live.forEach((b, j) => {
        const t = next[j]!;
        tokens[b]!.push(t);
        const produced = out[batch[b]!]!;
        produced.push(t);
        if (t !== options.eosTokenId && produced.length < requests[batch[b]!]!.maxNewTokens) still.push(b);
      });
      live = still;
    }
  }
  return out;
}

/** One forward over the right-padded rows; the argmax at each row's last position. */
async function nextTokens(model: LlamaModel, rows: readonly number[][]): Promise<number[]> {
  const vocab = model.config.vocab_size;
  const width = Math.max(...rows.map((r) => r.length));
  const ids = new Int32Array(rows.length * width);
  rows.forEach((r, b) => ids.set(r, b * width));
  const last = rows.map((r, b) => b * width + r.length - 1);
  const device = model.backend;
  const logits = await scope(async () => noGrad(async () => {
    const all = model.forward(fromArray(ids, [rows.length, width], { dtype: 'i32', device }));
    return gatherRows(all.reshape([rows.length * width, vocab]), fromArray(last, [last.length], { dtype: 'i32', device })).toArray();
  }));
  return rows.map((_, b) => argmaxRow(logits.subarray(b * vocab, (b + 1) * vocab)));
}
