/**
 * tokenizer.json, version 1 (written by `BpeTokenizer.save`, read by `BpeTokenizer.load`):
 *
 * ```json
 * {
 *   "format": "step-bpe-tokenizer",
 *   "version": 1,
 *   "pretokenizer": "gpt2-regex-v1",
 *   "vocabSize": 8192,
 *   "merges": [[32, 116], [104, 101], ...],
 *   "specialTokens": [{ "token": "<|endoftext|>", "id": 8191 }]
 * }
 * ```
 *
 * Ids 0..255 are the bytes. Merge i (0-based) joins the tokens [left, right] into id 256 + i; both
 * must exist already (ids below 256 + i). Special tokens take the ids after the merges, in order:
 * 256 + merges.length, ... . So vocabSize = 256 + merges.length + specialTokens.length.
 */
import { StepError } from '../../engine/errors.js';
import { PRETOKENIZER_NAME } from './pretokenize.js';

export const TOKENIZER_FORMAT = 'step-bpe-tokenizer';
export const TOKENIZER_VERSION = 1;

/** A tokenizer file that is unreadable, corrupt or from an incompatible version. */
export class TokenizerFormatError extends StepError {}

export interface TokenizerFile {
  format: typeof TOKENIZER_FORMAT;
  version: typeof TOKENIZER_VERSION;
  pretokenizer: string;
  vocabSize: number;
  merges: [number, number][];
  specialTokens: { token: string; id: number }[];
}

export interface TokenizerSpec {
  merges: [number, number][];
  specialTokens: string[];
}

/** Checks a parsed tokenizer.json; `source` (a path) names the file in errors. */
export function parseTokenizerFile(data: unknown, source: string): TokenizerSpec {
  const fail = (what: string): never => {
    throw new TokenizerFormatError(`tokenizer file ${source}: ${what}`);
  };
  if (typeof data !== 'object' || data === null || Array.isArray(data)) fail(`expected a JSON object, got ${describe(data)}`);
  const obj = data as Record<string, unknown>;
  if (obj.format !== TOKENIZER_FORMAT) fail(`field "format" must be "${TOKENIZER_FORMAT}", got ${describe(obj.format)}; this is not a step-webgpu BPE tokenizer file`);
  if (obj.version !== TOKENIZER_VERSION) {
    fail(`field "version" is ${describe(obj.version)}, but this build reads version ${TOKENIZER_VERSION} only; use a matching step-webgpu or re-train the tokenizer`);
  }
  if (obj.pretokenizer !== PRETOKENIZER_NAME) fail(`field "pretokenizer" must be "${PRETOKENIZER_NAME}", got ${describe(obj.pretokenizer)}; the file needs a pre-tokenizer this build does not have`);
  if (!Array.isArray(obj.merges)) fail(`field "merges" must be an array of [left, right] id pairs, got ${describe(obj.merges)}`);
  const rawMerges = obj.merges as unknown[];
  const merges: [number, number][] = [];
  const seen = new Set<string>();
  rawMerges.forEach((m, i) => {
    const limit = 256 + i;
    if (!Array.isArray(m) || m.length !== 2 || !m.every((x) => Number.isInteger(x) && (x as number) >= 0 && (x as number) < limit)) {
      fail(`field "merges[${i}]" must be two token ids below ${limit} (the ids that exist before merge ${i}), got ${describe(m)}; the file is corrupt`);
    }
    const ids = m as number[];
    const pair: [number, number] = [ids[0]!, ids[1]!];
    const key = `${pair[0]},${pair[1]}`;
    if (seen.has(key)) fail(`field "merges[${i}]" repeats the pair [${key}]; the file is corrupt`);
    seen.add(key);
    merges.push(pair);
  });
  if (!Array.isArray(obj.specialTokens)) fail(`field "specialTokens" must be an array of {token, id}, got ${describe(obj.specialTokens)}`);
  const specialTokens: string[] = [];
  (obj.specialTokens as unknown[]).forEach((s, i) => {
    const want = 256 + merges.length + i;
    const rec = s as Record<string, unknown> | null;
    if (typeof rec !== 'object' || rec === null || typeof rec.token !== 'string' || rec.token.length === 0) {
      fail(`field "specialTokens[${i}]" must be {"token": non-empty string, "id": ${want}}, got ${describe(s)}`);
    }
    if (rec!.id !== want) fail(`field "specialTokens[${i}].id" must be ${want} (ids follow the ${merges.length} merges), got ${describe(rec!.id)}`);
    if (specialTokens.includes(rec!.token as string)) fail(`field "specialTokens[${i}]" repeats the token ${JSON.stringify(rec!.token)}`);
    specialTokens.push(rec!.token as string);
  });
  const expected = 256 + merges.length + specialTokens.length;
  if (obj.vocabSize !== expected) {
    fail(`field "vocabSize" is ${describe(obj.vocabSize)}, but 256 bytes + ${merges.length} merges + ${specialTokens.length} special tokens = ${expected}; the file is corrupt or was edited by hand`);
  }
  return { merges, specialTokens };
}

/** The JSON object for a tokenizer (the inverse of `parseTokenizerFile`). */
export function tokenizerFile(spec: TokenizerSpec): TokenizerFile {
  return {
    format: TOKENIZER_FORMAT,
    version: TOKENIZER_VERSION,
    pretokenizer: PRETOKENIZER_NAME,
    vocabSize: 256 + spec.merges.length + spec.specialTokens.length,
    merges: spec.merges.map(([a, b]) => [a, b]),
    specialTokens: spec.specialTokens.map((token, i) => ({ token, id: 256 + spec.merges.length + i })),
  };
}

/** One line per merge keeps the file diffable and still small. */
export function formatTokenizerJson(file: TokenizerFile): string {
  const head = { ...file, merges: '@MERGES@' };
  const merges = file.merges.length === 0 ? '[]' : `[\n${file.merges.map(([a, b]) => `    [${a}, ${b}]`).join(',\n')}\n  ]`;
  return `${JSON.stringify(head, null, 2).replace('"@MERGES@"', merges)}\n`;
}

function describe(v: unknown): string {
  if (v === undefined) return 'nothing (the field is missing)';
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 60 ? `${s.slice(0, 57)}...` : s;
}
