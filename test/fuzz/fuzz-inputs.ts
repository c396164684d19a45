/**
 * Shared pieces of the parser fuzz suite: seeds, structured-but-broken inputs (byte mutations of
 * valid files, JSON with wrong types, odd numbers, prototype keys, deep nesting), and the one
 * property every parser must keep: a valid object, or the project's own error naming the file.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import fc from 'fast-check';

/**
 * The seed of one fuzz test. Fixed so that `npm test` is reproducible; STEP_FUZZ_SEED explores
 * other inputs (e.g. `STEP_FUZZ_SEED=$RANDOM node scripts/run-tests.mjs test/fuzz/`).
 */
export function fuzzSeed(offset: number): number {
  const raw = process.env.STEP_FUZZ_SEED;
  const base = raw ? Number(raw) : 20250409;
  if (!Number.isSafeInteger(base)) throw new Error(`STEP_FUZZ_SEED must be an integer, got ${JSON.stringify(raw)}`);
  return (base + offset) | 0;
}

// ---------------------------------------------------------------- JSON with raw tokens

/** JSON text inserted verbatim: numbers JSON.stringify cannot write (1e999), deep nesting, bad tokens. */
export class RawJson {
  constructor(readonly text: string) {}
}

/** An object as an ordered list of pairs, so that a key may repeat. */
export class JsonObj {
  constructor(readonly pairs: readonly (readonly [string, JsonNode])[]) {}
}

export type JsonNode = null | boolean | number | string | RawJson | JsonObj | readonly JsonNode[];

export function toJsonText(n: JsonNode): string {
  if (n instanceof RawJson) return n.text;
  if (n instanceof JsonObj) return `{${n.pairs.map(([k, v]) => `${JSON.stringify(k)}:${toJsonText(v)}`).join(',')}}`;
  if (Array.isArray(n)) return `[${n.map(toJsonText).join(',')}]`;
  if (typeof n === 'number' && Object.is(n, -0)) return '-0';
  return JSON.stringify(n);
}

/** Numbers that break integer, range and size checks. */
export const nastyNumber: fc.Arbitrary<number> = fc.oneof(
  fc.constantFrom(0, -0, -1, 1, 2, 3, 0.5, -0.5, 1.5, 255, 256, 65535, 65536, 2 ** 31 - 1, 2 ** 31, 2 ** 32, 2 ** 32 + 1,
    2 ** 53 - 1, 2 ** 53, 2 ** 53 + 2, 2 ** 64, 1e21, 1e308, -1e308, Number.MIN_VALUE, Number.EPSILON),
  fc.integer({ min: -8, max: 300 }),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
);

/** Number-like tokens JSON.parse turns into Infinity or rounds, and some it refuses. */
export const rawNumberToken: fc.Arbitrary<RawJson> = fc.constantFrom(
  '1e999', '-1e999', '1E400', '1e-400', '-0.0', '1.0', '4e0', '9007199254740993', '18446744073709551616',
  'NaN', 'Infinity', '-Infinity', '0x10', '.5', '+1', '01', '1e', '-',
).map((t) => new RawJson(t));

/** Strings that are keys of Object.prototype, reserved names, empty, control characters, lone surrogates, long. */
export const nastyString: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom('', ' ', '__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf', 'isPrototypeOf',
    'propertyIsEnumerable', 'toLocaleString', '__metadata__', 'null', 'undefined', '\u0000', '\ud800', 'a\nb', '\u2028', '\u202e', '"', '\\'),
  fc.string({ maxLength: 10 }),
  fc.string({ unit: 'grapheme', maxLength: 6 }),
  fc.integer({ min: 100, max: 3000 }).map((n) => 'x'.repeat(n)),
);

/** Arrays or objects nested up to 30 000 deep (JSON.stringify of the deep ones overflows the stack). */
export const deepNesting: fc.Arbitrary<RawJson> = fc.tuple(fc.oneof({ arbitrary: fc.integer({ min: 1, max: 100 }), weight: 4 }, { arbitrary: fc.integer({ min: 10000, max: 30000 }), weight: 1 }), fc.boolean()).map(([d, arrays]) =>
  new RawJson(arrays ? '['.repeat(d) + ']'.repeat(d) : '{"a":'.repeat(d) + '0' + '}'.repeat(d)));

/** A long flat array (up to 5 000 items). */
export const longArray: fc.Arbitrary<RawJson> = fc.tuple(fc.integer({ min: 200, max: 5000 }), fc.constantFrom('1', '0', '-1', '"a"', '[]'))
  .map(([n, item]) => new RawJson(`[${`${item},`.repeat(n - 1)}${item}]`));

/** Any JSON value of a wrong or borderline kind. */
export const nastyValue: fc.Arbitrary<JsonNode> = fc.letrec<{ v: JsonNode }>((tie) => ({
  v: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    { arbitrary: fc.constant(null), weight: 2 }, { arbitrary: fc.boolean(), weight: 2 }, { arbitrary: nastyNumber, weight: 6 },
    { arbitrary: rawNumberToken, weight: 3 }, { arbitrary: nastyString, weight: 4 },
    { arbitrary: fc.array(tie('v'), { maxLength: 4 }), weight: 3 },
    { arbitrary: fc.array(fc.tuple(nastyString, tie('v')), { maxLength: 3 }).map((p) => new JsonObj(p)), weight: 3 },
    { arbitrary: deepNesting, weight: 1 }, { arbitrary: longArray, weight: 1 },
  ),
})).v;

/** Usually `good`, sometimes a nasty value, sometimes absent (undefined: the caller leaves the key out). */
export function mostly<T extends JsonNode>(good: fc.Arbitrary<T>, goodWeight = 3): fc.Arbitrary<JsonNode | undefined> {
  return fc.oneof({ arbitrary: good, weight: goodWeight }, { arbitrary: nastyValue, weight: 1 }, { arbitrary: fc.constant(undefined), weight: 1 });
}

/** An object from optional fields (undefined ones left out), with a few extra, repeated or prototype keys. */
export function objectOf(fields: Record<string, fc.Arbitrary<JsonNode | undefined>>): fc.Arbitrary<JsonObj> {
  const keys = Object.keys(fields);
  const extra = fc.array(fc.tuple(fc.oneof(nastyString, fc.constantFrom(...keys)), nastyValue), { maxLength: 2 });
  return fc.tuple(fc.tuple(...keys.map((k) => fields[k]!)), extra, fc.boolean()).map(([values, more, extraFirst]) => {
    const pairs: [string, JsonNode][] = [];
    values.forEach((v, i) => { if (v !== undefined) pairs.push([keys[i]!, v]); });
    return new JsonObj(extraFirst ? [...more, ...pairs] : [...pairs, ...more]);
  });
}

// ---------------------------------------------------------------- byte mutations

/** Integers that break length and count fields, as (value, width in bytes) written little-endian. */
const FIELD_VALUES: readonly bigint[] = [0n, 1n, 7n, 8n, 255n, 1023n, 1024n, 2n ** 31n - 1n, 2n ** 31n, 2n ** 32n - 1n,
  2n ** 53n, 2n ** 53n + 1n, 2n ** 63n, 2n ** 64n - 1n, 100n * 1024n * 1024n, 100n * 1024n * 1024n + 1n];

type Mutation =
  | { kind: 'flip'; at: number; bit: number }
  | { kind: 'set'; at: number; value: number }
  | { kind: 'truncate'; at: number }
  | { kind: 'delete'; at: number; len: number }
  | { kind: 'insert'; at: number; bytes: Uint8Array }
  | { kind: 'duplicate'; at: number; len: number; to: number }
  | { kind: 'splice'; at: number; from: number }
  | { kind: 'field'; at: number; width: 4 | 8; value: bigint; delta: number };

/** Positions near the start (where the length/count fields live) more often than elsewhere. */
const position = fc.oneof(fc.constantFrom(0, 4, 8, 12), fc.nat({ max: 1 << 20 }));

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: position, bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ kind: fc.constant('set' as const), at: position, value: fc.oneof(fc.constantFrom(0, 0xff, 0x7f, 0x80, 0x22, 0x5b, 0x5d, 0x7b, 0x7d, 0x2d, 0x30, 0x39, 0xc0, 0xed), fc.nat({ max: 255 })) }),
  fc.record({ kind: fc.constant('truncate' as const), at: position }),
  fc.record({ kind: fc.constant('delete' as const), at: position, len: fc.integer({ min: 1, max: 64 }) }),
  fc.record({ kind: fc.constant('insert' as const), at: position, bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }) }),
  fc.record({ kind: fc.constant('duplicate' as const), at: position, len: fc.integer({ min: 1, max: 64 }), to: position }),
  fc.record({ kind: fc.constant('splice' as const), at: position, from: position }),
  fc.record({ kind: fc.constant('field' as const), at: position, width: fc.constantFrom(4 as const, 8 as const), value: fc.constantFrom(...FIELD_VALUES), delta: fc.integer({ min: -2, max: 2 }) }),
);

function applyMutation(bytes: Uint8Array, m: Mutation, other: Uint8Array): Uint8Array {
  const n = bytes.length;
  const at = n === 0 ? 0 : m.at % (n + 1);
  switch (m.kind) {
    case 'flip': case 'set': {
      if (n === 0) return bytes;
      const out = bytes.slice();
      const i = at % n;
      out[i] = m.kind === 'flip' ? out[i]! ^ (1 << m.bit) : m.value;
      return out;
    }
    case 'truncate': return bytes.slice(0, at);
    case 'delete': return concat(bytes.subarray(0, at), bytes.subarray(at + m.len));
    case 'insert': return concat(bytes.subarray(0, at), m.bytes, bytes.subarray(at));
    case 'duplicate': {
      const piece = bytes.slice(at, at + m.len), to = n === 0 ? 0 : m.to % (n + 1);
      return concat(bytes.subarray(0, to), piece, bytes.subarray(to));
    }
    case 'splice': return concat(bytes.subarray(0, at), other.subarray(other.length === 0 ? 0 : m.from % (other.length + 1)));
    case 'field': {
      const out = bytes.length >= at + m.width ? bytes.slice() : concat(bytes, new Uint8Array(at + m.width - bytes.length));
      let v = BigInt.asUintN(8 * m.width, m.value + BigInt(m.delta));
      for (let i = 0; i < m.width; i++, v >>= 8n) out[at + i] = Number(v & 0xffn);
      return out;
    }
  }
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.length; }
  return out;
}

/** A valid file broken by 1 to 4 mutations (byte flips, truncation, splicing with another valid file, ...). */
export function mutated(valid: fc.Arbitrary<Uint8Array>): fc.Arbitrary<Uint8Array> {
  return fc.tuple(valid, valid, fc.array(mutation, { minLength: 1, maxLength: 4 }))
    .map(([bytes, other, ms]) => ms.reduce((b, m) => applyMutation(b, m, other), bytes));
}

// ---------------------------------------------------------------- the property

/** What a parser may do with any input: return, or throw `errorClass` with one line naming `file`. */
export function checkOwnError(e: unknown, errorClass: abstract new (...args: never[]) => Error, file: string): void {
  if (!(e instanceof errorClass)) {
    const what = e instanceof Error ? `${e.constructor.name}: ${e.message.slice(0, 300)}` : String(e);
    assert.fail(`expected a ${errorClass.name} or a result, got ${what}`);
  }
  assert.ok(e.message.includes(file), `the error must name the file ${file}: ${e.message.slice(0, 300)}`);
  assert.ok(!/[\n\r\u2028\u2029]/.test(e.message), `the error must be one line: ${JSON.stringify(e.message.slice(0, 300))}`);
  assert.ok(e.message.length <= 1500 + file.length, `the error must be short, got ${e.message.length} chars: ${e.message.slice(0, 200)}...`);
}

/** Each input gets this long; far more means a hang or a huge allocation, not a slow machine. */
const CASE_LIMIT_MS = 3000;

/** Runs `parse`; returns its result, or undefined after checking the error it threw. */
export function parsedOrOwnError<T>(parse: () => T, errorClass: abstract new (...args: never[]) => Error, file: string): T | undefined {
  const t0 = performance.now();
  try {
    return parse();
  } catch (e) {
    checkOwnError(e, errorClass, file);
    return undefined;
  } finally {
    assert.ok(performance.now() - t0 < CASE_LIMIT_MS, `one input took ${Math.round(performance.now() - t0)} ms`);
  }
}

export async function parsedOrOwnErrorAsync<T>(parse: () => Promise<T>, errorClass: abstract new (...args: never[]) => Error, file: string): Promise<T | undefined> {
  const t0 = performance.now();
  try {
    return await parse();
  } catch (e) {
    checkOwnError(e, errorClass, file);
    return undefined;
  } finally {
    assert.ok(performance.now() - t0 < CASE_LIMIT_MS, `one input took ${Math.round(performance.now() - t0)} ms`);
  }
}

/** A fresh temp folder for this test file, removed when its tests end. */
export function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), `${prefix}-`));
  after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/**
 * Counts parsed and refused inputs, so that a fuzz test also fails when its generator stops
 * reaching one side (only syntax errors, or only valid files, test little).
 */
export class Tally {
  parsed = 0;
  refused = 0;

  note<T>(result: T | undefined): T | undefined {
    if (result === undefined) this.refused++;
    else this.parsed++;
    return result;
  }

  /** At least `minParsed` and `minRefused` of the inputs (fractions) went each way. */
  check(minParsed: number, minRefused: number): void {
    const n = this.parsed + this.refused;
    assert.ok(this.parsed >= minParsed * n, `only ${this.parsed} of ${n} inputs parsed; the generator no longer reaches valid files`);
    assert.ok(this.refused >= minRefused * n, `only ${this.refused} of ${n} inputs were refused; the generator no longer breaks files`);
  }
}
