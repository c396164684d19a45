/**
 * `step report`: one self-contained HTML page (inline CSS, inline SVG drawn by an inline script,
 * no external resources) comparing training runs: loss curves against tokens, model-state memory
 * per stage (predicted vs measured) and the whole-run peak as stacked bars, the STEP planner's
 * tables, final validation perplexity against the unigram baseline, and the runs' configs.
 */
import { dirname, resolve } from 'node:path';
import { mkdirSync } from 'node:fs';
import { writeFileAtomic } from '../../models/data/atomic-write.js';
import { StepError } from '../../engine/errors.js';
import { CHART_SCRIPT } from './chart-script.js';
import type { RunData } from './load-run.js';
import { STATE_KEYS, loadRun } from './load-run.js';
import type { RunSummary } from './summarize.js';
import { summarizeRun } from './summarize.js';
import { configTable, esc, memoryTable, peakTable, plannerTables, summaryTable } from './tables.js';

const RUN_COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#17becf', '#8c564b', '#e377c2'];
const CATEGORY_COLORS: Record<string, string> = {
  parameter: '#4c78a8', frozen: '#9ecae9', gradient: '#f58518', optimizer: '#54a24b',
  activation: '#e45756', temporary: '#b279a2', staging: '#bab0ac',
};
const PEAK_KEYS = ['parameter', 'frozen', 'gradient', 'optimizer', 'activation', 'temporary', 'staging'];

/** What the page's script draws from (embedded as JSON). */
function chartData(runs: RunData[], sums: RunSummary[]) {
  const tokensPerStep = (r: RunData) => r.options.batchSize * r.options.seqLen * r.options.gradAccum;
  return {
    colors: CATEGORY_COLORS,
    stateCategories: STATE_KEYS,
    peakCategories: PEAK_KEYS,
    runs: runs.map((r, i) => ({
      name: r.name, color: RUN_COLORS[i % RUN_COLORS.length],
      train: r.train.map((t) => [t.tokens, t.loss]),
      evals: r.evals.map((e) => [e.tokens, e.loss]),
      // a stage event at step s comes before step s + 1: the boundary sits after s steps' tokens
      stageTokens: sums[i]!.stageSteps.map((s) => s * tokensPerStep(r)),
    })),
    stateGroups: sums.flatMap((s, i) => s.bars.map((b) => ({
      run: s.name, stage: b.label, label: `${s.name} ${b.label}`, color: RUN_COLORS[i % RUN_COLORS.length],
      bars: [...(b.predicted ? [{ series: 'predicted', short: 'pred.', values: b.predicted }] : []), { series: 'measured', short: 'meas.', values: b.measured }],
    }))),
    // one group per run: its whole-run peak, all categories and model state alone
    peakGroups: sums.flatMap((s, i) => (s.peakBreakdown ? [{
      run: s.name, stage: 'whole run', label: `${s.name} whole run`, color: RUN_COLORS[i % RUN_COLORS.length],
      bars: [{ series: 'peak', short: 'all', values: s.peakBreakdown },
        ...(s.peakModelStateBreakdown ? [{ series: 'model-state peak', short: 'state', values: s.peakModelStateBreakdown }] : [])],
    }] : [])),
  };
}

const CSS = `
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px auto;max-width:1180px;padding:0 16px;color:#222}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}h3{font-size:15px;margin:18px 0 6px}
table{border-collapse:collapse;margin:6px 0 10px;font-size:12.5px}th,td{border:1px solid #ddd;padding:3px 7px;text-align:right;vertical-align:top}
th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}table.config td{text-align:left;max-width:260px;overflow-wrap:anywhere}
.summary td:nth-child(2){text-align:left}.swatch{display:inline-block;width:10px;height:10px;margin-right:6px;border-radius:2px}
.good{color:#1a7f37}.warn{color:#9a6700}.bad{color:#cf222e;font-weight:bold}.error{color:#cf222e;white-space:pre-wrap}
.chart{overflow-x:auto}svg{font-size:11px;background:#fff}.grid{stroke:#eee}.axis{stroke:#888}.tick{fill:#555}.small{font-size:9.5px}
.label{fill:#333;font-size:12px}.group{font-size:11.5px;font-weight:bold}
path.raw{fill:none;stroke-width:1;opacity:.22}path.smooth{fill:none;stroke-width:2}path.val{fill:none;stroke-width:1.5;stroke-dasharray:6 4}
.stage-line{stroke-dasharray:2 3;opacity:.6}rect.predicted{opacity:.45}
.key{margin-right:14px}.key i{display:inline-block;width:11px;height:11px;margin-right:4px;vertical-align:-1px}
.legend{margin:4px 0}.note{color:#555;font-size:12.5px}
`;

/** `extra`: HTML inserted after the final validation table (the experiment's spread over seeds). */
export function renderReport(runs: RunData[], sums: RunSummary[], generated = new Date(), extra = ''): string {
  const json = JSON.stringify(chartData(runs, sums)).replace(/</g, '\\u003c');
  const runLegend = runs.map((r, i) => `<span class="key"><i style="background:${RUN_COLORS[i % RUN_COLORS.length]}"></i>${esc(r.name)}</span>`).join('');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>STEP report: ${esc(runs.map((r) => r.name).join(', '))}</title><style>${CSS}</style></head>
<body data-runs="${esc(runs.map((r) => r.name).join(','))}">
<h1>STEP training report</h1>
<p class="note">${runs.length} run${runs.length === 1 ? '' : 's'}: ${runs.map((r) => `<code>${esc(r.dir)}</code>`).join(', ')}. Generated ${esc(generated.toISOString())} by <code>step report</code>.</p>
<p id="chart-status"></p>
<h2 id="summary">Final validation</h2>
${summaryTable(sums, runs.map((_, i) => RUN_COLORS[i % RUN_COLORS.length]!))}
<p class="note">Validation loss and perplexity are from the last evaluation; the unigram baseline is the perplexity of the validation tokens under the training tokens' unigram distribution (a model must beat it, ratio below 1, to have learned anything beyond token frequencies). Peak model state is the most parameter, frozen, gradient and optimizer bytes live at once over the whole run, stage transitions included (the memory tracker's peak, never reset during a run); the tracker peak also counts activations, temporaries and staging buffers. Logs written before the whole-run peak was logged fall back to the live bytes after logged steps.</p>
${extra}
<h2 id="loss">Loss against training tokens</h2>
<div class="legend">${runLegend} <span class="note">faint: train loss per step; solid: smoothed; dashed with dots: validation; dotted vertical: STEP stage boundaries</span></div>
<label class="note">smoothing <input id="smoothing" type="range" min="0" max="0.99" step="0.01" value="0.9"> <span id="smoothing-value">0.9</span></label>
<div id="loss-chart" class="chart"></div>
<h2>Model-state memory per stage: predicted vs measured</h2>
<div id="state-legend" class="legend"></div>
<div id="state-chart" class="chart"></div>
<p class="note">pred.: the planner's bytes (faded; for vanilla and ReLoRA's full-rank warm start, vanilla training of the target); meas.: the memory tracker's live bytes after the stage's first optimizer step.</p>
<h2>Whole-run peak (all categories; model state alone)</h2>
<div id="peak-legend" class="legend"></div>
<div id="peak-chart" class="chart"></div>
<h3 id="exact-bytes">Exact bytes</h3>
${memoryTable(sums)}
<h3 id="whole-run-peak">Whole-run peak by category</h3>
${peakTable(sums)}
<h2 id="planner">STEP planner</h2>
${plannerTables(sums)}
<h2 id="configs">Configurations (train-config.json)</h2>
${configTable(runs, sums)}
<script type="application/json" id="report-data">${json}</script>
<script>${CHART_SCRIPT}</script>
</body></html>
`;
}

/** Loads the runs, renders the page and writes it atomically to `out`; returns the summaries. */
export async function writeReport(runSpecs: readonly string[], out: string, cwd = process.cwd(), extra?: (sums: RunSummary[]) => string): Promise<{ path: string; summaries: RunSummary[] }> {
  if (runSpecs.length === 0) throw new StepError('step report: give at least one run (a folder runs/NAME or a NAME under ./runs)');
  const runs = runSpecs.map((s) => loadRun(s, cwd));
  const names = runs.map((r) => r.name);
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup) throw new StepError(`step report: two runs are named "${dup}"; the report tells runs apart by folder name`);
  const sums: RunSummary[] = [];
  for (const r of runs) sums.push(await summarizeRun(r));
  const path = resolve(cwd, out);
  mkdirSync(dirname(path), { recursive: true });
  await writeFileAtomic(path, renderReport(runs, sums, new Date(), extra?.(sums) ?? ''));
  return { path, summaries: sums };
}
