/**
 * Users' own tasks: a JSONL file, one JSON object per line (blank lines are skipped), all of one kind:
 *   multiple choice  {"context": "...", "choices": ["...", "..."], "gold": 0}
 *   cloze            {"context": "...", "target": "..."}
 *   generation       {"instruction": "...", "input": "...", "output": "..."}   (input optional: Alpaca)
 * Choice and cloze records may set "delimiter" (default " ": the text between the context and the
 * choice or target). Parsing is strict: every error names the file and the line.
 */
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { DataError } from '../../models/data/documents.js';
import type { ChoiceExample, ClozeExample, GenerationExample, Task, TaskKind } from './task.js';

const KEYS: Record<TaskKind, { required: string[]; optional: string[] }> = {
  choice: { required: ['context', 'choices', 'gold'], optional: ['delimiter'] },
  cloze: { required: ['context', 'target'], optional: ['delimiter'] },
  generation: { required: ['instruction', 'output'], optional: ['input'] },
};

const FORMS = '{"context", "choices", "gold"} (multiple choice), {"context", "target"} (cloze) or {"instruction", "input", "output"} (generation)';

/** The kind a record's keys announce, or null. */
function kindOf(record: Record<string, unknown>): TaskKind | null {
  if ('choices' in record) return 'choice';
  if ('target' in record) return 'cloze';
  if ('instruction' in record) return 'generation';
  return null;
}

function parseRecord(record: Record<string, unknown>, kind: TaskKind, fail: (msg: string) => never): ChoiceExample | ClozeExample | GenerationExample {
  const { required, optional } = KEYS[kind];
  for (const k of required) if (!(k in record)) fail(`a ${kind} record needs "${k}"`);
  for (const k of Object.keys(record)) {
    if (!required.includes(k) && !optional.includes(k)) fail(`unknown key "${k}" in a ${kind} record (keys: ${[...required, ...optional].join(', ')})`);
  }
  const text = (k: string, nonEmpty: boolean): string => {
    const v = record[k];
    if (typeof v !== 'string') fail(`"${k}" must be a string, got ${JSON.stringify(v)}`);
    if (nonEmpty && v.trim() === '') fail(`"${k}" must not be empty`);
    return v;
  };
  const delimiter = 'delimiter' in record ? text('delimiter', false) : undefined;
  if (kind === 'choice') {
    const choices = record.choices;
    if (!Array.isArray(choices) || choices.length < 2) fail(`"choices" must be an array of at least 2 strings, got ${JSON.stringify(choices)}`);
    choices.forEach((c, i) => {
      if (typeof c !== 'string' || c.trim() === '') fail(`choice ${i} must be a non-empty string, got ${JSON.stringify(c)}`);
    });
    const gold = record.gold;
    if (typeof gold !== 'number' || !Number.isInteger(gold) || gold < 0 || gold >= choices.length) {
      fail(`"gold" must be an integer index into the ${choices.length} choices (0..${choices.length - 1}), got ${JSON.stringify(gold)}`);
    }
    return { context: text('context', false), choices: choices as string[], gold, ...(delimiter !== undefined ? { delimiter } : {}) };
  }
  if (kind === 'cloze') return { context: text('context', false), target: text('target', true), ...(delimiter !== undefined ? { delimiter } : {}) };
  return { instruction: text('instruction', true), input: 'input' in record ? text('input', false) : '', output: text('output', true) };
}

/** Parses the text of a task file; `file` names it in errors and, without its .jsonl, names the task. */
export function parseTaskFile(text: string, file: string): Task {
  const examples: (ChoiceExample | ClozeExample | GenerationExample)[] = [];
  let kind: TaskKind | null = null;
  let firstLine = 0;
  text.split('\n').forEach((raw, i) => {
    const line = i + 1;
    const fail = (msg: string): never => { throw new DataError(`${file}:${line}: ${msg}`); };
    if (raw.trim() === '') return;
    let record: unknown;
    try {
      record = JSON.parse(raw);
    } catch (e) {
      fail(`not valid JSON (${(e as Error).message}); each line must be one JSON object`);
    }
    if (typeof record !== 'object' || record === null || Array.isArray(record)) fail(`expected a JSON object such as ${FORMS}, got ${raw.trim().slice(0, 60)}`);
    const r = record as Record<string, unknown>;
    const k = kindOf(r) ?? fail(`cannot tell the record's kind: expected ${FORMS}; keys: ${Object.keys(r).join(', ') || 'none'}`);
    if (kind !== null && k !== kind) fail(`a ${k} record in a file of ${kind} records (line ${firstLine} is ${kind}); one file holds one kind of task`);
    if (kind === null) { kind = k; firstLine = line; }
    examples.push(parseRecord(r, k, fail));
  });
  if (kind === null) throw new DataError(`${file}: no records; a task file holds one JSON object per line, ${FORMS}`);
  const name = basename(file).replace(/\.jsonl$/, '');
  return { name, kind, examples } as Task;
}

/** Reads and parses a task file (see parseTaskFile); a missing or unreadable file is a DataError naming it. */
export async function loadTaskFile(file: string): Promise<Task> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new DataError(`task file ${file}: cannot read it (${(e as Error).message}); --task-file takes a .jsonl file`);
  }
  return parseTaskFile(text, file);
}
