import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { StepError } from '../../engine/errors.js';
import type { CommandSpec } from '../cli-args.js';
import { parseArgs, switches, valued } from '../cli-args.js';
import type { LlamaConfig } from '../../models/config.js';
import { configToJSON, parseConfigJSON } from '../../models/config.js';
import { PRESET_NAMES, presetConfig } from '../../models/config-presets.js';
import type { GaLoreModelState, Plan, PlannerMode, Precision } from '../planner/index.js';
import { PLANNER_MODES, PRECISIONS, defaultRank, galoreModelState, maxGaloreRank, paperTable, planStages } from '../planner/index.js';

const USAGE = `usage: step plan (--preset NAME | --config PATH) --stages K [options]
       step plan --paper-table [--mode paper|engine] [--precision mixed|fp32] [--rank R]
options:
  --preset NAME          ${PRESET_NAMES.join(', ')}
  --config PATH          a Hugging Face config.json (or a checkpoint directory holding one)
  --stages K             number of stages (may be left out with --split)
  --rank R               LoRA rank of the adapters on frozen layers (default hidden/4)
  --mode paper|engine    paper: the published programme over decoder layers (default);
                         engine: every tensor our engine allocates, embeddings and head included
  --precision mixed|fp32 engine mode: bytes per parameter (default mixed, the paper's)
  --freeze-embeddings    engine mode: embeddings, final norm and head stop training after stage 1
                         (default: they keep training)
  --split 12,6,6         evaluate this split instead of the optimal one
  --galore-rank R        engine mode: GaLore's projection rank for the baseline line (default hidden/4)
  --layers N             override the number of layers L of the preset/config
  --vocab-size N         override the vocabulary size
  --json                 print the plan as JSON (exact bytes)`;

const VALUE_FLAGS = ['--preset', '--config', '--stages', '--rank', '--mode', '--precision', '--split', '--layers', '--vocab-size', '--galore-rank'] as const;
const BOOL_FLAGS = ['--json', '--freeze-embeddings', '--paper-table'] as const;

type Flags = Partial<Record<(typeof VALUE_FLAGS)[number], string>> & Partial<Record<(typeof BOOL_FLAGS)[number] | '--help', true>>;

const PLAN_SPEC: CommandSpec = {
  command: 'plan',
  usage: USAGE,
  flags: [...valued(VALUE_FLAGS, { '--preset': PRESET_NAMES, '--mode': PLANNER_MODES, '--precision': PRECISIONS }), ...switches(BOOL_FLAGS)],
};

/** --flag value and --flag=value (the shared parser); unknown flags, missing values and repeats are errors. */
export function parsePlanArgs(args: readonly string[]): Flags {
  const a = parseArgs(PLAN_SPEC, args);
  const flags: Record<string, string | true> = a.help ? { '--help': true } : {};
  for (const [name, values] of a.values) flags[name] = values[0] === 'true' && (BOOL_FLAGS as readonly string[]).includes(name) ? true : values[0]!;
  return flags as Flags;
}

function positiveInt(flag: string, v: string): number {
  if (!/^\d+$/.test(v) || Number(v) < 1 || !Number.isSafeInteger(Number(v))) throw new StepError(`step plan: ${flag} expects a positive integer, got ${JSON.stringify(v)}`);
  return Number(v);
}

function oneOf<T extends string>(flag: string, v: string, valid: readonly T[]): T {
  if (!(valid as readonly string[]).includes(v)) throw new StepError(`step plan: ${flag} ${JSON.stringify(v)} is not one of ${valid.join(', ')}`);
  return v as T;
}

function loadConfig(f: Flags): { config: LlamaConfig; source: string } {
  if (f['--preset'] !== undefined && f['--config'] !== undefined) throw new StepError('step plan: give --preset or --config, not both');
  const overrides: Partial<LlamaConfig> = {};
  if (f['--layers'] !== undefined) overrides.num_hidden_layers = positiveInt('--layers', f['--layers']);
  if (f['--vocab-size'] !== undefined) overrides.vocab_size = positiveInt('--vocab-size', f['--vocab-size']);
  if (f['--preset'] !== undefined) return { config: presetConfig(f['--preset'], overrides), source: `preset ${f['--preset']}` };
  const path = f['--config'];
  if (path === undefined) throw new StepError(`step plan: give --preset NAME (${PRESET_NAMES.join(', ')}) or --config PATH\n${USAGE}`);
  let file = path;
  try {
    if (statSync(path).isDirectory()) file = join(path, 'config.json');
  } catch {
    throw new StepError(`step plan: --config ${path}: no such file or directory`);
  }
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new StepError(`step plan: cannot read ${file}: ${(e as Error).message}`);
  }
  const base = parseConfigJSON(text, file);
  return { config: parseConfigJSON(JSON.stringify({ ...configToJSON(base), ...overrides }), file), source: file };
}

function parseSplit(v: string): number[] {
  const parts = v.split(',');
  if (parts.some((p) => !/^\d+$/.test(p.trim()))) throw new StepError(`step plan: --split ${JSON.stringify(v)} must be comma-separated positive integers, e.g. 12,6,6`);
  return parts.map((p) => Number(p.trim()));
}

const int = (n: number): string => n.toLocaleString('en-US');
/** Decimal units (GB = 10^9 B), three decimals. */
const gb = (n: number): string => (n >= 1e9 ? `${(n / 1e9).toFixed(3)} GB` : n >= 1e6 ? `${(n / 1e6).toFixed(3)} MB` : `${(n / 1e3).toFixed(3)} kB`);

export function formatPlan(p: Plan, source: string, galore: GaLoreModelState | null = null): string {
  const how = p.mode === 'paper'
    ? 'paper (the published programme: 16 B per trainable, 2 B per frozen parameter; decoder layers only)'
    : `engine, ${p.precision} precision (every model-state tensor; embeddings, final norm and head ${p.trainEmbeddings ? 'train in every stage' : 'frozen after stage 1'})`;
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
      (p.transitions.length ? '; i->j: the most live while stage j is grown (weights only: the old optimizer state and gradients are freed first):' : ':'),
    line(header),
    ...rows.map(line),
    '',
    `peak: ${p.peakAt === 'transition' ? `transition into stage ${p.peakStage}` : `stage ${p.peakStage}`}, ${int(p.peak)} B (${gb(p.peak)})${p.mode === 'engine' ? ', the most model state live over the whole run' : ''}`,
    `vanilla training of the target: ${int(v.total)} B (${gb(v.total)})`,
    `reduction: ${(100 * p.reduction).toFixed(2)}%`,
    ...(galore ? [galoreLine(galore, v.total)] : []),
  ].join('\n') + '\n';
}

function galoreLine(g: GaLoreModelState, vanilla: number): string {
  const b = g.bytes;
  return `GaLore baseline, rank ${g.rank} (every layer trains; its 7 linears projected): ${int(b.total)} B (${gb(b.total)}; parameter ${int(b.parameter)}, ` +
    `gradient ${int(b.gradient)}, optimizer ${int(b.optimizer)}), ${(100 * (1 - b.total / vanilla)).toFixed(2)}% below vanilla`;
}

/** `step plan`: the STEP stage sizes and the memory of each stage (see USAGE). */
export async function plan(args: string[]): Promise<number> {
  const f = parsePlanArgs(args);
  if (f['--help']) {
    process.stdout.write(USAGE + '\n');
    return 0;
  }
  const mode = f['--mode'] === undefined ? undefined : oneOf<PlannerMode>('--mode', f['--mode'], PLANNER_MODES);
  const precision = f['--precision'] === undefined ? undefined : oneOf<Precision>('--precision', f['--precision'], PRECISIONS);
  const rank = f['--rank'] === undefined ? undefined : positiveInt('--rank', f['--rank']);
  if (f['--paper-table']) {
    const extra = Object.keys(f).filter((k) => !['--paper-table', '--mode', '--precision', '--rank'].includes(k));
    if (extra.length) throw new StepError(`step plan: --paper-table takes only --mode, --precision and --rank, not ${extra[0]}`);
    process.stdout.write(paperTable({ ...(mode ? { mode } : {}), ...(precision ? { precision } : {}), ...(rank ? { rank } : {}) }));
    return 0;
  }
  const { config, source } = loadConfig(f);
  const split = f['--split'] === undefined ? undefined : parseSplit(f['--split']);
  const stages = f['--stages'] === undefined ? undefined : positiveInt('--stages', f['--stages']);
  if (stages === undefined && split === undefined) throw new StepError(`step plan: give --stages K (or --split)\n${USAGE}`);
  const p = planStages({
    config,
    ...(stages !== undefined ? { stages } : {}),
    ...(split ? { split } : {}),
    ...(rank !== undefined ? { rank } : {}),
    ...(mode ? { mode } : {}),
    ...(precision ? { precision } : {}),
    ...(f['--freeze-embeddings'] ? { trainEmbeddings: false } : {}),
  });
  let galore: GaLoreModelState | null = null;
  if (p.mode === 'engine') {
    const galoreRank = f['--galore-rank'] === undefined ? Math.min(defaultRank(config), maxGaloreRank(config)) : positiveInt('--galore-rank', f['--galore-rank']);
    galore = galoreModelState(config, { rank: galoreRank, precision: p.precision });
  } else if (f['--galore-rank'] !== undefined) {
    throw new StepError('step plan: --galore-rank applies to --mode engine only (GaLore\'s bytes are the engine\'s)');
  }
  const json = { source, config, plan: p, ...(galore ? { galore: { rank: galore.rank, precision: galore.precision, bytes: galore.bytes } } : {}) };
  process.stdout.write(f['--json'] ? JSON.stringify(json, null, 2) + '\n' : formatPlan(p, source, galore));
  return 0;
}
