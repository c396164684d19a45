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
import { describeValue } from '../../engine/describe-value.js';
import { StepError } from '../../engine/errors.js';
import { PRETOKENIZER_NAME } from './pretokenize.js';

export const TOKENIZER_FORMAT = 'step-bpe-tokenizer';
export const TOKENIZER_VERSION = 1;

/**
 * Bounds no trained tokenizer comes near; past them a file is corrupt (or hostile): merges that
 * double a token 40 times would otherwise make the loader allocate 2^40 bytes, and a special
 * token of 100 000 characters is a pattern too large for the RegExp that finds special tokens.
 */
export const MAX_TOKEN_BYTES_TOTAL = 64 * 1024 * 1024;
export const MAX_SPECIAL_TOKEN_CHARS = 1024;

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
  // Byte length of every token so far (the 256 byte tokens, then one per merge), to bound the total.
  const tokenBytes: number[] = new Array<number>(256).fill(1);
  let totalBytes = 256;
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
    const bytes = tokenBytes[pair[0]]! + tokenBytes[pair[1]]!;
    totalBytes += bytes;
    if (totalBytes > MAX_TOKEN_BYTES_TOTAL) {
      fail(`field "merges[${i}]" = [${key}] makes a token of ${bytes} bytes, and the tokens so far total ${totalBytes} bytes, over the ${MAX_TOKEN_BYTES_TOTAL} no trained tokenizer reaches; the file is corrupt`);
    }
    tokenBytes.push(bytes);
    merges.push(pair);
  });
  if (!Array.isArray(obj.specialTokens)) fail(`field "specialTokens" must be an array of {token, id}, got ${describe(obj.specialTokens)}`);
  const specialTokens: string[] = [];
  const specialSet = new Set<string>();
  (obj.specialTokens as unknown[]).forEach((s, i) => {
    const want = 256 + merges.length + i;
    const rec = s as Record<string, unknown> | null;
    if (typeof rec !== 'object' || rec === null || typeof rec.token !== 'string' || rec.token.length === 0) {
      fail(`field "specialTokens[${i}]" must be {"token": non-empty string, "id": ${want}}, got ${describe(s)}`);
    }
    const token = rec!.token as string;
    if (token.length > MAX_SPECIAL_TOKEN_CHARS) {
      fail(`field "specialTokens[${i}]" is a token of ${token.length} characters (${describe(token)}); special tokens are short markers such as <|endoftext|>, at most ${MAX_SPECIAL_TOKEN_CHARS} characters`);
    }
    if (rec!.id !== want) fail(`field "specialTokens[${i}].id" must be ${want} (ids follow the ${merges.length} merges), got ${describe(rec!.id)}`);
    if (specialSet.has(token)) fail(`field "specialTokens[${i}]" repeats the token ${describe(token)}`);
    specialSet.add(token);
    specialTokens.push(token);
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
  return v === undefined ? 'nothing (the field is missing)' : describeValue(v);
}
