/**
 * The experiment's verdict in numbers: per run, the final held-out loss and the peak model-state
 * bytes; per kind of run and budget, their mean and standard deviation over the seeds, against
 * vanilla's mean.
 */
import { countParameters } from '../../models/config-params.js';
import type { RunSummary } from '../report/summarize.js';
import { sumState } from '../report/summarize.js';
import type { FinalEval } from './final-eval.js';
import type { Budget, ExperimentRun } from './runs.js';
import { EXPERIMENT_RUNS } from './runs.js';

export interface ExperimentRow {
  run: string;
  kind: string;
  budget: Budget;
  seed: number;
  method: string;
  description: string;
  tokens: number;
  /** Training FLOPs (flops.ts). */
  flops: number;
  /** The final model on the experiment's held-out tokens. */
  valLoss: number | null;
  valPerplexity: number | null;
  evalTokens: number;
  unigramPerplexity: number | null;
  /** Measured: the whole run's peak of parameter+frozen+gradient+optimizer bytes. */
  peakModelState: number | null;
  /** The planner's peak (STEP) or vanilla bytes (vanilla, ReLoRA's warm start); null when not planned. */
  predictedPeak: number | null;
  /** Whether every stage's measured bytes equal the prediction, per category. */
  predictionExact: boolean | null;
  trackerPeak: number | null;
  wallMinutes: number | null;
}

/** Mean and sample standard deviation (n - 1; 0 for one value). */
export interface Spread { mean: number; std: number; n: number }

export function spread(xs: readonly number[]): Spread | null {
  if (!xs.length) return null;
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  const std = xs.length > 1 ? Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (xs.length - 1)) : 0;
  return { mean, std, n: xs.length };
}

export interface ExperimentGroup {
  kind: string;
  budget: Budget;
  description: string;
  seeds: number[];
  tokens: number;
  flops: number;
  valLoss: Spread | null;
  valPerplexity: Spread | null;
  /** mean val loss / vanilla's mean - 1. */
  lossVsVanilla: number | null;
  /** (mean - vanilla's mean) / the larger of the two standard deviations: the gap in units of seed noise. */
  gapInStd: number | null;
  peakModelState: number | null;
  /** 1 - peak / vanilla's peak. */
  memoryReduction: number | null;
  predictionExact: boolean | null;
  wallMinutes: number;
}

export interface ExperimentSummary {
  target: { layers: number; hidden: number; vocab: number; parameters: number; layerShare: number } | null;
  rows: ExperimentRow[];
  groups: ExperimentGroup[];
}

export function summarizeExperiment(runs: readonly ExperimentRun[], sums: readonly RunSummary[], evals: readonly FinalEval[], flops: readonly number[]): ExperimentSummary {
  const rows = runs.map((r, i): ExperimentRow => {
    const s = sums[i]!, ev = evals[i]!;
    const predictedBars = s.bars.filter((b) => b.predicted);
    return {
      run: r.name, kind: r.kind, budget: r.budget, seed: r.seed, method: s.method, description: s.description, tokens: s.tokens, flops: flops[i]!,
      valLoss: ev.loss, valPerplexity: ev.perplexity, evalTokens: ev.tokens, unigramPerplexity: s.unigramPerplexity,
      peakModelState: s.peakModelState,
      predictedPeak: s.plan ? s.plan.peak : predictedBars.length ? Math.max(...predictedBars.map((b) => sumState(b.predicted!))) : null,
      predictionExact: predictedBars.length ? predictedBars.every((b) => b.match === true) : null,
      trackerPeak: s.peakTotal, wallMinutes: s.wallSeconds === null ? null : s.wallSeconds / 60,
    };
  });
  const keys = [...new Set(rows.map((r) => `${r.kind}|${r.budget}`))];
  const groups = keys.map((key): ExperimentGroup => {
    const members = rows.filter((r) => `${r.kind}|${r.budget}` === key);
    const first = members[0]!;
    const losses = members.flatMap((m) => (m.valLoss === null ? [] : [m.valLoss]));
    return {
      kind: first.kind, budget: first.budget, description: EXPERIMENT_RUNS.find((x) => x.kind === first.kind)?.description ?? first.description,
      seeds: members.map((m) => m.seed), tokens: first.tokens, flops: first.flops,
      valLoss: spread(losses), valPerplexity: spread(members.flatMap((m) => (m.valPerplexity === null ? [] : [m.valPerplexity]))),
      lossVsVanilla: null, gapInStd: null,
      peakModelState: Math.max(...members.map((m) => m.peakModelState ?? 0)) || null, memoryReduction: null,
      predictionExact: members.every((m) => m.predictionExact !== false) ? (members.some((m) => m.predictionExact) ? true : null) : false,
      wallMinutes: members.reduce((a, m) => a + (m.wallMinutes ?? 0), 0),
    };
  });
  const vanilla = groups.find((g) => g.kind === 'vanilla');
  for (const g of groups) {
    if (!vanilla || g === vanilla || !g.valLoss || !vanilla.valLoss) continue;
    g.lossVsVanilla = g.valLoss.mean / vanilla.valLoss.mean - 1;
    const noise = Math.max(g.valLoss.std, vanilla.valLoss.std);
    g.gapInStd = noise > 0 ? (g.valLoss.mean - vanilla.valLoss.mean) / noise : null;
    if (g.peakModelState && vanilla.peakModelState) g.memoryReduction = 1 - g.peakModelState / vanilla.peakModelState;
  }
  const t = sums.find((s) => s.target)?.target ?? null;
  const counts = t ? countParameters(t) : null;
  return {
    target: t && counts ? { layers: t.num_hidden_layers, hidden: t.hidden_size, vocab: t.vocab_size, parameters: counts.total, layerShare: counts.layers / counts.total } : null,
    rows, groups,
  };
}

const f = (x: number | null | undefined, d: number) => (x === null || x === undefined ? 'n/a' : x.toFixed(d));
const pm = (s: Spread | null, d: number) => (s ? `${s.mean.toFixed(d)} ± ${s.std.toFixed(d)}` : 'n/a');
const pct = (x: number | null, sign = false) => (x === null ? '' : `${sign && x >= 0 ? '+' : ''}${(100 * x).toFixed(sign ? 2 : 1)}%`);
const mib = (b: number | null) => (b === null ? 'n/a' : `${(b / 1048576).toFixed(2)} MiB`);
const big = (n: number) => (n >= 1e12 ? `${(n / 1e12).toFixed(2)} T` : n >= 1e9 ? `${(n / 1e9).toFixed(2)} G` : `${(n / 1e6).toFixed(2)} M`);

export function experimentMarkdown(s: ExperimentSummary, command: string): string {
  const t = s.target;
  const evalTokens = Math.min(...s.rows.map((r) => r.evalTokens));
  return [
    '# STEP experiment',
    '',
    `Command: \`${command}\``,
    '',
    t ? `Target model: ${t.layers} layers, hidden ${t.hidden}, vocabulary ${t.vocab}; ${t.parameters.toLocaleString('en-US')} parameters, ${(100 * t.layerShare).toFixed(1)}% in decoder layers.` : 'Target model: unknown.',
    `Validation: each final model (adapters merged) on the same ${evalTokens.toLocaleString('en-US')} held-out tokens; mean ± standard deviation over the seeds.`,
    '',
    '| run | budget | seeds | tokens | training FLOPs | val loss | vs vanilla | gap / std | val ppl | peak model state | reduction | planner exact | wall (all seeds) |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...s.groups.map((g) => `| ${g.description} | ${g.budget === 'flops' ? 'equal FLOPs' : 'equal tokens'} | ${g.seeds.join(',')} | ${g.tokens.toLocaleString('en-US')} | ${big(g.flops)} | ` +
      `${pm(g.valLoss, 4)} | ${pct(g.lossVsVanilla, true)} | ${f(g.gapInStd, 1)} | ${pm(g.valPerplexity, 1)} | ${mib(g.peakModelState)} | ${pct(g.memoryReduction)} | ` +
      `${g.predictionExact === null ? '' : g.predictionExact ? 'yes' : 'NO'} | ${g.wallMinutes.toFixed(1)} min |`),
    '',
    'Gap / std: (mean - vanilla mean) / the larger standard deviation of the two. Peak model state: the most parameter + frozen + gradient + optimizer bytes live at once over the whole run, measured by the memory tracker (the same for every seed).',
    '',
    '## Every run',
    '',
    '| run | seed | tokens | val loss | val ppl | unigram ppl | peak model state | predicted | tracker peak | wall |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...s.rows.map((r) => `| ${r.run} | ${r.seed} | ${r.tokens.toLocaleString('en-US')} | ${f(r.valLoss, 4)} | ${f(r.valPerplexity, 1)} | ${f(r.unigramPerplexity, 1)} | ` +
      `${mib(r.peakModelState)} | ${mib(r.predictedPeak)} | ${mib(r.trackerPeak)} | ${f(r.wallMinutes, 1)} min |`),
  ].join('\n') + '\n';
}
