/**
 * Reading instruction data in the Alpaca format: a JSON array of records (`.json`) or one record
 * per line (`.jsonl`), each `{"instruction": string, "input"?: string, "output": string}` (other
 * fields are ignored). Every refusal names the file, the line (JSONL) or the record index (JSON
 * array), and the field.
 */
import { createHash } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { StepError } from '../../engine/errors.js';
import type { InstructionRecord } from '../instruct/template.js';

export interface InstructionFile {
  path: string;
  records: InstructionRecord[];
  /** sha256 of the file's bytes: a resumed run refuses data that changed under it. */
  sha256: string;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Checks one parsed record; `where` is "FILE line N" or "FILE record N". */
export function checkRecord(value: unknown, where: string): InstructionRecord {
  const fix = 'each record is {"instruction": "...", "input": "..." (optional), "output": "..."}';
  if (!isObject(value)) throw new StepError(`${where}: a record must be a JSON object, got ${Array.isArray(value) ? 'an array' : value === null ? 'null' : typeof value}; ${fix}`);
  for (const field of ['instruction', 'output'] as const) {
    if (!(field in value)) throw new StepError(`${where}: field "${field}" is missing; ${fix}`);
    if (typeof value[field] !== 'string') throw new StepError(`${where}: field "${field}" must be a string, got ${value[field] === null ? 'null' : typeof value[field]}; ${fix}`);
  }
  if ((value.instruction as string).trim() === '') throw new StepError(`${where}: field "instruction" is empty; every record needs an instruction`);
  if ((value.output as string) === '') throw new StepError(`${where}: field "output" is empty; the response is what the model learns, so it must not be empty`);
  if (value.input !== undefined && value.input !== null && typeof value.input !== 'string') {
    throw new StepError(`${where}: field "input" must be a string (or absent), got ${typeof value.input}; ${fix}`);
  }
  const record: InstructionRecord = { instruction: value.instruction as string, output: value.output as string };
  if (typeof value.input === 'string') record.input = value.input;
  return record;
}

/** Parses the text of a `.json` (array) or `.jsonl` file; `path` names it in errors. */
export function parseInstructions(text: string, path: string): InstructionRecord[] {
  const trimmed = text.replace(/^\uFEFF/, '').trim();
  if (trimmed === '') throw new StepError(`${path}: the file is empty; give Alpaca records, one JSON object per line (.jsonl) or a JSON array (.json)`);
  let records: InstructionRecord[];
  if (trimmed.startsWith('[')) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(trimmed);
    } catch (e) {
      throw new StepError(`${path}: not valid JSON (${(e as Error).message}); a .json file holds one array of records`);
    }
    if (!Array.isArray(parsed)) throw new StepError(`${path}: expected a JSON array of records`);
    records = parsed.map((r, i) => checkRecord(r, `${path} record ${i + 1}`));
  } else {
    records = [];
    const lines = text.replace(/^\uFEFF/, '').split('\n');
    for (const [i, raw] of lines.entries()) {
      const line = raw.trim();
      if (line === '') continue;
      let parsed: unknown;
      try {
        parsed = JSON.parse(line);
      } catch (e) {
        throw new StepError(`${path} line ${i + 1}: not valid JSON (${(e as Error).message}); each line of a .jsonl file is one record`);
      }
      records.push(checkRecord(parsed, `${path} line ${i + 1}`));
    }
  }
  if (records.length === 0) throw new StepError(`${path}: holds no records; give at least one {"instruction", "output"} record`);
  return records;
}

/** Reads and checks an instruction file. */
export async function readInstructionFile(path: string, flag = '--data'): Promise<InstructionFile> {
  if (!existsSync(path)) throw new StepError(`${flag} ${path}: the file does not exist; give a .jsonl or .json file of Alpaca records`);
  if (statSync(path).isDirectory()) throw new StepError(`${flag} ${path} is a folder; give a .jsonl or .json file of Alpaca records`);
  const bytes = await readFile(path);
  return { path, records: parseInstructions(bytes.toString('utf8'), path), sha256: createHash('sha256').update(bytes).digest('hex') };
}
