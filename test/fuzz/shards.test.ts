/**
 * Fuzz: llm.c token shards (headers in memory, whole files through readTokenShard and
 * readTokenShardHeader). Any input gives the header's tokens or a DataError naming the file.
 */
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { DataError } from '../../models/data/documents.js';
import { parseShardHeader, readTokenShard, readTokenShardHeader, SHARD_HEADER_BYTES, SHARD_MAGIC, SHARD_VERSION } from '../../models/data/shards.js';
import { fuzzSeed, mutated, parsedOrOwnError, parsedOrOwnErrorAsync, Tally, tempDir } from './fuzz-inputs.js';

const FILE = 'fuzz/train-000.bin';
const dir = tempDir('fuzz-shards');

/** A valid shard: the llm.c header, then `tokens` as little-endian uint16. */
function shardBytes(tokens: readonly number[]): Uint8Array {
  const out = new DataView(new ArrayBuffer(SHARD_HEADER_BYTES + 2 * tokens.length));
  out.setInt32(0, SHARD_MAGIC, true);
  out.setInt32(4, SHARD_VERSION, true);
  out.setInt32(8, tokens.length, true);
  tokens.forEach((t, i) => out.setUint16(SHARD_HEADER_BYTES + 2 * i, t, true));
  return new Uint8Array(out.buffer);
}

const validShard = fc.array(fc.integer({ min: 0, max: 0xffff }), { maxLength: 40 }).map(shardBytes);

test(`fuzz shard headers: a header that matches the file size or a DataError naming the file (seed ${fuzzSeed(31)}, 2500 cases)`, () => {
  const fileBytes = fc.oneof(fc.constant(-1), fc.nat({ max: 5000 }), fc.constantFrom(0, 1023, 1024, 1026, 2 ** 31, 2 ** 32 + 1024, 2 ** 53));
  const tally = new Tally();
  fc.assert(fc.property(mutated(validShard), fileBytes, (bytes, size) => {
    const fileSize = size === -1 ? bytes.length : size;
    const h = tally.note(parsedOrOwnError(() => parseShardHeader(FILE, bytes.subarray(0, SHARD_HEADER_BYTES), fileSize), DataError, FILE));
    if (!h) return;
    assert.deepEqual([h.magic, h.version], [SHARD_MAGIC, SHARD_VERSION]);
    assert.ok(Number.isSafeInteger(h.tokenCount) && h.tokenCount >= 0);
    assert.equal(fileSize, SHARD_HEADER_BYTES + 2 * h.tokenCount);
  }), { seed: fuzzSeed(31), numRuns: 2500 });
  tally.check(0.01, 0.5);
});

test(`fuzz shard files: readTokenShard and readTokenShardHeader agree, or fail with a DataError naming the file (seed ${fuzzSeed(32)}, 400 cases)`, async () => {
  const path = join(dir, 'shard.bin');
  const tally = new Tally();
  await fc.assert(fc.asyncProperty(mutated(validShard), async (bytes) => {
    writeFileSync(path, bytes);
    const header = await parsedOrOwnErrorAsync(() => readTokenShardHeader(path), DataError, path);
    const tokens = tally.note(await parsedOrOwnErrorAsync(() => readTokenShard(path), DataError, path));
    assert.equal(header === undefined, tokens === undefined, 'the header reader and the shard reader must agree on validity');
    if (!header || !tokens) return;
    assert.equal(tokens.length, header.tokenCount);
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    tokens.forEach((t, i) => assert.equal(t, view.getUint16(SHARD_HEADER_BYTES + 2 * i, true)));
  }), { seed: fuzzSeed(32), numRuns: 400 });
  tally.check(0.02, 0.5);
});

// ---------------------------------------------------------------- regressions found by the fuzzer

test('regression: readTokenShardHeader on a directory is a DataError naming it (was a raw EISDIR error)', async () => {
  const folder = join(dir, 'folder.bin');
  mkdirSync(folder);
  await assert.rejects(readTokenShardHeader(folder), (e: unknown) => e instanceof DataError && e.message === `token shard ${folder}: not a file (a directory or device); give the path of a .bin shard`);
  await assert.rejects(readTokenShard(folder), (e: unknown) => e instanceof DataError && e.message.startsWith(`token shard ${folder}: cannot read it (EISDIR`));
});

test('guard: a token count of 2^31-1 in a small file is refused before the tokens are allocated', async () => {
  const path = join(dir, 'huge-count.bin');
  const bytes = shardBytes([1, 2, 3]);
  new DataView(bytes.buffer).setInt32(8, 2 ** 31 - 1, true);
  writeFileSync(path, bytes);
  await assert.rejects(readTokenShard(path), (e: unknown) => e instanceof DataError && /header\[2\] \(token count\) is 2147483647, so the file should have 4294968318 bytes, but it has 1030/.test(e.message));
});
