/** The report's HTML tables: summary, memory per stage, STEP planner, configs. All text is escaped. */
import { countParameters } from '../../models/config-params.js';
import type { RunData } from './load-run.js';
import { STATE_KEYS } from './load-run.js';
import type { RunSummary } from './summarize.js';
import { sumState } from './summarize.js';

export const esc = (s: unknown): string =>
  String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');

const int = (n: number): string => n.toLocaleString('en-US');
export const mib = (b: number): string => `${(b / 1048576).toFixed(2)} MiB`;
const fixed = (n: number | null, d: number): string => (n === null ? 'n/a' : n.toFixed(d));
const pct = (x: number): string => `${(100 * x).toFixed(1)}%`;

function table(head: string[], rows: string[][], cls = ''): string {
  return `<table${cls ? ` class="${cls}"` : ''}><thead><tr>${head.map((h) => `<th>${h}</th>`).join('')}</tr></thead>` +
    `<tbody>${rows.map((r) => `<tr>${r.map((c) => `<td>${c}</td>`).join('')}</tr>`).join('')}</tbody></table>`;
}

const swatch = (color: string) => `<i class="swatch" style="background:${esc(color)}"></i>`;

/** Final validation numbers, against the unigram baseline and the first vanilla run. */
export function summaryTable(sums: RunSummary[], colors: string[]): string {
  // Compare only with a vanilla run of the same target model (same layers, widths, vocabulary).
  const same = (a: RunSummary, b: RunSummary) => a.target !== null && JSON.stringify(a.target) === JSON.stringify(b.target);
  const rows = sums.map((s, i) => {
    const vanilla = sums.find((v) => v.method === 'vanilla' && same(v, s)) ?? null;
    const vsUnigram = s.valPerplexity !== null && s.unigramPerplexity ? s.valPerplexity / s.unigramPerplexity : null;
    const dLoss = vanilla && vanilla !== s && s.valLoss !== null && vanilla.valLoss !== null ? `${((s.valLoss / vanilla.valLoss - 1) * 100).toFixed(2)}%` : '';
    const dMem = vanilla && vanilla !== s && s.peakModelState !== null && vanilla.peakModelState ? pct(1 - s.peakModelState / vanilla.peakModelState) : '';
    return [
      `${swatch(colors[i]!)}<b>${esc(s.name)}</b>${s.finished ? '' : ' <span class="warn">(unfinished)</span>'}`, esc(s.description),
      `${int(s.finalStep)} / ${int(s.tokens)}`, fixed(s.valLoss, 4), dLoss, fixed(s.valPerplexity, 1), fixed(s.unigramPerplexity, 1),
      vsUnigram === null ? 'n/a' : `<span class="${vsUnigram < 1 ? 'good' : 'warn'}">${vsUnigram.toFixed(3)}</span>`,
      s.peakModelState === null ? 'n/a' : `${mib(s.peakModelState)} <small>(${int(s.peakModelState)} B)</small>`, dMem,
      s.peakTotal === null ? 'n/a' : mib(s.peakTotal),
      s.meanTokensPerSecond === null ? 'n/a' : int(Math.round(s.meanTokensPerSecond)),
      s.wallSeconds === null ? 'n/a' : `${(s.wallSeconds / 60).toFixed(1)} min`,
    ];
  });
  return table(['run', 'method', 'steps / tokens', 'final val loss', 'vs vanilla', 'val perplexity', 'unigram perplexity', 'ppl / unigram',
    'whole-run peak model state (measured)', 'reduction vs vanilla', 'whole-run tracker peak (all categories)', 'tokens/s', 'wall'], rows, 'summary');
}

/** Exact bytes behind the memory charts, with the planner's prediction and whether it matched. */
export function memoryTable(sums: RunSummary[]): string {
  const rows = sums.flatMap((s) => s.bars.map((b) => {
    const measured = sumState(b.measured);
    return [esc(s.name), esc(b.label), ...STATE_KEYS.map((k) => int(b.measured[k])), int(measured),
      b.predicted ? int(sumState(b.predicted)) : 'n/a',
      b.match === null ? '' : b.match ? '<span class="good">exact</span>' : '<span class="bad">differs</span>',
      b.peakTotal === null ? 'n/a' : int(b.peakTotal), esc(b.source)];
  }));
  return table(['run', 'stage', ...STATE_KEYS.map((k) => `${k} (B)`), 'measured total', 'predicted total', 'prediction', 'run peak so far', 'measured from'], rows, 'numbers');
}

const ALL_CATEGORIES = [...STATE_KEYS, 'activation', 'temporary', 'staging'] as const;

/** The whole-run peak of each run: model state (with the planner's peak for STEP) and all categories, by category. */
export function peakTable(sums: RunSummary[]): string {
  const rows = sums.flatMap((s) => {
    const out: string[][] = [];
    const planned = s.plan ? `${int(s.plan.peak)} (${s.plan.peakAt === 'transition' ? `transition into stage ${s.plan.peakStage}` : `stage ${s.plan.peakStage}`})` : '';
    const exact = s.plan && s.peakModelState !== null ? (s.peakModelState === s.plan.peak ? ' <span class="good">exact</span>' : ' <span class="bad">differs</span>') : '';
    if (s.peakModelStateBreakdown && s.peakModelState !== null) {
      const b = s.peakModelStateBreakdown as Record<string, number>;
      out.push([esc(s.name), `model state (${esc(s.peakModelStateSource ?? '')})`, ...ALL_CATEGORIES.map((k) => int(b[k] ?? 0)), `<b>${int(s.peakModelState)}</b>`, planned + exact]);
    }
    if (s.peakBreakdown && s.peakTotal !== null) {
      out.push([esc(s.name), 'all categories', ...ALL_CATEGORIES.map((k) => int(s.peakBreakdown![k] ?? 0)), `<b>${int(s.peakTotal)}</b>`, '']);
    }
    return out;
  });
  if (!rows.length) return '<p>No whole-run peak logged by these runs.</p>';
  return table(['run', 'peak of', ...ALL_CATEGORIES.map((k) => `${k} (B)`), 'total (B)', 'planned model-state peak (B)'], rows, 'numbers');
}

/** The planner's table for each STEP run: the split, bytes per stage and category, reduction vs vanilla. */
export function plannerTables(sums: RunSummary[]): string {
  const parts: string[] = [];
  for (const s of sums) {
    if (s.method !== 'step') continue;
    if (!s.plan) {
      parts.push(`<h3>${esc(s.name)}</h3><p class="warn">planner table unavailable: ${esc(s.targetError ?? 'unknown reason')}</p>`);
      continue;
    }
    const p = s.plan;
    const measuredOf = (stage: number) => s.bars.find((b) => b.label === `stage ${stage}`);
    const rows = p.stages.map((st) => {
      const m = measuredOf(st.stage);
      const mt = m ? sumState(m.measured) : null;
      return [String(st.stage), String(st.layers), String(st.newLayers), String(st.frozenLayers), ...STATE_KEYS.map((k) => int(st.bytes[k])),
        `<b>${int(st.bytes.total)}</b>`, pct(1 - st.bytes.total / p.vanilla.total), mt === null ? 'n/a' : int(mt),
        mt === null ? '' : mt === st.bytes.total ? '<span class="good">exact</span>' : `<span class="bad">${mt > st.bytes.total ? '+' : ''}${int(mt - st.bytes.total)}</span>`];
    });
    for (const t of p.transitions) {
      rows.push([`${t.intoStage - 1} &rarr; ${t.intoStage}`, '', '', '', ...STATE_KEYS.map((k) => int(t.bytes[k])), int(t.bytes.total), pct(1 - t.bytes.total / p.vanilla.total), '', esc(t.moment)]);
    }
    rows.push(['vanilla', String(p.layers), String(p.layers), '0', ...STATE_KEYS.map((k) => int(p.vanilla[k])), `<b>${int(p.vanilla.total)}</b>`, '', '', '']);
    const pp = s.paperPlan;
    parts.push(`<h3>${esc(s.name)}: split ${p.split.join(' + ')} of ${p.layers} layers, LoRA rank ${p.rank}, ${esc(p.precision)}</h3>` +
      table(['stage', 'layers', 'new', 'frozen', ...STATE_KEYS.map((k) => `${k} (B)`), 'predicted total (B)', 'below vanilla', 'measured (B)', 'measured vs predicted'], rows, 'numbers') +
      `<p>Planned whole-run peak (stages and the transitions between them, rows i &rarr; j: weights only, the old optimizer state and gradients are freed before growth): ` +
      `${p.peakAt === 'transition' ? `the transition into stage ${p.peakStage}` : `stage ${p.peakStage}`}, ${int(p.peak)} B (${mib(p.peak)}), <b>${pct(p.reduction)}</b> below vanilla training of the target (${int(p.vanilla.total)} B); ` +
      `the split is ${p.optimal ? 'optimal' : `not optimal (the planner's is ${p.optimalSplit.join('+')})`}. ` +
      `Engine mode: every model-state tensor, embeddings and head included (P = ${int(p.layerParams)} parameters per layer, E = ${int(p.loraParams)} LoRA parameters per layer).` +
      (pp ? ` The paper's programme (layers only, mixed precision) gives ${pct(pp.reduction)} for this split.` : '') +
      ` Vocabulary from ${esc(s.vocabSource)}.</p>`);
  }
  return parts.length ? parts.join('\n') : '<p>No STEP run among these runs.</p>';
}

/** train-config.json of each run side by side; rows whose values differ are marked. */
export function configTable(runs: RunData[], sums: RunSummary[]): string {
  const keys = [...new Set(runs.flatMap((r) => Object.keys(r.options)))];
  const show = (v: unknown) => (v === undefined ? '' : typeof v === 'object' && v !== null ? JSON.stringify(v) : String(v));
  const rows = keys.map((k) => {
    const vals = runs.map((r) => show((r.options as unknown as Record<string, unknown>)[k]));
    const differs = new Set(vals).size > 1;
    return [`${differs ? '<b>' : ''}${esc(k)}${differs ? '</b>' : ''}`, ...vals.map((v) => (differs ? `<b>${esc(v)}</b>` : esc(v)))];
  });
  const target = (s: RunSummary) => {
    if (!s.target) return `n/a (${esc(s.targetError ?? '')})`;
    const c = s.target, n = countParameters(c);
    const layerShare = n.layers / n.total;
    return `L=${c.num_hidden_layers} h=${c.hidden_size} ffn=${c.intermediate_size} heads=${c.num_attention_heads} vocab=${c.vocab_size}; ${int(n.total)} parameters, ${pct(layerShare)} in layers`;
  };
  rows.push(['<b>target model</b>', ...sums.map(target)]);
  rows.push(['device', ...runs.map((r) => esc(show(r.start?.device ?? 'n/a')))]);
  rows.push(['data', ...runs.map((r) => esc(show(r.start?.data ?? 'n/a')))]);
  rows.push(['plan', ...runs.map((r) => esc(show(r.start?.plan ?? 'n/a')))]);
  return table(['option', ...runs.map((r) => esc(r.name))], rows, 'config');
}
