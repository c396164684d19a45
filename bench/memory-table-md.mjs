#!/usr/bin/env node
// The README's memory table from bench/memory-table.sh's JSON files: one row per method (vanilla, STEP K = 2, 3, 4,
// GaLore, ReLoRA), the measured whole-run model-state peak beside the planner's, and the total peaks with and
// without activation checkpointing, each with its reduction against vanilla. A missing file leaves its cells "not
// measured"; a run whose model state differs from the planner says so (never hidden).
// Usage: node bench/memory-table-md.mjs PRESET [DIR]   (DIR default bench/results/memory)
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const [preset, dir = 'bench/results/memory'] = process.argv.slice(2);
if (!preset) {
  console.error('usage: node bench/memory-table-md.mjs PRESET [DIR]');
  process.exit(2);
}
const GB = (b) => `${(b / 1e9).toFixed(2)} GB`;
const bytes = (b) => b.toLocaleString('en-US');
const pct = (x, base) => (base ? `${(100 * (1 - x / base)).toFixed(1)}%` : '');
const load = (run, ckpt) => {
  const file = join(dir, `${preset}-${run}-ckpt-${ckpt}.json`);
  return existsSync(file) ? JSON.parse(readFileSync(file, 'utf8')) : null;
};

const RUNS = [
  ['k1', 'vanilla'], ['k2', 'STEP K = 2'], ['k3', 'STEP K = 3'], ['k4', 'STEP K = 4'],
  ['galore', 'GaLore'], ['relora', 'ReLoRA'],
];
const vanilla = { on: load('k1', 'on'), off: load('k1', 'off') };
const anyRun = RUNS.map(([run]) => load(run, 'on') ?? load(run, 'off')).find(Boolean);
const base = {
  // vanilla's model state: measured, else the planner's (every run's plan carries it)
  state: (vanilla.on ?? vanilla.off)?.wholeRun.modelState.total ?? anyRun?.plan.vanilla,
  on: vanilla.on?.wholeRun.peak.total,
  off: vanilla.off?.wholeRun.peak.total,
};

console.log('| method | split | model-state peak, measured | = planner | lower than vanilla | total peak, checkpointing | lower than vanilla | total peak, no checkpointing | lower than vanilla |');
console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- |');
for (const [run, name] of RUNS) {
  const on = load(run, 'on'), off = load(run, 'off');
  const any = on ?? off;
  if (!any) continue;
  const s = any.settings;
  const label = run === 'galore' ? `${name}, rank ${s.galore.rank}` : run === 'relora' ? `${name}, rank ${s.rank}` : run === 'k1' ? name : `${name} (rank ${s.rank})`;
  const split = run === 'relora' ? `${s.split.join(', ')}: warm start, then LoRA` : s.split.join(', ');
  const state = any.wholeRun.modelState.total;
  const runs = [on, off].filter(Boolean);
  const allMatch = runs.every((j) => j.match && j.wholeRun.match && j.phases.every((p) => p.match));
  const samePlanner = runs.every((j) => j.wholeRun.modelState.total === state);
  const matchCell = allMatch && samePlanner ? `yes, every ${s.method === 'step' ? 'stage and transition' : 'phase'}` : `**no**: ${runs.map((j) => `planner ${bytes(j.wholeRun.predicted)} B`).join(', ')}`;
  let stateCell = `${GB(state)} (${bytes(state)} B)`;
  if (run === 'relora') {
    const lora = any.phases.find((p) => p.label === 'LoRA');
    if (lora) stateCell += `; LoRA phase ${GB(lora.measured.total)} (${bytes(lora.measured.total)} B, ${pct(lora.measured.total, base.state)} lower)`;
  }
  const total = (j, b) => (j ? [`${GB(j.wholeRun.peak.total)} (${bytes(j.wholeRun.peak.total)} B)`, run === 'k1' ? '' : pct(j.wholeRun.peak.total, b)] : ['not measured', '']);
  console.log(`| ${[label, split, stateCell, matchCell, run === 'k1' ? '' : pct(state, base.state), ...total(on, base.on), ...total(off, base.off)].join(' | ')} |`);
}
