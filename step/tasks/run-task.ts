/**
 * Runs one task against a scorer (log-likelihood) or a greedy generator and returns its metric rows:
 *   choice      acc, acc_norm (lm-evaluation-harness's multiple_choice)
 *   cloze       acc (the target is the greedy continuation) and perplexity = exp(-mean log-likelihood
 *               of the target), as the harness's LAMBADA task
 *   generation  exact_match and token_acc (whitespace-separated tokens of the answer, position by position)
 * A choice or cloze context starts with the end-of-text token, as every pre-training document does.
 */
import { renderPrompt, type TemplateName } from '../instruct/template.js';
import type { GreedyRequest } from './greedy-batch.js';
import type { LogLikelihoodRequest, LogLikelihoodScorer } from './loglikelihood.js';
import { choiceCorrect, generationScores, metricRow, type MetricRow } from './metrics.js';
import { DEFAULT_DELIMITER, type GenerationExample, type Task } from './task.js';

export interface TaskTokenizer {
  /** Plain text to ids (no special tokens). */
  encode(text: string): number[];
  decode(ids: readonly number[]): string;
  /** The end-of-text token: first token of every context, last token of every response. */
  eot: number;
}

/** Greedy continuations of prompts, in order: at most `maxNewTokens` ids each, stopping after the end-of-text token. */
export type GreedyGenerator = (requests: readonly GreedyRequest[]) => Promise<number[][]>;

export interface RunTaskOptions {
  tokenizer: TaskTokenizer;
  scorer: LogLikelihoodScorer;
  generator: GreedyGenerator;
  /** The model's context (max_position_embeddings): generation examples that do not fit are skipped and counted. */
  maxContext: number;
  template: TemplateName;
  /** Use the first `limit` examples that fit the context (tasks are already in a seeded random order). */
  limit?: number;
}

export interface TaskResult {
  rows: MetricRow[];
  /** What was skipped and why, for the user. */
  notes: string[];
}

/**
 * The context and continuation ids of one choice or target, as the harness builds them: the
 * continuation is delimiter + text, and whitespace that ends the context moves to the continuation.
 */
export function encodePair(tok: TaskTokenizer, context: string, continuation: string): LogLikelihoodRequest {
  const trimmed = context.replace(/\s+$/, '');
  const moved = context.slice(trimmed.length);
  return { context: [tok.eot, ...tok.encode(trimmed)], continuation: tok.encode(moved + continuation) };
}

/**
 * The prompt ids of an instruction example: the template's prompt text encoded alone, exactly as
 * `step sft` encodes it (no end-of-text before it; the response and its end-of-text follow).
 */
export function encodeInstructionPrompt(tok: TaskTokenizer, example: Pick<GenerationExample, 'instruction' | 'input'>, template: TemplateName): number[] {
  return tok.encode(renderPrompt(example, template));
}

export async function runTask(task: Task, options: RunTaskOptions): Promise<TaskResult> {
  const limit = options.limit ?? Infinity;
  const tok = options.tokenizer;
  if (task.kind === 'choice') {
    const fitting = fits(task.examples, limit, (e) => e.choices.map((c) => encodePair(tok, e.context, (e.delimiter ?? DEFAULT_DELIMITER) + c)), options.maxContext);
    const scores = await options.scorer(fitting.kept.flatMap((k) => k.requests));
    const acc: number[] = [], accNorm: number[] = [];
    let k = 0;
    for (const { example: e } of fitting.kept) {
      const lls = e.choices.map(() => scores[k++]!.logLikelihood);
      const r = choiceCorrect(lls, e.choices, e.gold);
      acc.push(r.acc);
      accNorm.push(r.accNorm);
    }
    return { rows: [metricRow(task.name, 'acc', acc), metricRow(task.name, 'acc_norm', accNorm)], notes: fitting.notes(task.name, 'a choice') };
  }
  if (task.kind === 'cloze') {
    const fitting = fits(task.examples, limit, (e) => [encodePair(tok, e.context, (e.delimiter ?? DEFAULT_DELIMITER) + e.target)], options.maxContext);
    const scores = await options.scorer(fitting.kept.flatMap((k) => k.requests));
    const lls = scores.map((s) => s.logLikelihood);
    const meanLl = lls.reduce((s, x) => s + x, 0) / Math.max(1, lls.length);
    return {
      rows: [
        metricRow(task.name, 'acc', scores.map((s) => (s.isGreedy ? 1 : 0))),
        { task: task.name, metric: 'perplexity', value: Math.exp(-meanLl), stderr: null, n: lls.length },
      ],
      notes: fitting.notes(task.name, 'the target'),
    };
  }
  return runGeneration(task.name, task.examples, options, limit);
}

/**
 * The examples whose every continuation fits the model's context (the context itself is cut on the
 * left when needed, as the harness does; a continuation cannot be): the others are skipped and counted.
 */
function fits<E>(examples: readonly E[], limit: number, requestsOf: (e: E) => LogLikelihoodRequest[], maxContext: number) {
  const kept: { example: E; requests: LogLikelihoodRequest[] }[] = [];
  let skipped = 0;
  for (const example of examples) {
    if (kept.length >= limit) break;
    const requests = requestsOf(example);
    if (requests.some((r) => r.continuation.length > maxContext)) skipped++;
    else kept.push({ example, requests });
  }
  return {
    kept,
    notes: (name: string, what: string) => (skipped > 0 ? [`${name}: skipped ${skipped} examples where ${what} alone is longer than the model's context of ${maxContext} tokens`] : []),
  };
}

async function runGeneration(name: string, all: readonly GenerationExample[], options: RunTaskOptions, limit: number): Promise<TaskResult> {
  const tok = options.tokenizer;
  const kept: { example: GenerationExample; request: GreedyRequest }[] = [];
  let tooLong = 0;
  for (const e of all) {
    if (kept.length >= limit) break;
    const prompt = encodeInstructionPrompt(tok, e, options.template);
    const answer = tok.encode(e.output).length + 1; // and the end-of-text token
    // the prompt and the whole gold answer must fit, or the model could not have produced it
    if (prompt.length + answer > options.maxContext) { tooLong++; continue; }
    // room for a few tokens more than the answer: a longer output is wrong, but scored as it is
    kept.push({ example: e, request: { prompt, maxNewTokens: Math.min(options.maxContext - prompt.length, answer + 8) } });
  }
  const outputs = await options.generator(kept.map((k) => k.request));
  const exact: number[] = [], tokenAcc: number[] = [];
  kept.forEach(({ example }, i) => {
    const out = outputs[i]!;
    const end = out.indexOf(tok.eot);
    const s = generationScores(tok.decode(end >= 0 ? out.slice(0, end) : out), example.output);
    exact.push(s.exactMatch);
    tokenAcc.push(s.itemAccuracy);
  });
  const notes = tooLong > 0 ? [`${name}: skipped ${tooLong} examples whose prompt and answer exceed the model's context of ${options.maxContext} tokens`] : [];
  return { rows: [metricRow(name, 'exact_match', exact), metricRow(name, 'token_acc', tokenAcc)], notes };
}
