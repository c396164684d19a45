/**
 * The comparison's section of the HTML report (step/report's page, with the compared runs' loss
 * curves and memory): the two tables of summary.md, rows kind x stage, one column per task and
 * metric: mean over seeds ± the per-model standard error, and mean ± the standard deviation over seeds.
 */
import { esc } from '../report/tables.js';
import type { GroupStats, MetricStats } from './aggregate.js';
import { accuracyColumns, allColumns, formatSpreadCell, formatStderrCell, STAGE_LABEL } from './aggregate.js';

function table(groups: readonly GroupStats[], columns: readonly { task: string; metric: string }[], cell: (m: MetricStats | undefined) => string): string {
  const head = `<tr><th>kind</th><th>stage</th>${columns.map((c) => `<th>${esc(c.task)}<br>${esc(c.metric)}</th>`).join('')}</tr>`;
  const rows = groups.map((g) => `<tr><td>${esc(g.kind)}</td><td>${STAGE_LABEL[g.stage]}</td>${columns.map((c) => {
    const m = g.metrics.find((x) => x.task === c.task && x.metric === c.metric);
    const title = m ? ` title="${esc(`seeds ${g.seeds.join(', ')}: ${m.values.map((v) => v.toFixed(4)).join(', ')}; n ${m.n} examples per model`)}"` : '';
    return `<td${title}>${esc(cell(m))}</td>`;
  }).join('')}</tr>`).join('');
  return `<table class="numbers"><thead>${head}</thead><tbody>${rows}</tbody></table>`;
}

export function tasksSection(groups: readonly GroupStats[], header: readonly string[]): string {
  const lines = header.filter((l) => l !== '').map((l) => `<p class="note">${esc(l.replace(/`/g, ''))}</p>`).join('\n');
  return `<h2 id="downstream">Downstream tasks: zero-shot and after instruction tuning</h2>
${lines}
<h3>Mean over seeds ± per-model standard error</h3>
${table(groups, accuracyColumns(groups), formatStderrCell)}
<p class="note">The mean over the seeds' models of each accuracy, ± the standard error of one model's accuracy on these examples (lm-evaluation-harness's sqrt(p(1-p)/(n-1)), averaged over the seeds' models): the noise of the finite test set. Hover a cell for every seed's value.</p>
<h3>Mean ± standard deviation over seeds</h3>
${table(groups, allColumns(groups), formatSpreadCell)}
<p class="note">The mean ± the sample standard deviation over seeds of the models' values: the noise of pre-training (initialisation and data order). Perplexity is lambada-brown's target word's, lower is better.</p>`;
}
