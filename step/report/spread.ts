/**
 * The experiment's section of the report: mean ± standard deviation of the final held-out loss
 * over the seeds for each kind of run and budget, as a table and as bars with error bars (inline
 * SVG drawn here, no script), with vanilla's mean as a reference line.
 */
import type { ExperimentGroup } from '../experiment/summary.js';
import { esc } from './tables.js';

const fixed = (n: number | null | undefined, d: number) => (n === null || n === undefined ? 'n/a' : n.toFixed(d));

function bars(groups: readonly ExperimentGroup[]): string {
  const shown = groups.filter((g) => g.valLoss);
  if (!shown.length) return '';
  const lo = Math.min(...shown.map((g) => g.valLoss!.mean - g.valLoss!.std)), hi = Math.max(...shown.map((g) => g.valLoss!.mean + g.valLoss!.std));
  const pad = (hi - lo) * 0.15 || 0.05, x0 = lo - pad, x1 = hi + pad;
  const W = 760, left = 330, right = 20, row = 22, top = 10, H = top + row * shown.length + 30;
  const x = (v: number) => left + ((v - x0) / (x1 - x0)) * (W - left - right);
  const vanilla = shown.find((g) => g.kind === 'vanilla');
  const parts = shown.map((g, i) => {
    const y = top + i * row + row / 2, m = g.valLoss!;
    const label = `${g.description}${g.budget === 'flops' ? ' (equal FLOPs)' : ''}`;
    return `<text x="${left - 8}" y="${y + 4}" text-anchor="end" class="tick">${esc(label.length > 52 ? label.slice(0, 50) + '…' : label)}</text>` +
      `<line x1="${x(x0)}" x2="${x(m.mean)}" y1="${y}" y2="${y}" stroke="#4c78a8" stroke-width="9" opacity=".35"/>` +
      `<line x1="${x(m.mean - m.std)}" x2="${x(m.mean + m.std)}" y1="${y}" y2="${y}" stroke="#222"/>` +
      `<line x1="${x(m.mean - m.std)}" x2="${x(m.mean - m.std)}" y1="${y - 5}" y2="${y + 5}" stroke="#222"/>` +
      `<line x1="${x(m.mean + m.std)}" x2="${x(m.mean + m.std)}" y1="${y - 5}" y2="${y + 5}" stroke="#222"/>` +
      `<circle cx="${x(m.mean)}" cy="${y}" r="3"><title>${esc(`${label}: ${m.mean.toFixed(4)} ± ${m.std.toFixed(4)} (${m.n} seeds)`)}</title></circle>`;
  });
  const ref = vanilla ? `<line x1="${x(vanilla.valLoss!.mean)}" x2="${x(vanilla.valLoss!.mean)}" y1="${top}" y2="${H - 26}" stroke="#d62728" stroke-dasharray="4 3"/>` : '';
  const axis = [x0, (x0 + x1) / 2, x1].map((v) => `<text x="${x(v)}" y="${H - 8}" text-anchor="middle" class="tick">${v.toFixed(3)}</text>`).join('');
  return `<div class="chart"><svg width="${W}" height="${H}" role="img" aria-label="validation loss, mean and standard deviation over seeds">${parts.join('')}${ref}${axis}</svg></div>`;
}

export function spreadSection(groups: readonly ExperimentGroup[], evalTokens: number): string {
  const rows = groups.map((g) => `<tr><td>${esc(g.description)}</td><td>${g.budget === 'flops' ? 'equal FLOPs' : 'equal tokens'}</td><td>${esc(g.seeds.join(', '))}</td>` +
    `<td>${g.tokens.toLocaleString('en-US')}</td><td>${fixed(g.valLoss?.mean, 4)} ± ${fixed(g.valLoss?.std, 4)}</td>` +
    `<td>${g.lossVsVanilla === null ? '' : `${g.lossVsVanilla >= 0 ? '+' : ''}${(100 * g.lossVsVanilla).toFixed(2)}%`}</td><td>${fixed(g.gapInStd, 1)}</td>` +
    `<td>${fixed(g.valPerplexity?.mean, 1)} ± ${fixed(g.valPerplexity?.std, 1)}</td>` +
    `<td>${g.memoryReduction === null ? '' : `${(100 * g.memoryReduction).toFixed(1)}%`}</td></tr>`).join('');
  return `<h2 id="spread">Experiment: final validation over seeds</h2>
<p class="note">Each run's final model (adapters merged) on the same ${evalTokens.toLocaleString('en-US')} held-out tokens; mean ± sample standard deviation over the seeds; the dashed line is vanilla's mean. Gap / std: the difference from vanilla's mean over the larger of the two standard deviations.</p>
${bars(groups)}
<table class="numbers"><thead><tr><th>run</th><th>budget</th><th>seeds</th><th>tokens</th><th>val loss</th><th>vs vanilla</th><th>gap / std</th><th>val perplexity</th><th>peak model state below vanilla</th></tr></thead><tbody>${rows}</tbody></table>`;
}
