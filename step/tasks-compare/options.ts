/**
 * The options of `step experiment-tasks`: which models of a `step experiment` folder to compare
 * (kinds x seeds), the tasks and their sizes, and the instruction tuning every model gets alike.
 *
 * Default sizes, chosen so that the 9 models (vanilla, STEP K=2, K=3 x 3 seeds) of the experiment's
 * default target (small preset, 12 layers, vocabulary 512, context 128; hidden 64 since experiment
 * v2's redesign, hidden 128 before) go through in about half an hour on 2 quiet cores through
 * lavapipe (~2.5 min a model at hidden 64, ~4 at hidden 128; measured pieces in README
 * "Comparison after instruction tuning"):
 * - 100 examples per log-likelihood task (a per-model standard error of at most 0.05) and 40 of
 *   pos-brown, whose every example is a greedy generation that recomputes its context for each
 *   token (~10x the cost of scoring a choice);
 * - 96 tuning steps of 16 pos-brown records (1,536 records, 10% of the set) at lr 3e-3, the
 *   experiment's pre-training rate (a model this small tunes at a far higher rate than Alpaca's
 *   2e-5 for billions of parameters); full fine-tuning; the same records in the same order for
 *   every model;
 * - the compact template: Alpaca's preamble would not leave room for the answer in 128 positions.
 */
import { resolve } from 'node:path';
import type { DeviceChoice } from '../../engine/device.js';
import type { CommandSpec } from '../cli-args.js';
import { choiceFlag, flagValue, hasFlag, numberFlag, numberValue, parseArgs, UsageError, valued } from '../cli-args.js';
import { EXPERIMENT_RUNS } from '../experiment/runs.js';
import { TEMPLATE_NAMES, type TemplateName } from '../instruct/template.js';
import { BUILTIN_TASKS, type BuiltinTaskName } from '../tasks/brown-tasks.js';
import { parseTaskNames } from '../tasks/suite.js';
import { NUMBER_RULES } from '../train/validate-options.js';

export interface CompareOptions {
  /** The folder `step experiment --out` wrote (its runs/ holds KIND-seedS/final). */
  experiment: string;
  /** Subfolder of the experiment for this comparison's results (default "tasks"). */
  name: string;
  /** Kinds of run (step experiment's names), in table order. */
  kinds: string[];
  /** Seeds to compare; null: those of the first kind's finished runs. */
  seeds: number[] | null;
  tasks: BuiltinTaskName[];
  /** Users' task files (step eval-tasks --task-file). */
  taskFiles: string[];
  /** Examples per log-likelihood task (the first that fit, in the task's seeded order). */
  limit: number;
  /** Examples per instruction task (pos-brown): each costs a greedy generation, ~10x a choice's scoring. */
  generationLimit: number;
  /** Order, picks and distractors of the built-in tasks and pos-brown's SFT set. */
  taskSeed: number;
  /** pos-brown (tasks and SFT set): longest sentence in Brown tokens. */
  maxWords: number;
  template: TemplateName;
  /** Alpaca JSONL to tune on instead of pos-brown's SFT set; null: pos-brown's, written once. */
  sftData: string | null;
  /** Optimizer steps of the tuning; 0: as many as sftEpochs takes. */
  sftSteps: number;
  sftEpochs: number;
  sftLr: number;
  sftBatch: number;
  /** Data order of the tuning (and LoRA's initialisation). */
  sftSeed: number;
  /** 0: full fine-tuning; R > 0: LoRA of rank R on every linear, merged at the end. */
  loraRank: number;
  device: DeviceChoice;
}

export const DEFAULT_COMPARE: Omit<CompareOptions, 'experiment'> = {
  name: 'tasks', kinds: ['vanilla', 'step2', 'step3'], seeds: null, tasks: [...BUILTIN_TASKS], taskFiles: [], limit: 100, generationLimit: 40, taskSeed: 0,
  maxWords: 12, template: 'compact', sftData: null, sftSteps: 96, sftEpochs: 1, sftLr: 3e-3, sftBatch: 16, sftSeed: 1, loraRank: 0, device: 'auto',
};

/** `--smoke`: tiny sizes on the cpu backend (for `step experiment --smoke` folders and the tests). */
export const SMOKE_COMPARE: Omit<CompareOptions, 'experiment'> = { ...DEFAULT_COMPARE, limit: 4, generationLimit: 4, maxWords: 5, sftSteps: 4, sftBatch: 2, device: 'cpu' };

export const COMPARE_USAGE = `usage: step experiment-tasks --experiment OUT [options]
  For each kind and seed, the run OUT/runs/KIND-seedS/final (a step experiment folder): evaluates the
  model zero-shot on the tasks, instruction-tunes it (every model on the same records, in the same order,
  with the same steps, learning rate and batch), evaluates the tuned model, then writes OUT/NAME/summary.json,
  summary.md (mean over seeds, per-model standard error and spread over seeds) and report.html.
  A rerun with the same OUT and NAME reuses every finished piece (results, tuning runs) and resumes
  an interrupted tuning from its last checkpoint.
  --experiment OUT     the folder step experiment --out wrote
  --name NAME          results folder OUT/NAME (default tasks); another NAME keeps another comparison
  --kinds LIST         kinds of run (default vanilla,step2,step3: the equal-tokens runs)
  --seeds 1,2,3        seeds (default: those of the first kind's finished runs)
  --tasks a,b,c        built-in tasks (default all): ${BUILTIN_TASKS.join(', ')}
  --task-file F.jsonl  a task of your own (repeatable; step eval-tasks's format)
  --limit N            examples per log-likelihood task (default ${DEFAULT_COMPARE.limit})     --task-seed S (default 0)
  --generation-limit N examples per instruction task (default ${DEFAULT_COMPARE.generationLimit}; each is a greedy generation, ~10x the cost)
  --max-words N        pos-brown's longest sentence (default ${DEFAULT_COMPARE.maxWords})   --template compact|alpaca (default compact)
  --sft-data F.jsonl   Alpaca records to tune on (default: pos-brown's SFT set from the training documents)
  --sft-steps S        tuning steps (default ${DEFAULT_COMPARE.sftSteps}); --sft-steps 0 --sft-epochs E: whole epochs instead
  --sft-lr X (default ${DEFAULT_COMPARE.sftLr})   --sft-batch B (default ${DEFAULT_COMPARE.sftBatch})   --sft-seed S (default 1)
  --lora-rank R        LoRA tuning of rank R (merged at the end) instead of full fine-tuning
  --device auto|webgpu|cpu   --smoke (tiny sizes on the cpu, for step experiment --smoke folders)`;

const SPEC: CommandSpec = {
  command: 'experiment-tasks',
  usage: COMPARE_USAGE,
  flags: [
    ...valued(['--experiment', '--name', '--kinds', '--seeds', '--tasks', '--limit', '--generation-limit', '--task-seed', '--max-words', '--template', '--sft-data',
      '--sft-steps', '--sft-epochs', '--sft-lr', '--sft-batch', '--sft-seed', '--lora-rank', '--device'],
    { '--template': TEMPLATE_NAMES, '--device': ['auto', 'webgpu', 'cpu'] }),
    { name: '--task-file', takesValue: true, repeatable: true },
    { name: '--smoke', takesValue: false },
  ],
};

function list(flag: string, raw: string): string[] {
  const items = raw.split(',').map((s) => s.trim());
  if (items.some((s) => s === '')) throw new UsageError(`step experiment-tasks: ${flag} takes a comma-separated list, got ${JSON.stringify(raw)}`);
  return [...new Set(items)];
}

/** Parses the arguments; `help` is true for --help (print COMPARE_USAGE, run nothing). */
export function parseCompareArgs(args: readonly string[]): CompareOptions & { help?: true } {
  const a = parseArgs(SPEC, args);
  const o: CompareOptions = { ...(hasFlag(a, '--smoke') ? SMOKE_COMPARE : DEFAULT_COMPARE), experiment: '' };
  if (a.help) return { ...o, help: true };
  const cmd = 'experiment-tasks';
  const experiment = flagValue(a, '--experiment');
  if (!experiment) throw new UsageError(`step experiment-tasks: --experiment OUT is required (the folder step experiment --out wrote)\n${COMPARE_USAGE}`);
  o.experiment = resolve(experiment);
  const name = flagValue(a, '--name');
  if (name !== undefined) {
    if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]*$/.test(name) || name === 'runs') throw new UsageError(`step experiment-tasks: --name must be a plain folder name other than "runs" (letters, digits, _ . -), got ${JSON.stringify(name)}`);
    o.name = name;
  }
  const kinds = flagValue(a, '--kinds');
  if (kinds !== undefined) {
    const known = EXPERIMENT_RUNS.map((r) => r.kind);
    o.kinds = list('--kinds', kinds);
    const bad = o.kinds.find((k) => !known.includes(k));
    if (bad !== undefined) throw new UsageError(`step experiment-tasks: --kinds takes kinds of step experiment (${known.join(', ')}); got "${bad}"`);
  }
  const seeds = flagValue(a, '--seeds');
  if (seeds !== undefined) o.seeds = list('--seeds', seeds).map((s) => numberValue(cmd, '--seeds', s, NUMBER_RULES.seed));
  const tasks = flagValue(a, '--tasks');
  if (tasks !== undefined) o.tasks = parseTaskNames(tasks);
  o.taskFiles = (a.values.get('--task-file') ?? []).map((f) => resolve(f));
  if (o.tasks.length === 0 && o.taskFiles.length === 0) throw new UsageError('step experiment-tasks: no tasks: --tasks none and no --task-file given');
  o.limit = numberFlag(cmd, a, '--limit', { integer: true, min: 1 }) ?? o.limit;
  o.generationLimit = numberFlag(cmd, a, '--generation-limit', { integer: true, min: 1 }) ?? o.generationLimit;
  o.taskSeed = numberFlag(cmd, a, '--task-seed', { integer: true, min: 0 }) ?? o.taskSeed;
  o.maxWords = numberFlag(cmd, a, '--max-words', { integer: true, min: 3 }) ?? o.maxWords;
  o.template = choiceFlag(cmd, a, '--template', TEMPLATE_NAMES) ?? o.template;
  const sftData = flagValue(a, '--sft-data');
  if (sftData !== undefined) o.sftData = resolve(sftData);
  o.sftSteps = numberFlag(cmd, a, '--sft-steps', { integer: true, min: 0, reason: '0: as many as --sft-epochs takes' }) ?? o.sftSteps;
  const epochs = numberFlag(cmd, a, '--sft-epochs', { min: 0, minExclusive: true });
  if (epochs !== undefined && o.sftSteps !== 0) throw new UsageError(`step experiment-tasks: --sft-epochs ${epochs} needs --sft-steps 0 (the tuning runs ${o.sftSteps} steps otherwise)`);
  o.sftEpochs = epochs ?? o.sftEpochs;
  o.sftLr = numberFlag(cmd, a, '--sft-lr', NUMBER_RULES.lr) ?? o.sftLr;
  o.sftBatch = numberFlag(cmd, a, '--sft-batch', NUMBER_RULES.batchSize) ?? o.sftBatch;
  o.sftSeed = numberFlag(cmd, a, '--sft-seed', NUMBER_RULES.seed) ?? o.sftSeed;
  o.loraRank = numberFlag(cmd, a, '--lora-rank', { integer: true, min: 0, reason: '0: full fine-tuning' }) ?? o.loraRank;
  o.device = choiceFlag(cmd, a, '--device', ['auto', 'webgpu', 'cpu'] as const) ?? o.device;
  return o;
}
