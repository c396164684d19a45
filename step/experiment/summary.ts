/** The experiment's verdict in numbers: validation loss and peak model-state bytes against vanilla. */
import { countParameters } from '../../models/config-params.js';
import type { RunSummary } from '../report/summarize.js';
import { sumState } from '../report/summarize.js';

export interface ExperimentRow {
  run: string;
  method: string;
  description: string;
  tokens: number;
  valLoss: number | null;
  valPerplexity: number | null;
  unigramPerplexity: number | null;
  /** valLoss / vanilla's valLoss - 1. */
  lossVsVanilla: number | null;
  /** Measured: the largest live parameter+frozen+gradient+optimizer bytes after any step. */
  peakModelState: number | null;
  /** The planner's peak (STEP) or vanilla bytes (vanilla, ReLoRA's warm start); null when not planned. */
  predictedPeak: number | null;
  /** Whether every stage's measured bytes equal the prediction, per category. */
  predictionExact: boolean | null;
  /** 1 - peakModelState / vanilla's. */
  memoryReduction: number | null;
  predictedReduction: number | null;
  trackerPeak: number | null;
  wallMinutes: number | null;
}

export interface ExperimentSummary {
  target: { layers: number; hidden: number; vocab: number; parameters: number; layerShare: number } | null;
  rows: ExperimentRow[];
}

export function summarizeExperiment(sums: RunSummary[]): ExperimentSummary {
  const vanilla = sums.find((s) => s.method === 'vanilla') ?? null;
  const t = sums.find((s) => s.target)?.target ?? null;
  const counts = t ? countParameters(t) : null;
  const rows = sums.map((s): ExperimentRow => {
    const predictedBars = s.bars.filter((b) => b.predicted);
    const predictedPeak = s.plan ? s.plan.peak : predictedBars.length ? Math.max(...predictedBars.map((b) => sumState(b.predicted!))) : null;
    const vanillaBytes = s.plan?.vanilla.total ?? (vanilla?.bars[0]?.predicted ? sumState(vanilla.bars[0].predicted) : null);
    return {
      run: s.name, method: s.method, description: s.description, tokens: s.tokens, valLoss: s.valLoss, valPerplexity: s.valPerplexity,
      unigramPerplexity: s.unigramPerplexity,
      lossVsVanilla: vanilla?.valLoss && s.valLoss !== null && s !== vanilla ? s.valLoss / vanilla.valLoss - 1 : null,
      peakModelState: s.peakModelState, predictedPeak,
      predictionExact: predictedBars.length ? predictedBars.every((b) => b.match === true) : null,
      memoryReduction: vanilla?.peakModelState && s.peakModelState !== null && s !== vanilla ? 1 - s.peakModelState / vanilla.peakModelState : null,
      predictedReduction: (s.method === 'step' || s.method === 'galore') && predictedPeak !== null && vanillaBytes ? 1 - predictedPeak / vanillaBytes : null,
      trackerPeak: s.peakTotal, wallMinutes: s.wallSeconds === null ? null : s.wallSeconds / 60,
    };
  });
  return {
    target: t && counts ? { layers: t.num_hidden_layers, hidden: t.hidden_size, vocab: t.vocab_size, parameters: counts.total, layerShare: counts.layers / counts.total } : null,
    rows,
  };
}

const f = (x: number | null, d: number) => (x === null ? 'n/a' : x.toFixed(d));
const pct = (x: number | null) => (x === null ? '' : `${(100 * x).toFixed(1)}%`);
const mib = (b: number | null) => (b === null ? 'n/a' : `${(b / 1048576).toFixed(2)} MiB`);

export function experimentMarkdown(s: ExperimentSummary, command: string): string {
  const t = s.target;
  const lines = [
    `# STEP experiment`,
    '',
    `Command: \`${command}\``,
    '',
    t ? `Target model: ${t.layers} layers, hidden ${t.hidden}, vocabulary ${t.vocab}; ${t.parameters.toLocaleString('en-US')} parameters, ${(100 * t.layerShare).toFixed(1)}% in decoder layers.` : 'Target model: unknown.',
    '',
    '| run | method | tokens | val loss | vs vanilla | val ppl | unigram ppl | peak model state | predicted | exact | reduction (measured) | reduction (planned) | tracker peak | wall |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...s.rows.map((r) => `| ${r.run} | ${r.description} | ${r.tokens.toLocaleString('en-US')} | ${f(r.valLoss, 4)} | ${r.lossVsVanilla === null ? '' : `${r.lossVsVanilla >= 0 ? '+' : ''}${(100 * r.lossVsVanilla).toFixed(2)}%`} | ` +
      `${f(r.valPerplexity, 1)} | ${f(r.unigramPerplexity, 1)} | ${mib(r.peakModelState)} | ${mib(r.predictedPeak)} | ${r.predictionExact === null ? '' : r.predictionExact ? 'yes' : 'NO'} | ` +
      `${pct(r.memoryReduction)} | ${pct(r.predictedReduction)} | ${mib(r.trackerPeak)} | ${f(r.wallMinutes, 1)} min |`),
    '',
    'Peak model state: parameter + frozen + gradient + optimizer bytes, measured by the memory tracker; the tracker peak adds activations and temporaries.',
  ];
  return lines.join('\n') + '\n';
}
