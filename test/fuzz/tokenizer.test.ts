/**
 * Fuzz: tokenizer.json (in memory through BpeTokenizer.parse, and files through BpeTokenizer.load).
 * Any input gives a working tokenizer or a TokenizerFormatError naming the file.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { BpeTokenizer } from '../../models/tokenizer/bpe.js';
import { formatTokenizerJson, MAX_TOKEN_BYTES_TOTAL, TOKENIZER_FORMAT, TokenizerFormatError, tokenizerFile } from '../../models/tokenizer/format.js';
import { PRETOKENIZER_NAME } from '../../models/tokenizer/pretokenize.js';
import type { JsonNode } from './fuzz-inputs.js';
import { fuzzSeed, JsonObj, mostly, mutated, nastyValue, objectOf, parsedOrOwnError, parsedOrOwnErrorAsync, Tally, tempDir, toJsonText } from './fuzz-inputs.js';

const FILE = 'fuzz/tokenizer.json';
const dir = tempDir('fuzz-tokenizer');
const PROBE = 'Hello, wörld! 12 3 🙂 <|endoftext|>';

/** A loaded tokenizer must have the size its file says and encode/decode losslessly. */
function checkTokenizer(tok: BpeTokenizer): void {
  assert.equal(tok.vocabSize, 256 + tok.merges.length + tok.specialTokens.length);
  assert.equal(tok.decode(tok.encode(PROBE, { allowSpecial: true })), PROBE);
}

/** Merges that are valid in order: each joins two ids that exist already; no pair twice. */
const goodMerges: fc.Arbitrary<[number, number][]> = fc.array(fc.tuple(fc.nat(), fc.nat()), { maxLength: 30 }).map((raw) => {
  const out: [number, number][] = [], seen = new Set<string>();
  for (const [x, y] of raw) {
    const limit = 256 + out.length, pair: [number, number] = [x % limit, y % limit];
    if (!seen.has(`${pair}`)) { seen.add(`${pair}`); out.push(pair); }
  }
  return out;
});
const goodSpecials = fc.uniqueArray(fc.oneof(fc.constantFrom('<|endoftext|>', '<pad>', '<s>'), fc.string({ minLength: 1, maxLength: 6 })), { maxLength: 3 });

/** null three times in four. */
function sometimes<T>(arb: fc.Arbitrary<T>): fc.Arbitrary<T | null> {
  return fc.oneof({ arbitrary: fc.constant(null), weight: 3 }, { arbitrary: arb, weight: 1 });
}

/** Merges and special tokens, usually valid with a consistent vocabSize, with a broken entry now and then. */
const tokenizerObject: fc.Arbitrary<string> = fc.tuple(goodMerges, goodSpecials, sometimes(fc.tuple(fc.nat(), nastyValue)), sometimes(fc.tuple(fc.nat(), nastyValue)))
  .chain(([merges, specials, badMerge, badSpecial]) => {
    const mergeList: JsonNode[] = [...merges];
    if (badMerge) mergeList.splice(badMerge[0] % (mergeList.length + 1), 0, badMerge[1]);
    const specialList: JsonNode[] = specials.map((token, i) => new JsonObj([['token', token], ['id', 256 + merges.length + i]]));
    if (badSpecial) specialList.splice(badSpecial[0] % (specialList.length + 1), 0, badSpecial[1]);
    return objectOf({
      format: mostly(fc.constant(TOKENIZER_FORMAT), 8),
      version: mostly(fc.constant(1), 8),
      pretokenizer: mostly(fc.constant(PRETOKENIZER_NAME), 8),
      vocabSize: mostly(fc.constant(256 + merges.length + specials.length), 6),
      merges: mostly(fc.constant(mergeList), 8),
      specialTokens: mostly(fc.constant(specialList), 8),
    });
  }).map(toJsonText);

test(`fuzz tokenizer.json objects: a working tokenizer or a TokenizerFormatError naming the file (seed ${fuzzSeed(21)}, 2000 cases)`, () => {
  const tally = new Tally();
  fc.assert(fc.property(fc.oneof({ arbitrary: tokenizerObject, weight: 8 }, { arbitrary: nastyValue.map(toJsonText), weight: 1 }), (text) => {
    const tok = tally.note(parsedOrOwnError(() => BpeTokenizer.parse(text, FILE), TokenizerFormatError, FILE));
    if (tok) checkTokenizer(tok);
  }), { seed: fuzzSeed(21), numRuns: 2000 });
  tally.check(0.03, 0.3);
});

/** Valid files: random valid specs, and one trained on text (so merges look like real ones). */
const trained = BpeTokenizer.train(['the cat sat on the mat; the dog sat on the log. '.repeat(20)], { vocabSize: 300, specialTokens: ['<|endoftext|>'] });
const validFile = fc.oneof(
  fc.constant(trained.toJSON()),
  fc.tuple(goodMerges, goodSpecials).map(([merges, specialTokens]) => tokenizerFile({ merges, specialTokens })),
).map((file) => new TextEncoder().encode(formatTokenizerJson(file)));

test(`fuzz tokenizer.json files: BpeTokenizer.load gives a working tokenizer or a TokenizerFormatError naming the file (seed ${fuzzSeed(22)}, 600 cases)`, async () => {
  const path = join(dir, 'tokenizer.json');
  const tally = new Tally();
  await fc.assert(fc.asyncProperty(mutated(validFile), async (bytes) => {
    writeFileSync(path, bytes);
    const tok = tally.note(await parsedOrOwnErrorAsync(() => BpeTokenizer.load(path), TokenizerFormatError, path));
    if (tok) checkTokenizer(tok);
  }), { seed: fuzzSeed(22), numRuns: 600 });
  tally.check(0.002, 0.5);
});

// ---------------------------------------------------------------- regressions found by the fuzzer

function fileWith(merges: unknown[], specialTokens: { token: string; id: number }[] = []): string {
  return JSON.stringify({ format: TOKENIZER_FORMAT, version: 1, pretokenizer: PRETOKENIZER_NAME, vocabSize: 256 + merges.length + specialTokens.length, merges, specialTokens });
}

function throwsFormatError(text: string, pattern: RegExp): void {
  assert.throws(() => BpeTokenizer.parse(text, FILE), (e: unknown) => e instanceof TokenizerFormatError && e.message.startsWith(`tokenizer file ${FILE}: `) && pattern.test(e.message) && !e.message.includes('\n') && e.message.length < 1000);
}

test('regression: 40 merges that each double a token are refused before allocating 2^40 bytes (was a RangeError)', () => {
  const merges = [[0, 0]];
  for (let i = 0; i < 40; i++) merges.push([256 + i, 256 + i]);
  throwsFormatError(fileWith(merges), new RegExp(`"merges\\[24\\]" = \\[279,279\\] makes a token of 33554432 bytes.*over the ${MAX_TOKEN_BYTES_TOTAL}`));
});

test('regression: a merge nested 50 000 deep is a TokenizerFormatError, not a stack overflow from printing it', () => {
  const deep = '['.repeat(50000) + ']'.repeat(50000);
  throwsFormatError(fileWith([]).replace('"merges":[]', `"merges":[${deep}]`), /"merges\[0\]" must be two token ids below 256 .*got \[\[\[\[\[\.\.\.\]\]\]\]\]/);
});

test('regression: a special token of 100 000 characters is refused, not a SyntaxError from the special-token RegExp', () => {
  throwsFormatError(fileWith([], [{ token: 'x'.repeat(100000), id: 256 }]), /"specialTokens\[0\]" is a token of 100000 characters \("xxx+\.\.\.\); special tokens are short markers/);
});

test('regression: a JSON syntax error in a multi-line tokenizer.json gives a one-line error', () => {
  throwsFormatError('{\n  "format": nope\n}\n', /not valid JSON \(.*\\n.*\); the file is corrupt or truncated$/);
});

test('regression: a tokenizer.json that is not UTF-8 is refused (it was decoded with U+FFFD, changing a special token)', async () => {
  const path = join(dir, 'latin1.json');
  const bytes = Buffer.from(fileWith([], [{ token: '<X>', id: 256 }]));
  bytes[bytes.indexOf('<X>') + 1] = 0xe9; // a lone Latin-1 é
  writeFileSync(path, bytes);
  await assert.rejects(BpeTokenizer.load(path), (e: unknown) => e instanceof TokenizerFormatError && e.message === `tokenizer file ${path}: not valid UTF-8; the file is corrupt`);
});
