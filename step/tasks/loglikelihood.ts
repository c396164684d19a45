/**
 * Log-likelihood scoring, as lm-evaluation-harness's `loglikelihood` request: the log-probability of
 * a continuation's tokens given the context, and whether the continuation is the greedy one (every
 * continuation token is the argmax at its position). Rows of context + continuation run through the
 * model in batches (longest first, right-padded: the causal model never lets a padded position
 * change a real one), and only the continuation positions' logits are gathered and read back.
 */
import { fromArray } from '../../engine/creation.js';
import { StepError } from '../../engine/errors.js';
import { scope } from '../../engine/scope.js';
import { noGrad } from '../../autograd/grad-mode.js';
import { gatherRows } from '../../kernels/layout-rows.js';
import type { LlamaModel } from '../../models/llama.js';

export interface LogLikelihoodRequest {
  /** Context token ids (at least one: the caller starts it with the end-of-text token). */
  context: readonly number[];
  /** Continuation token ids (at least one). */
  continuation: readonly number[];
}

export interface LogLikelihood {
  /** Sum of the continuation tokens' log-probabilities (natural log). */
  logLikelihood: number;
  /** True when each continuation token is the most likely token at its position (the first on ties). */
  isGreedy: boolean;
}

/** Scores requests in order; a model, or a fake in tests. */
export type LogLikelihoodScorer = (requests: readonly LogLikelihoodRequest[]) => Promise<LogLikelihood[]>;

/** Log-probability of `target` under log-softmax(row) in f64, and whether it is the row's argmax. */
export function scoreRow(row: ArrayLike<number>, target: number): { logProb: number; isArgmax: boolean } {
  let max = -Infinity, best = 0;
  for (let i = 0; i < row.length; i++) if (row[i]! > max) { max = row[i]!; best = i; }
  let sum = 0;
  for (let i = 0; i < row.length; i++) sum += Math.exp(row[i]! - max);
  return { logProb: row[target]! - max - Math.log(sum), isArgmax: best === target };
}

export interface ModelScorerOptions {
  /** Longest input the model sees (its max_position_embeddings): a longer row keeps its last tokens, as the harness does. */
  maxContext: number;
  /** Bytes of logits one forward may hold, [rows x length x vocab] f32 (default 16 MiB; at least one row runs). */
  maxLogitBytes?: number;
}

interface Row { index: number; tokens: number[]; continuation: number }

/** The input row of a request: (context + continuation) truncated on the left to maxContext + 1 tokens, minus the last token. */
function requestRow(r: LogLikelihoodRequest, index: number, maxContext: number): Row {
  if (r.context.length === 0) throw new StepError(`loglikelihood: request ${index} has an empty context; start it with the end-of-text token`);
  if (r.continuation.length === 0) throw new StepError(`loglikelihood: request ${index} has an empty continuation; a choice or target must encode to at least one token`);
  if (r.continuation.length > maxContext) {
    throw new StepError(`loglikelihood: request ${index} has a continuation of ${r.continuation.length} tokens, more than the model's context of ${maxContext}; shorten the choice or target`);
  }
  const whole = [...r.context, ...r.continuation].slice(-(maxContext + 1));
  return { index, tokens: whole, continuation: r.continuation.length };
}

/** A scorer backed by `model`: one forward per batch of rows, logits gathered at the continuation positions only. */
export function modelScorer(model: LlamaModel, options: ModelScorerOptions): LogLikelihoodScorer {
  const vocab = model.config.vocab_size;
  const maxBytes = options.maxLogitBytes ?? 16 * 2 ** 20;
  return async (requests) => {
    const rows = requests.map((r, i) => requestRow(r, i, options.maxContext));
    rows.sort((a, b) => b.tokens.length - a.tokens.length || a.index - b.index);
    const out: LogLikelihood[] = new Array(requests.length);
    for (let start = 0; start < rows.length;) {
      const width = rows[start]!.tokens.length - 1; // the longest input of the batch
      const perRow = width * vocab * 4;
      const count = Math.max(1, Math.min(rows.length - start, Math.floor(maxBytes / perRow)));
      await scoreBatch(model, rows.slice(start, start + count), width, out);
      start += count;
    }
    return out;
  };
}

async function scoreBatch(model: LlamaModel, batch: readonly Row[], width: number, out: LogLikelihood[]): Promise<void> {
  const vocab = model.config.vocab_size;
  const ids = new Int32Array(batch.length * width); // padding: token 0, after every real token
  const picks: number[] = [], targets: number[] = [];
  batch.forEach((row, b) => {
    const input = row.tokens.length - 1;
    for (let t = 0; t < input; t++) ids[b * width + t] = row.tokens[t]!;
    for (let t = input - row.continuation; t < input; t++) {
      picks.push(b * width + t);
      targets.push(row.tokens[t + 1]!);
    }
  });
  const device = model.backend;
  const logits = await scope(async () => noGrad(async () => {
    const all = model.forward(fromArray(ids, [batch.length, width], { dtype: 'i32', device }));
    const picked = gatherRows(all.reshape([batch.length * width, vocab]), fromArray(picks, [picks.length], { dtype: 'i32', device }));
    return picked.toArray();
  }));
  let k = 0;
  for (const row of batch) {
    let logLikelihood = 0, isGreedy = true;
    for (let j = 0; j < row.continuation; j++, k++) {
      const s = scoreRow(logits.subarray(k * vocab, (k + 1) * vocab), targets[k]!);
      logLikelihood += s.logProb;
      isGreedy &&= s.isArgmax;
    }
    out[row.index] = { logLikelihood, isGreedy };
  }
}
