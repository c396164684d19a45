/** `step memory`'s printed table and its JSON object. */
import type { LlamaConfig } from '../../models/config.js';
import type { StateBytes } from '../planner/index.js';
import type { MemoryMeasurement, MemoryRunOptions } from './measure.js';

const int = (n: number): string => n.toLocaleString('en-US');
/** Decimal units (GB = 10^9 B), as the paper and `step plan` print them. */
export const gb = (n: number): string => (n >= 1e9 ? `${(n / 1e9).toFixed(2)} GB` : n >= 1e6 ? `${(n / 1e6).toFixed(2)} MB` : `${(n / 1e3).toFixed(2)} kB`);

const HEADER = ['phase', 'layers', 'new', 'old', 'parameter', 'frozen', 'gradient', 'optimizer', 'model state', 'predicted', 'match', 'activation', 'total peak'];

function row(name: string, layers: string, n: string, frozen: string, measured: StateBytes, predicted: number, match: boolean, activation: number, total: number): string[] {
  return [name, layers, n, frozen, int(measured.parameter), int(measured.frozen), int(measured.gradient), int(measured.optimizer),
    int(measured.total), int(predicted), match ? 'yes' : 'NO', int(activation), int(total)];
}

/** The run's settings in one line: what was measured. */
export function describeRun(o: MemoryRunOptions, source: string): string {
  const method = o.method === 'vanilla' ? 'vanilla'
    : o.method === 'galore' ? `GaLore rank ${o.galore!.rank}, projector refreshed every ${o.galore!.updateGap} steps`
    : o.method === 'relora' ? `ReLoRA LoRA rank ${o.rank} (full-rank warm start, switch, LoRA, restart)`
    : `STEP K = ${o.split.length}, split ${o.split.join(',')}, LoRA rank ${o.rank}`;
  return `${source} (${o.config.num_hidden_layers} layers, hidden ${o.config.hidden_size}, vocab ${o.config.vocab_size}), ${method}; ` +
    `${o.precision} precision, batch ${o.batch} x ${o.seq} tokens, activation checkpointing ${o.checkpointActivations ? 'on' : 'off'}, ` +
    `${o.stepsPerStage} training step${o.stepsPerStage === 1 ? '' : 's'} per stage on random tokens`;
}

/** The table: per stage and transition the measured model state by category beside the planner's, activations, total. */
export function formatMeasurement(m: MemoryMeasurement, o: MemoryRunOptions, source: string): string {
  const rows = m.phases.map((p) => row(p.label, String(p.layers), String(p.newLayers), String(p.frozenLayers), p.measured, p.predicted.total, p.match, p.activation, p.peak.total));
  const w = m.wholeRun;
  rows.push(row('whole run', String(o.config.num_hidden_layers), '', '', w.modelState, w.predicted, w.match, w.activation, w.peak.total));
  const widths = HEADER.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]): string => r.map((x, i) => (i === 0 ? x.padEnd(widths[i]!) : x.padStart(widths[i]!))).join('  ');
  const vanilla = m.prediction.vanilla.total;
  return [
    `step memory: ${describeRun(o, source)}`,
    `device: ${m.device}`,
    '',
    'bytes: model state measured at its peak in each phase (parameter, frozen, gradient, optimizer live together) beside',
    `the planner's prediction (step plan --mode engine --precision ${o.precision} ${m.prediction.planFlags}); activation: that category's own`,
    ...(o.method === 'galore' ? ['peak; total peak: every category at the phase\'s peak. The whole run is one window, never reset.'] : [
      'peak; total peak: every category at the phase\'s peak. i->j: the transition (after the old optimizer state and gradients are',
      `freed: ${o.method === 'relora' ? 'every layer frozen with fresh adapters' : 'merge, growth, freezing with fresh adapters'}). The whole run is one window, never reset.`]),
    line(HEADER),
    ...rows.map(line),
    '',
    `whole run: total peak ${gb(w.peak.total)}, of which model state ${gb(w.peak.breakdown.parameter + w.peak.breakdown.frozen + w.peak.breakdown.gradient + w.peak.breakdown.optimizer)} ` +
      `and activations ${gb(w.peak.breakdown.activation)}; model-state peak ${gb(w.modelState.total)} ` +
      `${w.match ? '= the planner\'s' : `!= the planner's ${gb(w.predicted)}`} (vanilla's model state: ${gb(vanilla)}, ${(100 * (1 - w.modelState.total / vanilla)).toFixed(2)}% lower)`,
    ...m.notes,
    m.match ? 'every phase matches the planner to the byte' : 'MISMATCH: the measured model state differs from the planner\'s prediction (rows marked NO)',
  ].join('\n') + '\n';
}

/** The machine-readable result: settings, device, the prediction's summary, every phase and the whole run (bytes). */
export function measurementJSON(m: MemoryMeasurement, o: MemoryRunOptions, source: string): Record<string, unknown> {
  const { config, ...settings } = o;
  const p = m.prediction;
  const extra = p.galore ? { galore: { rank: p.galore.rank, bytes: p.galore.bytes } }
    : p.relora ? { relora: { rank: p.relora.rank, warmStart: p.relora.warmStart, switch: p.relora.switch, lora: p.relora.lora, peakAt: p.relora.peakAt } } : {};
  return {
    command: 'memory', source, config: config as LlamaConfig, settings, device: m.device,
    plan: {
      split: p.plan?.split ?? [...o.split], peak: p.peak, peakStage: p.peakPhase.stage, peakAt: p.peakPhase.phase, peakPhase: p.peakPhase.label,
      vanilla: p.vanilla.total, reduction: 1 - p.peak / p.vanilla.total, ...extra,
    },
    phases: m.phases, wholeRun: m.wholeRun, notes: m.notes, match: m.match,
  };
}
