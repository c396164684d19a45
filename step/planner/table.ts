/**
 * The README table: the paper's model sizes (presets 350m, 680m, 1b) for K = 2, 3, 4, with the
 * optimal split, the peak and the reduction against vanilla training of the target.
 * GB = 10^9 bytes. Regenerate with `step plan --paper-table` (options: --mode, --precision, --rank).
 */
import { countParameters } from '../../models/config-params.js';
import { presetConfig } from '../../models/config-presets.js';
import type { PlannerMode } from './costs.js';
import { planStages } from './plan.js';
import type { Precision } from './tensors.js';

export interface TableOptions {
  presets?: readonly string[];
  stages?: readonly number[];
  mode?: PlannerMode;
  precision?: Precision;
  /** One rank for every preset; default hidden/4 per preset. */
  rank?: number;
}

const gb = (bytes: number): string => (bytes / 1e9).toFixed(2);
const count = (n: number): string => (n >= 1e9 ? `${(n / 1e9).toFixed(2)}B` : `${(n / 1e6).toFixed(1)}M`);

export function paperTable(o: TableOptions = {}): string {
  const presets = o.presets ?? ['350m', '680m', '1b'];
  const stages = o.stages ?? [2, 3, 4];
  const mode = o.mode ?? 'paper';
  const rows = [
    '| preset | params (all / layers) | L | rank | vanilla GB | K | split | peak GB (stage) | reduction |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  ];
  for (const name of presets) {
    const config = presetConfig(name);
    const counts = countParameters(config);
    for (const K of stages) {
      const p = planStages({ config, stages: K, mode, ...(o.precision ? { precision: o.precision } : {}), ...(o.rank ? { rank: o.rank } : {}) });
      rows.push(`| ${name} | ${count(counts.total)} / ${count(counts.layers)} | ${p.layers} | ${p.rank} | ${gb(p.vanilla.total)} | ${K} | ${p.split.join(', ')} | ${gb(p.peak)} (${p.peakStage}) | ${(100 * p.reduction).toFixed(1)}% |`);
    }
  }
  const what = mode === 'paper'
    ? 'paper mode: 16 B per trainable and 2 B per frozen layer parameter, decoder layers only'
    : `engine mode, ${o.precision ?? 'mixed'} precision: every model-state tensor, embeddings and head included`;
  return `${rows.join('\n')}\n\n(${what}; rank ${o.rank ?? 'hidden/4, our choice'}; GB = 10^9 bytes; ties go to the lexicographically largest split)\n`;
}
