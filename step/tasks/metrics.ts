/**
 * The metrics of `step eval-tasks`, defined as lm-evaluation-harness defines them: a metric is the
 * mean of one value per example, and its standard error is the sample standard deviation over
 * sqrt(n) (the harness's `mean_stderr`), which for a 0/1 accuracy is sqrt(p(1-p)/(n-1)).
 */

/** One row of the results table. `stderr` is null where the harness gives none (perplexity). */
export interface MetricRow {
  task: string;
  metric: string;
  value: number;
  stderr: number | null;
  n: number;
}

/** The mean of `values` and its standard error sqrt(sum (x - mean)^2 / (n - 1)) / sqrt(n) (NaN when n < 2). */
export function meanWithStderr(values: readonly number[]): { mean: number; stderr: number } {
  const n = values.length;
  if (n === 0) return { mean: NaN, stderr: NaN };
  const mean = values.reduce((s, x) => s + x, 0) / n;
  if (n < 2) return { mean, stderr: NaN };
  const ss = values.reduce((s, x) => s + (x - mean) ** 2, 0);
  return { mean, stderr: Math.sqrt(ss / (n - 1)) / Math.sqrt(n) };
}

/** A metric row from per-example values. */
export function metricRow(task: string, metric: string, values: readonly number[]): MetricRow {
  const { mean, stderr } = meanWithStderr(values);
  return { task, metric, value: mean, stderr, n: values.length };
}

/** The index of the largest value (the first on ties, as numpy's argmax). */
export function argmax(values: readonly number[]): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i]! > values[best]!) best = i;
  return best;
}

/**
 * Multiple-choice accuracy of one example, as the harness's `multiple_choice` output type: `acc` picks
 * the choice with the largest summed log-likelihood; `acc_norm` divides each by the length of the
 * choice's text in characters (the harness's completion_len, without the delimiter) first.
 */
export function choiceCorrect(logLikelihoods: readonly number[], choices: readonly string[], gold: number): { acc: number; accNorm: number } {
  const normalised = logLikelihoods.map((ll, i) => ll / Math.max(1, choices[i]!.length));
  return { acc: argmax(logLikelihoods) === gold ? 1 : 0, accNorm: argmax(normalised) === gold ? 1 : 0 };
}

/** Space-separated items of a generated or gold answer (runs of whitespace count as one). */
export function answerItems(text: string): string[] {
  return text.trim().split(/\s+/).filter((s) => s.length > 0);
}

/**
 * Scores one generated answer against the gold one: exact match of the whitespace-normalised texts,
 * and per-item accuracy: items compared position by position, divided by the longer of the two
 * sequences (a missing or an extra item counts as wrong).
 */
export function generationScores(generated: string, gold: string): { exactMatch: number; itemAccuracy: number } {
  const g = answerItems(generated), t = answerItems(gold);
  const exactMatch = g.length === t.length && g.every((x, i) => x === t[i]) ? 1 : 0;
  const denom = Math.max(g.length, t.length);
  let right = 0;
  for (let i = 0; i < Math.min(g.length, t.length); i++) if (g[i] === t[i]) right++;
  return { exactMatch, itemAccuracy: denom === 0 ? 1 : right / denom };
}
