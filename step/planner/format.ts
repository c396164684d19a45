/** The text form of a plan, as `step plan` prints it and `step train --method step` logs its own. */
import type { GaLoreModelState } from './galore.js';
import type { ReloraModelState } from './relora.js';
import type { Plan } from './plan.js';

const int = (n: number): string => n.toLocaleString('en-US');
/** Decimal units (GB = 10^9 B), three decimals. */
const gb = (n: number): string => (n >= 1e9 ? `${(n / 1e9).toFixed(3)} GB` : n >= 1e6 ? `${(n / 1e6).toFixed(3)} MB` : `${(n / 1e3).toFixed(3)} kB`);

/** The plan as a table of bytes per stage (and transition) and category, with its peak and reduction. */
export function formatPlan(p: Plan, source: string, galore: GaLoreModelState | null = null, relora: ReloraModelState | null = null): string {
  const how = p.mode === 'paper'
    ? 'paper (the published programme: 16 B per trainable, 2 B per frozen parameter; decoder layers only)'
    : `engine, ${p.precision} precision (every model-state tensor; embeddings, final norm and head ${p.trainEmbeddings ? 'train in every stage' : 'frozen after stage 1'}; ` +
      `old layers ${p.pet ? 'frozen with LoRA adapters' : 'frozen without adapters (no-PET)'}; ${p.carryOptimizer && p.trainEmbeddings ? 'their Adam state kept across boundaries' : 'no optimizer state kept across boundaries'})`;
  const header = ['stage', 'layers', 'new', 'old', 'parameter', 'frozen', 'gradient', 'optimizer', 'total'];
  const rows = p.stages.map((s) => [String(s.stage), String(s.layers), String(s.newLayers), String(s.frozenLayers),
    int(s.bytes.parameter), int(s.bytes.frozen), int(s.bytes.gradient), int(s.bytes.optimizer), int(s.bytes.total)]);
  for (const t of p.transitions) {
    const b = t.bytes;
    rows.push([`${t.intoStage - 1}->${t.intoStage}`, '', '', '', int(b.parameter), int(b.frozen), int(b.gradient), int(b.optimizer), int(b.total)]);
  }
  const v = p.vanilla;
  rows.push(['vanilla', String(p.layers), String(p.layers), '0', int(v.parameter), int(v.frozen), int(v.gradient), int(v.optimizer), int(v.total)]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]): string => r.map((x, i) => x.padStart(widths[i]!)).join('  ');
  const splitNote = p.optimal
    ? (p.split.join(',') === p.optimalSplit.join(',') ? 'optimal' : `optimal too; the planner's choice is ${p.optimalSplit.join(',')}`)
    : `not optimal: ${p.optimalSplit.join(',')} peaks at ${int(p.optimalPeak)} B (${gb(p.optimalPeak)})`;
  return [
    `STEP plan for ${source}: L = ${p.layers} layers, K = ${p.stages.length} stages, LoRA rank ${p.rank}`,
    `mode: ${how}`,
    `P = ${int(p.layerParams)} parameters per layer; E = ${int(p.loraParams)} LoRA parameters per layer`,
    `split: ${p.split.join(',')} (${splitNote})`,
    '',
    'bytes of model state per stage and memory category (new: layers added and trained; old: earlier layers, frozen, with LoRA)' +
      (p.transitions.length ? `; i->j: the most live while stage j is grown (the gradients and the optimizer state${p.carryOptimizer && p.trainEmbeddings ? ' of what stops training' : ''} are freed first):` : ':'),
    line(header),
    ...rows.map(line),
    '',
    `peak: ${p.peakAt === 'transition' ? `transition into stage ${p.peakStage}` : `stage ${p.peakStage}`}, ${int(p.peak)} B (${gb(p.peak)})${p.mode === 'engine' ? ', the most model state live over the whole run' : ''}`,
    `vanilla training of the target: ${int(v.total)} B (${gb(v.total)})`,
    `reduction: ${(100 * p.reduction).toFixed(2)}%`,
    ...(galore ? [galoreLine(galore, v.total)] : []),
    ...(relora ? [reloraLine(relora, v.total)] : []),
  ].join('\n') + '\n';
}

/** GaLore's model state beside the plan (engine mode): the baseline a user would weigh against STEP. */
function galoreLine(g: GaLoreModelState, vanilla: number): string {
  const b = g.bytes;
  return `GaLore baseline, rank ${g.rank} (every layer trains; its 7 linears projected): ${int(b.total)} B (${gb(b.total)}; parameter ${int(b.parameter)}, ` +
    `gradient ${int(b.gradient)}, optimizer ${int(b.optimizer)}), ${(100 * (1 - b.total / vanilla)).toFixed(2)}% below vanilla`;
}


/** ReLoRA's whole-run peak and its LoRA phase beside the plan (engine mode): the warm start is vanilla training. */
function reloraLine(r: ReloraModelState, vanilla: number): string {
  const b = r.lora;
  const peak = r.peakAt === 'warm start' ? 'in its full-rank warm start (vanilla\'s)' : `in its ${r.peakAt} phase`;
  return `ReLoRA baseline, LoRA rank ${r.rank} (full-rank warm start, then every layer frozen with adapters): whole-run peak ${int(r.peak)} B (${gb(r.peak)}) ${peak}, ` +
    `${(100 * (1 - r.peak / vanilla)).toFixed(2)}% below vanilla; LoRA phase ${int(b.total)} B (${gb(b.total)}; parameter ${int(b.parameter)}, frozen ${int(b.frozen)}, ` +
    `gradient ${int(b.gradient)}, optimizer ${int(b.optimizer)}), ${(100 * (1 - b.total / vanilla)).toFixed(2)}% below vanilla`;
}
