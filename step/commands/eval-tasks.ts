import { choiceFlag, flagValue, hasFlag, numberFlag, parseArgs, switches, UsageError, valued } from '../cli-args.js';
import { TEMPLATE_NAMES, type TemplateName } from '../instruct/template.js';
import { BUILTIN_TASKS } from '../tasks/brown-tasks.js';
import { evaluateCheckpointTasks } from '../tasks/evaluate-model.js';
import type { MetricRow } from '../tasks/metrics.js';
import { loadTasks, parseTaskNames, writePosSftSet } from '../tasks/suite.js';
import { closeCheckpoint, openCheckpoint, resolveCheckpointDir, runTrainConfig } from './checkpoint-model.js';

export const EVAL_TASKS_USAGE = `usage: step eval-tasks --checkpoint DIR [options]
       step eval-tasks --write-sft FILE.jsonl [--seed S] [--max-words N]
  --checkpoint DIR       a checkpoint folder or a run folder (its latest)
  --tasks a,b,c          built-in tasks (default all): ${BUILTIN_TASKS.join(', ')}; none: only --task-file
  --task-file FILE.jsonl your own task, one JSON object per line (repeatable; see README "Downstream evaluation")
  --limit N              the first N examples of each task (tasks are in a seeded random order)
  --template alpaca|compact   prompt template of instruction tasks (default: the run's, else alpaca)
  --seed S               order, picks and distractors of the built-in tasks (default 0)
  --max-words N          pos-brown: longest sentence, in Brown tokens (default 12)
  --device auto|webgpu|cpu   --json (one JSON object: rows and notes)
  --write-sft FILE       write pos-brown's SFT set (Alpaca JSONL, from the TRAINING documents) and exit
Multiple choice: acc and acc_norm (log-likelihood divided by the choice's length in characters);
cloze: acc (target is the greedy continuation) and perplexity; instruction tasks: greedy generation,
exact_match and token_acc. Built-in tasks use the Brown validation documents only.`;

const FLAGS = [
  ...valued(['--checkpoint', '--tasks', '--limit', '--template', '--seed', '--max-words', '--write-sft', '--device'], { '--template': TEMPLATE_NAMES, '--device': ['auto', 'webgpu', 'cpu'] }),
  { name: '--task-file', takesValue: true, repeatable: true },
  ...switches(['--json']),
];

/** The results table: task, metric, value, stderr, n. */
export function formatTable(rows: readonly MetricRow[]): string {
  const cells = rows.map((r) => [r.task, r.metric, r.value.toFixed(4), r.stderr === null || Number.isNaN(r.stderr) ? '-' : r.stderr.toFixed(4), String(r.n)]);
  const head = ['task', 'metric', 'value', 'stderr', 'n'];
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: string[]) => c.map((x, i) => (i >= 2 ? x.padStart(widths[i]!) : x.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(head), ...cells.map(line)].join('\n');
}

/** `step eval-tasks`: see EVAL_TASKS_USAGE. `print` receives the output, `warn` the notes (stderr). */
export async function evalTasksCommand(args: string[], print: (text: string) => void = (t) => process.stdout.write(t),
  warn: (text: string) => void = (t) => process.stderr.write(t)): Promise<number> {
  const flags = parseArgs({ command: 'eval-tasks', usage: EVAL_TASKS_USAGE, flags: FLAGS }, args);
  if (flags.help) { print(EVAL_TASKS_USAGE + '\n'); return 0; }
  const seed = numberFlag('eval-tasks', flags, '--seed', { integer: true, min: 0 }) ?? 0;
  const maxWords = numberFlag('eval-tasks', flags, '--max-words', { integer: true, min: 3 }) ?? 12;
  const sftFile = flagValue(flags, '--write-sft');
  if (sftFile !== undefined) {
    const others = [...flags.values.keys()].filter((k) => !['--write-sft', '--seed', '--max-words'].includes(k));
    if (others.length > 0) throw new UsageError(`step eval-tasks: --write-sft takes only --seed and --max-words, not ${others.join(', ')}`);
    const task = await writePosSftSet(sftFile, { seed, maxWords });
    print(`wrote ${task.examples.length} pos-brown SFT records (Brown training documents) to ${sftFile}; ${task.note}\n`);
    return 0;
  }
  const checkpoint = flagValue(flags, '--checkpoint');
  if (!checkpoint) throw new UsageError(`step eval-tasks: --checkpoint DIR is required (or --write-sft FILE)\n${EVAL_TASKS_USAGE}`);
  const names = parseTaskNames(flagValue(flags, '--tasks') ?? BUILTIN_TASKS.join(','));
  const files = flags.values.get('--task-file') ?? [];
  if (names.length === 0 && files.length === 0) throw new UsageError('step eval-tasks: no tasks: --tasks none and no --task-file given');
  const limit = numberFlag('eval-tasks', flags, '--limit', { integer: true, min: 1 });
  const device = choiceFlag('eval-tasks', flags, '--device', ['auto', 'webgpu', 'cpu'] as const) ?? 'auto';
  const dir = await resolveCheckpointDir(checkpoint);
  const runTemplate = (await runTrainConfig(dir))?.template;
  const template: TemplateName = choiceFlag('eval-tasks', flags, '--template', TEMPLATE_NAMES)
    ?? (TEMPLATE_NAMES.includes(runTemplate as TemplateName) ? runTemplate as TemplateName : 'alpaca');
  // the tasks (and the user's files) are read and checked before the model is loaded
  const tasks = await loadTasks(names, files, { seed, maxWords });

  const opened = await openCheckpoint(dir, device);
  try {
    const { ckpt } = opened;
    const { rows, notes } = await evaluateCheckpointTasks(ckpt, tasks, { template, limit, command: 'step eval-tasks' });
    if (hasFlag(flags, '--json')) {
      print(JSON.stringify({ checkpoint: ckpt.dir, step: ckpt.state?.step ?? null, device: opened.device.description, template, seed, rows, notes }) + '\n');
    } else {
      for (const n of notes) warn(n + '\n');
      print(`checkpoint: ${ckpt.dir}  device: ${opened.device.description}  template: ${template}\n${formatTable(rows)}\n`);
    }
    return 0;
  } finally {
    closeCheckpoint(opened.ckpt, opened.device);
  }
}
