/**
 * Fuzz: safetensors headers (in memory) and whole files (through the file reader and loader).
 * Any input gives a header that keeps the format's rules, or a SafetensorsError naming the file.
 */
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { CpuBackend } from '../../index.js';
import type { SafetensorsEntry, SafetensorsHeader } from '../../engine/safetensors.js';
import { encodeSafetensorsHeader, loadSafetensors, openSafetensors, parseSafetensorsHeader, SafetensorsError } from '../../engine/safetensors.js';
import type { JsonNode } from './fuzz-inputs.js';
import { fuzzSeed, JsonObj, mostly, mutated, nastyString, nastyValue, objectOf, parsedOrOwnError, parsedOrOwnErrorAsync, Tally, tempDir, toJsonText } from './fuzz-inputs.js';

const ELEMENT_BYTES: Record<string, number> = { F32: 4, F16: 2, I32: 4, F64: 8, BF16: 2 };
const FILE = 'fuzz/model.safetensors';
const dir = tempDir('fuzz-safetensors');
const cpu = new CpuBackend();

/** What a parsed header promises: known dtypes, sizes that match the offsets, in range, no overlap. */
function checkHeader(h: SafetensorsHeader, dataBytes: number): void {
  const spans: [number, number][] = [];
  for (const [name, e] of h.entries) {
    const size = e.shape.reduce((a, d) => a * d, 1);
    assert.ok(Object.hasOwn(ELEMENT_BYTES, e.dtype), `${name}: dtype ${e.dtype}`);
    assert.ok(e.shape.every((d) => Number.isSafeInteger(d) && d >= 0), `${name}: shape`);
    const [begin, end] = e.dataOffsets;
    assert.ok(Number.isSafeInteger(begin) && begin >= 0 && end - begin === size * ELEMENT_BYTES[e.dtype]! && end <= dataBytes, `${name}: offsets`);
    if (end > begin) spans.push([begin, end]);
  }
  spans.sort((a, b) => a[0] - b[0]);
  for (let i = 1; i < spans.length; i++) assert.ok(spans[i]![0] >= spans[i - 1]![1], 'overlapping tensors accepted');
  for (const v of Object.values(h.metadata)) assert.equal(typeof v, 'string');
}

const dtypeName = fc.oneof(fc.constantFrom('F32', 'F16', 'I32', 'F64', 'BF16'), fc.constantFrom('I64', 'U8', 'BOOL', 'F8_E4M3', 'f32', 'constructor', 'toString', '__proto__', ''));
const shape = fc.array(fc.oneof({ arbitrary: fc.integer({ min: 0, max: 5 }), weight: 4 }, { arbitrary: fc.constantFrom(2 ** 31, 2 ** 53 - 1, 2 ** 53, -1, 0.5), weight: 1 }), { maxLength: 4 });

/** One entry: dtype, shape and offsets that mostly agree (so the deeper checks run), sometimes not. */
const entry: fc.Arbitrary<JsonNode> = fc.oneof(
  { weight: 1, arbitrary: nastyValue },
  {
    weight: 6,
    arbitrary: fc.tuple(dtypeName, shape, fc.nat({ max: 64 }), fc.constantFrom('exact', 'short', 'swapped', 'nasty', 'missing')).chain(([dtype, dims, begin, how]) => {
      const bytes = dims.reduce((a, d) => a * d, 1) * (ELEMENT_BYTES[dtype] ?? 4);
      const offsets: fc.Arbitrary<JsonNode | undefined> = how === 'exact' ? fc.constant([begin, begin + bytes])
        : how === 'short' ? fc.constant([begin, begin + bytes - 1])
          : how === 'swapped' ? fc.constant([begin + bytes, begin])
            : how === 'missing' ? fc.constant(undefined) : nastyValue;
      return objectOf({ dtype: mostly(fc.constant(dtype), 6), shape: mostly(fc.constant(dims), 6), data_offsets: offsets });
    }),
  },
);

const tensorName = fc.oneof(fc.constantFrom('w', 'model.embed_tokens.weight', 'a.b'), nastyString);
const metadata = fc.oneof(
  fc.dictionary(fc.string({ maxLength: 6 }), fc.string({ maxLength: 6 }), { maxKeys: 3 }).map((d) => new JsonObj(Object.entries(d))),
  nastyValue,
);

const header: fc.Arbitrary<string> = fc.oneof(
  { weight: 8, arbitrary: fc.tuple(fc.array(fc.tuple(tensorName, entry), { maxLength: 4 }), fc.option(metadata)).map(([pairs, meta]) =>
    toJsonText(new JsonObj(meta === null ? pairs : [['__metadata__', meta], ...pairs]))) },
  { weight: 1, arbitrary: nastyValue.map(toJsonText) },
  { weight: 1, arbitrary: fc.string({ maxLength: 40 }) },
);

test(`fuzz safetensors header JSON: valid header or SafetensorsError naming the file (seed ${fuzzSeed(1)}, 2500 cases)`, () => {
  const tally = new Tally();
  fc.assert(fc.property(header, fc.nat({ max: 512 }), (text, dataBytes) => {
    const h = tally.note(parsedOrOwnError(() => parseSafetensorsHeader(text, dataBytes, FILE), SafetensorsError, FILE));
    if (h) checkHeader(h, dataBytes);
  }), { seed: fuzzSeed(1), numRuns: 2500 });
  tally.check(0.03, 0.5);
});

/** A valid file: a few small tensors of every dtype the reader takes, contiguous, optional metadata. */
const validFile: fc.Arbitrary<Uint8Array> = fc.tuple(
  fc.array(fc.tuple(fc.constantFrom('F32', 'F16', 'I32', 'F64', 'BF16'), fc.array(fc.integer({ min: 0, max: 3 }), { maxLength: 3 })), { minLength: 1, maxLength: 3 }),
  fc.dictionary(fc.string({ maxLength: 4 }), fc.string({ maxLength: 4 }), { maxKeys: 2 }),
  fc.uint8Array({ minLength: 512, maxLength: 512 }),
).map(([tensors, meta, noise]) => {
  const entries = new Map<string, SafetensorsEntry>();
  let offset = 0;
  tensors.forEach(([dtype, dims], i) => {
    const bytes = dims.reduce((a, d) => a * d, 1) * ELEMENT_BYTES[dtype]!;
    entries.set(`t${i}`, { dtype: dtype as SafetensorsEntry['dtype'], shape: dims, dataOffsets: [offset, offset + bytes] });
    offset += bytes;
  });
  return Buffer.concat([encodeSafetensorsHeader(entries, meta), noise.subarray(0, offset)]);
});

let fileCount = 0;
function writeCase(bytes: Uint8Array): string {
  const path = join(dir, `case-${fileCount++ % 4}.safetensors`);
  writeFileSync(path, bytes);
  return path;
}

test(`fuzz safetensors files: loadSafetensors gives tensors or a SafetensorsError naming the file (seed ${fuzzSeed(2)}, 800 cases)`, async () => {
  const tally = new Tally();
  await fc.assert(fc.asyncProperty(mutated(validFile), async (bytes) => {
    const path = writeCase(bytes);
    const loaded = tally.note(await parsedOrOwnErrorAsync(() => loadSafetensors(path, { device: cpu }), SafetensorsError, path));
    if (!loaded) return;
    const reader = await openSafetensors(path);
    try {
      checkHeader(reader.header, bytes.length - reader.header.dataStart);
      for (const [name, t] of loaded.tensors) assert.deepEqual([...t.shape], reader.entry(name).shape);
    } finally {
      await reader.close();
      for (const t of loaded.tensors.values()) t.dispose();
    }
  }), { seed: fuzzSeed(2), numRuns: 800 });
  tally.check(0.002, 0.5);
});

// ---------------------------------------------------------------- regressions found by the fuzzer

function headerBytes(json: string, data = 0): Buffer {
  const text = Buffer.from(json);
  const out = Buffer.alloc(8 + text.length + data);
  out.writeBigUInt64LE(BigInt(text.length), 0);
  text.copy(out, 8);
  return out;
}

function throwsOwn(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (e: unknown) => e instanceof SafetensorsError && e.message.includes(FILE) && pattern.test(e.message) && !e.message.includes('\n'));
}

test('regression: a shape nested 50 000 deep is a SafetensorsError, not a stack overflow from printing it', () => {
  const deep = '['.repeat(50000) + ']'.repeat(50000);
  throwsOwn(() => parseSafetensorsHeader(`{"w":{"dtype":"F32","shape":${deep},"data_offsets":[0,4]}}`, 4, FILE), /tensor "w": shape \[\[\[\[\[\.\.\.\]\]\]\]\] must be an array of integers/);
});

test('regression: dtypes named after Object.prototype keys ("constructor", "toString") are unsupported dtypes, not "needs NaN bytes"', () => {
  for (const dtype of ['constructor', 'toString', '__proto__', 'hasOwnProperty']) {
    throwsOwn(() => parseSafetensorsHeader(`{"w":{"dtype":"${dtype}","shape":[],"data_offsets":[0,4]}}`, 4, FILE), new RegExp(`unsupported dtype "${dtype}"`));
  }
});

test('regression: a 1 MB tensor name or shape gives a short error message', () => {
  const name = 'n'.repeat(1 << 20);
  throwsOwn(() => parseSafetensorsHeader(`{"${name}":{"dtype":"F32","shape":[${Array(100000).fill(1).join(',')}],"data_offsets":[0,5]}}`, 8, FILE), /nnn\.\.\..*needs 4/);
  assert.throws(() => parseSafetensorsHeader(`{"${name}":{"dtype":"F32","shape":[${Array(100000).fill(1).join(',')}],"data_offsets":[0,5]}}`, 8, FILE), (e: Error) => e.message.length < 1000);
});

test('regression: a missing file, a directory and a header that is not UTF-8 are SafetensorsErrors naming the path', async () => {
  const missing = join(dir, 'missing.safetensors');
  await assert.rejects(openSafetensors(missing), (e: unknown) => e instanceof SafetensorsError && e.message.includes(missing) && /cannot open it \(ENOENT/.test(e.message));
  const folder = join(dir, 'folder.safetensors');
  mkdirSync(folder);
  await assert.rejects(openSafetensors(folder), (e: unknown) => e instanceof SafetensorsError && e.message.includes(folder) && /not a file/.test(e.message));
  const latin1 = join(dir, 'latin1.safetensors');
  const bytes = headerBytes('{"wX":{"dtype":"F32","shape":[],"data_offsets":[0,4]}}', 4);
  bytes[8 + 3] = 0xe9; // the X becomes a lone Latin-1 byte: invalid UTF-8
  writeFileSync(latin1, bytes);
  await assert.rejects(openSafetensors(latin1), (e: unknown) => e instanceof SafetensorsError && e.message.includes(latin1) && /not valid UTF-8/.test(e.message));
});

test('guard: a header length field of 2^53 or 2^64-1 is refused before anything is allocated', async () => {
  for (const n of [2n ** 53n, 2n ** 64n - 1n, 100n * 1024n * 1024n + 1n]) {
    const path = join(dir, 'huge-length.safetensors');
    const bytes = headerBytes('{}');
    bytes.writeBigUInt64LE(n, 0);
    writeFileSync(path, bytes);
    await assert.rejects(openSafetensors(path), (e: unknown) => e instanceof SafetensorsError && e.message.includes(`says ${n} bytes`));
  }
});

test('regression: a JSON syntax error in a multi-line header gives a one-line SafetensorsError', () => {
  throwsOwn(() => parseSafetensorsHeader('{"w":\n  nope\n}', 0, FILE), /the header is not valid JSON \(.*\\n.*\); the file is corrupt/);
});

test('regression: a header entry that is an array says so, not "unsupported dtype undefined"', () => {
  throwsOwn(() => parseSafetensorsHeader('{"w":["F32",[],[0,4]]}', 4, FILE), /tensor "w": header entry must be an object with dtype, shape, data_offsets, got \["F32",\[\],\[0,4\]\]/);
});
