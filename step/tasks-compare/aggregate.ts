/**
 * The comparison in numbers. Per kind of run, per stage (zero-shot, after tuning), per task and
 * metric, over the seeds' models:
 * - `mean`: the mean over seeds of the models' values (e.g. accuracy);
 * - `stderr`: the per-model standard error, as step eval-tasks (lm-evaluation-harness) gives it
 *   for one model, sample sd / sqrt(n) over the n examples (sqrt(p(1-p)/(n-1)) for an accuracy),
 *   averaged over the seeds' models: how much a value moves with the finite test set;
 * - `std`: the sample standard deviation over seeds (n - 1) of the models' values: how much it
 *   moves with the initialisation and data order of pre-training (0 for one seed).
 * Every model is scored on the same examples, so the two are not independent; read a gap between
 * kinds against both.
 */
import type { MetricRow } from '../tasks/metrics.js';
import { spread } from '../experiment/summary.js';
import { EXPERIMENT_RUNS } from '../experiment/runs.js';

export type Stage = 'zero-shot' | 'tuned';
export const STAGES: readonly Stage[] = ['zero-shot', 'tuned'];
export const STAGE_LABEL: Record<Stage, string> = { 'zero-shot': 'zero-shot', tuned: 'after SFT' };

/** One model's results at one stage. */
export interface ModelResult {
  name: string;
  kind: string;
  seed: number;
  stage: Stage;
  rows: MetricRow[];
}

export interface MetricStats {
  task: string;
  metric: string;
  /** Mean over seeds of the models' values. */
  mean: number;
  /** Sample standard deviation over seeds (0 for one seed). */
  std: number;
  /** The per-model standard error averaged over the seeds' models; null where there is none (perplexity). */
  stderr: number | null;
  /** Examples each model was scored on (the smallest n of the seeds). */
  n: number;
  values: number[];
  stderrs: (number | null)[];
}

export interface GroupStats {
  kind: string;
  description: string;
  stage: Stage;
  seeds: number[];
  metrics: MetricStats[];
}

const key = (r: Pick<MetricRow, 'task' | 'metric'>) => `${r.task}\u0000${r.metric}`;

/** The (task, metric) pairs of the results, in order of first appearance. */
export function metricColumns(results: readonly ModelResult[]): { task: string; metric: string }[] {
  const seen = new Map<string, { task: string; metric: string }>();
  for (const r of results) for (const row of r.rows) if (!seen.has(key(row))) seen.set(key(row), { task: row.task, metric: row.metric });
  return [...seen.values()];
}

/** Groups by kind (in `kinds` order) and stage (zero-shot first) and takes mean, std and stderr per metric. */
export function aggregateResults(results: readonly ModelResult[], kinds: readonly string[]): GroupStats[] {
  const columns = metricColumns(results);
  const groups: GroupStats[] = [];
  for (const kind of kinds) {
    for (const stage of STAGES) {
      const members = results.filter((r) => r.kind === kind && r.stage === stage);
      if (members.length === 0) continue;
      const metrics = columns.flatMap((c): MetricStats[] => {
        const rows = members.flatMap((m) => m.rows.filter((row) => key(row) === key(c)));
        const s = spread(rows.map((r) => r.value));
        if (!s) return [];
        const errs = rows.map((r) => (r.stderr === null || Number.isNaN(r.stderr) ? null : r.stderr));
        const known = errs.filter((e): e is number => e !== null);
        return [{
          ...c, mean: s.mean, std: s.std, stderr: known.length === rows.length ? known.reduce((a, b) => a + b, 0) / known.length : null,
          n: Math.min(...rows.map((r) => r.n)), values: rows.map((r) => r.value), stderrs: errs,
        }];
      });
      groups.push({ kind, description: EXPERIMENT_RUNS.find((r) => r.kind === kind)?.description ?? kind, stage, seeds: members.map((m) => m.seed), metrics });
    }
  }
  return groups;
}

/** Accuracies with 3 decimals; perplexities with 1, or in exponent form once they are huge (an untrained model's target words). */
const num = (metric: string, x: number) => (metric !== 'perplexity' ? x.toFixed(3) : Math.abs(x) < 1e5 ? x.toFixed(1) : x.toExponential(2));
const cellOf = (g: GroupStats, c: { task: string; metric: string }) => g.metrics.find((m) => key(m) === key(c));

/** `mean ± stderr` (the per-model standard error), or the mean alone where there is none. */
export function formatStderrCell(m: MetricStats | undefined): string {
  if (!m) return '';
  return m.stderr === null ? num(m.metric, m.mean) : `${num(m.metric, m.mean)} ± ${num(m.metric, m.stderr)}`;
}

/** `mean ± std` over the seeds. */
export function formatSpreadCell(m: MetricStats | undefined): string {
  if (!m) return '';
  return `${num(m.metric, m.mean)} ± ${num(m.metric, m.std)}`;
}

/** Columns with a standard error (accuracies), the README table's. */
export function accuracyColumns(groups: readonly GroupStats[]): { task: string; metric: string }[] {
  const all = new Map<string, { task: string; metric: string; stderr: boolean }>();
  for (const g of groups) for (const m of g.metrics) all.set(key(m), { task: m.task, metric: m.metric, stderr: (all.get(key(m))?.stderr ?? false) || m.stderr !== null });
  return [...all.values()].filter((c) => c.stderr).map(({ task, metric }) => ({ task, metric }));
}

export function allColumns(groups: readonly GroupStats[]): { task: string; metric: string }[] {
  const all = new Map<string, { task: string; metric: string }>();
  for (const g of groups) for (const m of g.metrics) all.set(key(m), { task: m.task, metric: m.metric });
  return [...all.values()];
}

/** A Markdown table: rows kind x stage, one column per (task, metric). */
export function markdownTable(groups: readonly GroupStats[], columns: readonly { task: string; metric: string }[], cell: (m: MetricStats | undefined) => string): string {
  return [
    `| kind | stage | ${columns.map((c) => `${c.task} ${c.metric}`).join(' | ')} |`,
    `| --- | --- | ${columns.map(() => '---').join(' | ')} |`,
    ...groups.map((g) => `| ${g.kind} | ${STAGE_LABEL[g.stage]} | ${columns.map((c) => cell(cellOf(g, c))).join(' | ')} |`),
  ].join('\n');
}

/** The whole summary.md: the README table (acc ± per-model stderr), the spread over seeds, every model. */
export function compareMarkdown(groups: readonly GroupStats[], results: readonly ModelResult[], header: readonly string[]): string {
  const columns = allColumns(groups);
  return [
    '# Downstream tasks: zero-shot and after instruction tuning',
    '',
    ...header,
    '',
    '## Mean over seeds ± per-model standard error',
    '',
    markdownTable(groups, accuracyColumns(groups), formatStderrCell),
    '',
    'Each cell: the mean over the seeds\' models of the accuracy, ± the standard error of one model\'s accuracy on these examples (lm-evaluation-harness\'s, sqrt(p(1-p)/(n-1)); averaged over the seeds\' models). It measures the noise of the finite test set, not of training.',
    '',
    '## Mean ± standard deviation over seeds',
    '',
    markdownTable(groups, columns, formatSpreadCell),
    '',
    'Each cell: the mean over seeds ± the sample standard deviation over seeds (n - 1) of the models\' values: the noise of pre-training (initialisation and data order). Perplexity is the target word\'s (lambada-brown), lower is better.',
    '',
    '## Every model',
    '',
    `| model | stage | ${columns.map((c) => `${c.task} ${c.metric}`).join(' | ')} |`,
    `| --- | --- | ${columns.map(() => '---').join(' | ')} |`,
    ...results.map((r) => `| ${r.name} | ${STAGE_LABEL[r.stage]} | ${columns.map((c) => {
      const row = r.rows.find((x) => key(x) === key(c));
      return row ? `${num(row.metric, row.value)}${row.stderr === null || Number.isNaN(row.stderr) ? '' : ` ± ${num(row.metric, row.stderr)}`} (n ${row.n})` : '';
    }).join(' | ')} |`),
  ].join('\n') + '\n';
}
