import { fromArray } from '../engine/creation.js';
import { StepError } from '../engine/errors.js';
import { philox4x32, splitU64 } from '../engine/random.js';
import { scope } from '../engine/scope.js';
import { noGrad } from '../autograd/grad-mode.js';
import type { LlamaModel } from './llama.js';

export interface GenerateOptions {
  maxNewTokens: number;
  /** 0 = greedy (default 1). */
  temperature?: number;
  /** Keep only the k most likely tokens (0 = all). */
  topK?: number;
  /** Keep the smallest set of tokens whose probability reaches p (1 = all). */
  topP?: number;
  seed?: number;
  /** Stop after emitting this token. */
  eosTokenId?: number;
  /** Longest context fed to the model (older tokens are dropped); default: the whole sequence. */
  maxContext?: number;
  /** Called once, before generating, when the prompt alone is longer than maxContext: its first `dropped` tokens are not seen. */
  onPromptTruncated?: (dropped: number, maxContext: number) => void;
}

/** Picks the next token from logits with temperature, top-k and top-p, using uniform draw `u` in [0, 1). */
export function sampleToken(logits: ArrayLike<number>, options: Pick<GenerateOptions, 'temperature' | 'topK' | 'topP'>, u: number): number {
  const temperature = options.temperature ?? 1;
  const n = logits.length;
  if (temperature === 0) {
    let best = 0;
    for (let i = 1; i < n; i++) if (logits[i]! > logits[best]!) best = i;
    return best;
  }
  const order = [...Array(n).keys()].sort((a, b) => logits[b]! - logits[a]! || a - b);
  const k = options.topK && options.topK > 0 ? Math.min(options.topK, n) : n;
  const kept = order.slice(0, k);
  const maxLogit = logits[kept[0]!]!;
  let probs = kept.map((i) => Math.exp((logits[i]! - maxLogit) / temperature));
  let total = probs.reduce((s, p) => s + p, 0);
  probs = probs.map((p) => p / total);
  const topP = options.topP ?? 1;
  if (topP < 1) {
    let acc = 0, cut = probs.length;
    for (let j = 0; j < probs.length; j++) { acc += probs[j]!; if (acc >= topP) { cut = j + 1; break; } }
    probs = probs.slice(0, cut);
    total = probs.reduce((s, p) => s + p, 0);
    probs = probs.map((p) => p / total);
  }
  let acc = 0;
  for (let j = 0; j < probs.length; j++) { acc += probs[j]!; if (u < acc) return kept[j]!; }
  return kept[probs.length - 1]!;
}

/**
 * Autoregressive generation from `prompt` token ids: greedy, or sampled with temperature, top-k and
 * top-p from a seeded Philox stream (draw t uses block t of the seed), so a seed gives the same text.
 * Recomputes the whole context each step (no KV cache): fine for the small models trained here.
 */
export async function generate(model: LlamaModel, prompt: readonly number[], options: GenerateOptions): Promise<number[]> {
  if (prompt.length === 0) throw new StepError('generate: the prompt must have at least one token');
  if (!Number.isInteger(options.maxNewTokens) || options.maxNewTokens < 0) throw new StepError(`generate: maxNewTokens must be an integer >= 0, got ${options.maxNewTokens}`);
  if ((options.temperature ?? 1) < 0) throw new StepError('generate: temperature must be >= 0');
  const v = model.config.vocab_size;
  for (const t of prompt) if (!Number.isInteger(t) || t < 0 || t >= v) throw new StepError(`generate: prompt token ${t} is outside the vocabulary (0..${v - 1})`);
  if (options.maxContext && prompt.length > options.maxContext) options.onPromptTruncated?.(prompt.length - options.maxContext, options.maxContext);
  const [k0, k1] = splitU64(options.seed ?? 0);
  const tokens = [...prompt];
  const device = model.backend;
  for (let step = 0; step < options.maxNewTokens; step++) {
    const ctx = options.maxContext ? tokens.slice(-options.maxContext) : tokens;
    const last = await scope(async () => noGrad(async () => {
      // only the last position's logits: [1, V] even when the context's [T, V] would not fit one buffer
      return model.forward(fromArray(ctx, [1, ctx.length], { dtype: 'i32', device }), { lastPosition: true }).toArray();
    }));
    const u = (philox4x32(step, 0, 0, 0, k0, k1)[0] >>> 8) * 2 ** -24;
    const next = sampleToken(last, options, u);
    tokens.push(next);
    if (options.eosTokenId !== undefined && next === options.eosTokenId) break;
  }
  return tokens.slice(prompt.length);
}
