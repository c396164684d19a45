import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { StepError } from '../../engine/errors.js';
import type { CommandSpec } from '../cli-args.js';
import { parseArgs, switches, valued } from '../cli-args.js';
import type { LlamaConfig } from '../../models/config.js';
import { configToJSON, parseConfigJSON } from '../../models/config.js';
import { PRESET_NAMES, presetConfig } from '../../models/config-presets.js';
import type { GaLoreModelState, PlannerMode, Precision, ReloraModelState } from '../planner/index.js';
import { PLANNER_MODES, PRECISIONS, defaultRank, formatPlan, galoreModelState, maxGaloreRank, paperTable, planStages, reloraModelState } from '../planner/index.js';
import { DEFAULT_TRAIN_OPTIONS, parseConfigOverride } from '../train/options.js';

export { formatPlan } from '../planner/index.js';

/** The defaults of `step train --method step`, so that both commands plan the same stages. */
const RUN_DEFAULTS = { mode: 'engine', precision: DEFAULT_TRAIN_OPTIONS.precision, rank: DEFAULT_TRAIN_OPTIONS.loraRank } as const;

const USAGE = `usage: step plan (--preset NAME | --config PATH) --stages K [options]
       step plan --paper-table [--mode paper|engine] [--precision mixed|fp32] [--rank R]
options:
  --preset NAME          ${PRESET_NAMES.join(', ')}
  --config PATH          a Hugging Face config.json (or a checkpoint directory holding one)
  --stages K             number of stages (may be left out with --split)
  The defaults are step train's (--method step), so both plan the same stages for the same flags:
  --rank R               LoRA rank of the adapters on frozen layers (default ${RUN_DEFAULTS.rank}, step train's --lora-rank)
  --mode engine|paper    engine (default): every tensor our engine allocates, embeddings and head included;
                         paper: the published programme over decoder layers (mixed precision)
  --precision fp32|mixed engine mode: bytes per parameter (default ${RUN_DEFAULTS.precision}, step train's)
  --freeze-embeddings    engine mode: embeddings, final norm and head stop training after stage 1
                         (default: they keep training)
  --no-pet               old layers frozen without LoRA adapters (the paper's no-PET ablation)
  --stage-optimizer keep|reset  engine mode: Adam state of what trains on is kept through a transition (default keep)
  --set KEY=VALUE        override a LlamaConfig key of the preset or config (repeatable)
  --split 12,6,6         evaluate this split instead of the optimal one
  --galore-rank R        engine mode: GaLore's projection rank for the baseline line (default hidden/4)
  --relora-rank R        engine mode: ReLoRA's LoRA rank for the baseline line (default --rank, as step train's
                         --lora-rank serves both)
  --layers N             override the number of layers L of the preset/config
  --vocab-size N         override the vocabulary size
  --json                 print the plan as JSON (exact bytes)`;

const VALUE_FLAGS = ['--preset', '--config', '--stages', '--rank', '--mode', '--precision', '--split', '--layers', '--vocab-size', '--stage-optimizer', '--galore-rank', '--relora-rank'] as const;
const BOOL_FLAGS = ['--json', '--freeze-embeddings', '--no-pet', '--paper-table'] as const;

type Flags = Partial<Record<(typeof VALUE_FLAGS)[number], string>> & Partial<Record<(typeof BOOL_FLAGS)[number] | '--help', true>> & { '--set'?: string[] };

const PLAN_SPEC: CommandSpec = {
  command: 'plan',
  usage: USAGE,
  flags: [...valued(VALUE_FLAGS, { '--preset': PRESET_NAMES, '--mode': PLANNER_MODES, '--precision': PRECISIONS, '--stage-optimizer': ['keep', 'reset'] }), ...switches(BOOL_FLAGS),
    { name: '--set', takesValue: true, repeatable: true }],
};

/** --flag value and --flag=value (the shared parser); unknown flags, missing values and repeats are errors. */
export function parsePlanArgs(args: readonly string[]): Flags {
  const a = parseArgs(PLAN_SPEC, args);
  const flags: Record<string, string | true | string[]> = a.help ? { '--help': true } : {};
  for (const [name, values] of a.values) flags[name] = name === '--set' ? [...values] : values[0] === 'true' && (BOOL_FLAGS as readonly string[]).includes(name) ? true : values[0]!;
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
  for (const text of f['--set'] ?? []) {
    const [key, value] = parseConfigOverride(text, 'plan');
    (overrides as Record<string, unknown>)[key] = value;
  }
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

/** `step plan`: the STEP stage sizes and the memory of each stage (see USAGE). */
export async function plan(args: string[]): Promise<number> {
  const f = parsePlanArgs(args);
  if (f['--help']) {
    process.stdout.write(USAGE + '\n');
    return 0;
  }
  const givenMode = f['--mode'] === undefined ? undefined : oneOf<PlannerMode>('--mode', f['--mode'], PLANNER_MODES);
  const givenPrecision = f['--precision'] === undefined ? undefined : oneOf<Precision>('--precision', f['--precision'], PRECISIONS);
  const givenRank = f['--rank'] === undefined ? undefined : positiveInt('--rank', f['--rank']);
  if (f['--paper-table']) {
    const extra = Object.keys(f).filter((k) => !['--paper-table', '--mode', '--precision', '--rank'].includes(k));
    if (extra.length) throw new StepError(`step plan: --paper-table takes only --mode, --precision and --rank, not ${extra[0]}`);
    process.stdout.write(paperTable({ ...(givenMode ? { mode: givenMode } : {}), ...(givenPrecision ? { precision: givenPrecision } : {}), ...(givenRank ? { rank: givenRank } : {}) }));
    return 0;
  }
  const mode = givenMode ?? RUN_DEFAULTS.mode;
  // paper mode is the paper's mixed precision; engine mode defaults to step train's precision
  const precision = givenPrecision ?? (mode === 'engine' ? RUN_DEFAULTS.precision : undefined);
  const rank = givenRank ?? RUN_DEFAULTS.rank;
  const stageOptimizer = f['--stage-optimizer'] === undefined ? undefined : oneOf('--stage-optimizer', f['--stage-optimizer'], ['keep', 'reset'] as const);
  const { config, source } = loadConfig(f);
  const split = f['--split'] === undefined ? undefined : parseSplit(f['--split']);
  const stages = f['--stages'] === undefined ? undefined : positiveInt('--stages', f['--stages']);
  if (stages === undefined && split === undefined) throw new StepError(`step plan: give --stages K (or --split)\n${USAGE}`);
  const p = planStages({
    config,
    ...(stages !== undefined ? { stages } : {}),
    ...(split ? { split } : {}),
    rank,
    mode,
    ...(precision ? { precision } : {}),
    ...(f['--freeze-embeddings'] ? { trainEmbeddings: false } : {}),
    ...(f['--no-pet'] ? { pet: false } : {}),
    ...(stageOptimizer ? { carryOptimizer: stageOptimizer === 'keep' } : {}),
  });
  let galore: GaLoreModelState | null = null, relora: ReloraModelState | null = null;
  if (p.mode === 'engine') {
    const galoreRank = f['--galore-rank'] === undefined ? Math.min(defaultRank(config), maxGaloreRank(config)) : positiveInt('--galore-rank', f['--galore-rank']);
    galore = galoreModelState(config, { rank: galoreRank, precision: p.precision });
    relora = reloraModelState(config, { rank: f['--relora-rank'] === undefined ? p.rank : positiveInt('--relora-rank', f['--relora-rank']), precision: p.precision });
  } else {
    const baselineFlag = (['--galore-rank', '--relora-rank'] as const).find((k) => f[k] !== undefined);
    if (baselineFlag) throw new StepError(`step plan: ${baselineFlag} applies to --mode engine only (the baselines' bytes are the engine's)`);
  }
  const json = {
    source, config, plan: p,
    ...(galore ? { galore: { rank: galore.rank, precision: galore.precision, bytes: galore.bytes } } : {}),
    ...(relora ? { relora: { rank: relora.rank, precision: relora.precision, warmStart: relora.warmStart, switch: relora.switch, lora: relora.lora, peak: relora.peak, peakAt: relora.peakAt } } : {}),
  };
  process.stdout.write(f['--json'] ? JSON.stringify(json, null, 2) + '\n' : formatPlan(p, source, galore, relora));
  return 0;
}
