import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import type { Tensor } from '../../index.js';
import { CpuBackend, DTypeError, f32ToF16Bits, fromArray, scope } from '../../index.js';
import { loadSafetensors, openSafetensors, SafetensorsError, saveSafetensors } from '../../engine/safetensors.js';
import { testBothBackends } from '../helpers/backends.js';

const dir = mkdtempSync(join(tmpdir(), 'safetensors-test-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let fileCount = 0;
const freshPath = () => join(dir, `t${fileCount++}.safetensors`);

// f16 values that exercise every class: zeros of both signs, subnormals, the largest finite, infinities.
const F16_VALUES = [0, -0, 1, -2.5, 65504, -65504, 2 ** -24, -(2 ** -14), 0.0999755859375, Infinity, -Infinity, 1 / 3];

/** Bits of each value as the dtype stores it (f16 via its 16 bits, so -0 and 0 differ). */
function storedBits(values: ArrayLike<number>, dtype: string): number[] {
  if (dtype === 'f16') return Array.from(values, (v) => f32ToF16Bits(v));
  const f64 = new Float64Array(1);
  const u = new Uint32Array(f64.buffer);
  return Array.from(values, (v) => { f64[0] = v; return u[0]! * 2 ** 32 + u[1]!; });
}

function makeTensors(b: { name: string }): Map<string, Tensor> {
  const m = new Map<string, Tensor>();
  m.set('model.layers.0.self_attn.q_proj.weight', fromArray([[1.5, -2, 3.25], [0.1, -0, 1e-30]], undefined, { label: 'q' }));
  m.set('half', fromArray(F16_VALUES, [3, 4], { dtype: 'f16' }));
  m.set('ids', fromArray(new Int32Array([2 ** 31 - 1, -(2 ** 31), 0, 7])));
  m.set('scalar', fromArray(42));
  m.set('empty', fromArray([], [0, 3]));
  if (b.name === 'cpu') m.set('double', fromArray([Math.PI, -1e-300, 1e300], [3], { dtype: 'f64' }));
  return m;
}

testBothBackends('safetensors: round trip of f32, f16, i32, f64 (cpu), scalars and empty tensors, bit for bit', async (b) => {
  await scope(async () => {
    const path = freshPath();
    const src = makeTensors(b);
    await saveSafetensors(path, src, { step: '12', note: 'ünïcode ✓' });
    const { tensors, metadata } = await loadSafetensors(path, { category: 'parameter' });
    assert.deepEqual(metadata, { step: '12', note: 'ünïcode ✓' });
    assert.deepEqual([...tensors.keys()], [...src.keys()]);
    for (const [name, t] of src) {
      const back = tensors.get(name)!;
      assert.equal(back.dtype, t.dtype, name);
      assert.deepEqual(back.shape, t.shape, name);
      assert.equal(back.backend, b, `${name} is on the requested device`);
      assert.equal(back.category, 'parameter');
      assert.equal(back.label, name);
      assert.deepEqual(storedBits(await back.toArray(), t.dtype), storedBits(await t.toArray(), t.dtype), name);
    }
  });
});

/** A parser written from the format description alone, independent of engine/safetensors.ts. */
function handParse(bytes: Buffer): { n: number; header: Record<string, any>; data: Buffer } {
  const n = Number(bytes.readBigUInt64LE(0));
  const text = bytes.subarray(8, 8 + n).toString('utf8');
  return { n, header: JSON.parse(text), data: bytes.subarray(8 + n) };
}

testBothBackends('safetensors: the file parses with a hand parser (layout, padding, offsets, raw little-endian data)', async (b) => {
  await scope(async () => {
    const path = freshPath();
    const tensors = { w: fromArray([1, -2, 0.5]), h: fromArray([1, -0, 65504], [3], { dtype: 'f16' }), i: fromArray(new Int32Array([5, -6])) };
    // the bytes below are read from this backend's buffers (the default device of this copy of the test)
    for (const t of Object.values(tensors)) assert.equal(t.backend, b, `${t.describe()} lives on the backend under test`);
    await saveSafetensors(path, tensors, { k: 'v' });
    const bytes = readFileSync(path);
    const { n, header, data } = handParse(bytes);
    assert.equal((8 + n) % 8, 0, 'data starts 8-byte aligned');
    assert.match(bytes.subarray(8, 8 + n).toString('utf8'), /^\{.*\} *$/, 'JSON padded with spaces');
    assert.deepEqual(header.__metadata__, { k: 'v' });
    assert.deepEqual(header.w, { dtype: 'F32', shape: [3], data_offsets: [0, 12] });
    assert.deepEqual(header.h, { dtype: 'F16', shape: [3], data_offsets: [12, 18] });
    assert.deepEqual(header.i, { dtype: 'I32', shape: [2], data_offsets: [18, 26] });
    assert.equal(data.length, 26, 'no bytes after the last tensor');
    assert.deepEqual([0, 4, 8].map((o) => data.readFloatLE(o)), [1, -2, 0.5]);
    assert.deepEqual([12, 14, 16].map((o) => data.readUInt16LE(o)), [0x3c00, 0x8000, 0x7bff]);
    assert.deepEqual([18, 22].map((o) => data.readInt32LE(o)), [5, -6]);
  });
});

testBothBackends('safetensors: lazy reader and name subsets load only what is asked', async (b) => {
  await scope(async () => {
    const path = freshPath();
    await saveSafetensors(path, { a: fromArray([1, 2]), b: fromArray([[3], [4]]), c: fromArray([5]) });
    const before = b.memory().live.temporary;
    const reader = await openSafetensors(path);
    try {
      assert.deepEqual(reader.names, ['a', 'b', 'c']);
      assert.deepEqual(reader.entry('b'), { dtype: 'F32', shape: [2, 1], dataOffsets: [8, 16] });
      assert.equal(b.memory().live.temporary, before, 'opening allocates nothing on the device');
      const t = await reader.tensor('b');
      assert.deepEqual([...await t.toArray()], [3, 4]);
      assert.deepEqual(t.shape, [2, 1]);
      assert.throws(() => reader.entry('zz'), (e: unknown) => e instanceof SafetensorsError && e.message.includes('no tensor "zz"') && e.message.includes('"a", "b", "c"'));
    } finally {
      await reader.close();
    }
    const { tensors } = await loadSafetensors(path, { names: ['c', 'a'] });
    assert.deepEqual([...tensors.keys()], ['c', 'a']);
    await assert.rejects(loadSafetensors(path, { names: ['a', 'nope'] }), /no tensor "nope"/);
    await assert.rejects(loadSafetensors(path, { names: ['a', 'a'] }), /a name appears twice/);
  });
});

testBothBackends('safetensors: f64 needs a cast on WebGPU; BF16 files read exactly as f32', async (b) => {
  await scope(async () => {
    const cpu = new CpuBackend();
    const path = freshPath();
    await saveSafetensors(path, { d: fromArray([0.1, 2.5], [2], { dtype: 'f64', device: cpu }) });
    if (b.name === 'webgpu') {
      await assert.rejects(loadSafetensors(path), (e: unknown) => e instanceof DTypeError && /f64 is not supported by WebGPU/.test(e.message));
    }
    const { tensors } = await loadSafetensors(path, { dtype: 'f32' });
    assert.deepEqual([...await tensors.get('d')!.toArray()], [Math.fround(0.1), 2.5]);
    // bf16 is the top 16 bits of an f32: 0x3fc0 = 1.5, 0xc020 = -2.5, 0x3dcd = 0.10009765625
    const header = Buffer.from(JSON.stringify({ x: { dtype: 'BF16', shape: [3], data_offsets: [0, 6] } }));
    const data = Buffer.alloc(6);
    [0x3fc0, 0xc020, 0x3dcd].forEach((v, i) => data.writeUInt16LE(v, 2 * i));
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(header.length));
    const bf = freshPath();
    writeFileSync(bf, Buffer.concat([len, header, data]));
    const x = (await loadSafetensors(bf)).tensors.get('x')!;
    assert.equal(x.dtype, 'f32');
    assert.deepEqual([...await x.toArray()], [1.5, -2.5, 0.10009765625]);
  });
});

/** Writes a file from a header object (or raw header text) and data bytes; `lengthField` overrides N. */
function craft(header: unknown, data: Buffer, lengthField?: bigint): string {
  const text = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(lengthField ?? BigInt(text.length));
  const path = freshPath();
  writeFileSync(path, Buffer.concat([len, text, data]));
  return path;
}

test('safetensors: corrupt files fail with errors naming the file and the tensor', async () => {
  const cpu = new CpuBackend();
  const load = (path: string) => loadSafetensors(path, { device: cpu });
  const expectError = async (path: string, ...patterns: RegExp[]) => {
    await assert.rejects(load(path), (e: unknown) => {
      assert.ok(e instanceof SafetensorsError, `expected a SafetensorsError, got ${String(e)}`);
      assert.ok(e.message.includes(path), `names the file: ${e.message}`);
      for (const p of patterns) assert.match(e.message, p);
      return true;
    });
  };
  const ok = { w: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } };
  const tiny = freshPath();
  writeFileSync(tiny, Buffer.from([1, 2, 3]));
  await expectError(tiny, /3 bytes is too small/);
  await expectError(craft(ok, Buffer.alloc(8), 10n ** 12n), /header length field says 1000000000000 bytes/);
  await expectError(craft(ok, Buffer.alloc(0), 200n), /truncated or not a safetensors file/);
  await expectError(craft('{"w": {"dtype": "F32", ', Buffer.alloc(8)), /not valid JSON/);
  await expectError(craft('[1, 2]  ', Buffer.alloc(8)), /does not start with "\{"/);
  await expectError(craft({ w: { dtype: 'U8', shape: [2], data_offsets: [0, 2] } }, Buffer.alloc(2)), /tensor "w"/, /unsupported dtype "U8"/);
  await expectError(craft({ w: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }, Buffer.alloc(5)), /tensor "w"/, /data section but it holds only 5 bytes; the file is truncated/);
  await expectError(craft({ w: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, Buffer.alloc(8)), /tensor "w"/, /cover 8 bytes but F32 \[3\] needs 12/);
  await expectError(craft({ w: { dtype: 'F32', shape: [-1], data_offsets: [0, 8] } }, Buffer.alloc(8)), /tensor "w"/, /shape \[-1\]/);
  await expectError(craft({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } }, Buffer.alloc(12)),
    /tensor "b" bytes \[4, 12\) overlap tensor "a" bytes \[0, 8\)/);
  await expectError(craft({ __metadata__: { n: 3 }, ...ok }, Buffer.alloc(8)), /"__metadata__" value of "n" must be a string/);
  // A good file cut short: the last tensor's bytes are missing.
  const good = freshPath();
  await saveSafetensors(good, { a: fromArray([1, 2], [2], { device: cpu }), b: fromArray([3, 4], [2], { device: cpu }) });
  const bytes = readFileSync(good);
  const cut = freshPath();
  writeFileSync(cut, bytes.subarray(0, bytes.length - 3));
  await expectError(cut, /tensor "b"/, /truncated/);
  await assert.rejects(saveSafetensors(freshPath(), { __metadata__: fromArray([1], [1], { device: cpu }) }), /"__metadata__" is reserved/);
});

test('safetensors: a failed save leaves the old file untouched and no temp file behind', async () => {
  class FailingBackend extends CpuBackend {
    override async read(): Promise<never> { throw new Error('simulated read failure'); }
  }
  const cpu = new CpuBackend();
  const sub = mkdtempSync(join(dir, 'atomic-'));
  const path = join(sub, 'model.safetensors');
  await saveSafetensors(path, { a: fromArray([1, 2, 3], [3], { device: cpu }) });
  const original = readFileSync(path);
  const bad = fromArray([9, 9], [2], { device: new FailingBackend() });
  await assert.rejects(saveSafetensors(path, { a: fromArray([4, 5, 6], [3], { device: cpu }), b: bad }), /simulated read failure/);
  assert.deepEqual(readFileSync(path), original, 'the good file is unchanged');
  assert.deepEqual(readdirSync(sub), ['model.safetensors'], 'the temp file was removed');
  const disposed = fromArray([1], [1], { device: cpu });
  disposed.dispose();
  await assert.rejects(saveSafetensors(path, { x: disposed }), /saveSafetensors\(.*\) "x".*used after dispose/);
  assert.deepEqual(readFileSync(path), original);
});

// PyTorch interop: Debian's python has torch (not the safetensors package), so a hand parser in
// test/fixtures reads our file with torch.frombuffer and writes one back.
const PYTHON = '/usr/bin/python3';
const hasTorch = existsSync(PYTHON) && spawnSync(PYTHON, ['-c', 'import torch'], { encoding: 'utf8' }).status === 0;

test('safetensors: PyTorch reads our file and we read PyTorch\'s', { skip: hasTorch ? false : `${PYTHON} with torch not available (optional interop check)` }, async () => {
  const cpu = new CpuBackend();
  const src = join(dir, 'to-torch.safetensors'), back = join(dir, 'from-torch.safetensors');
  const values = {
    f: { values: [1.5, -2, 1e-3, 3e37], shape: [2, 2], dtype: 'f32' as const },
    h: { values: [0.1, -0, 65504 / 2, 2 ** -24], shape: [4], dtype: 'f16' as const },
    i: { values: [-7, 2 ** 30], shape: [2, 1], dtype: 'i32' as const },
    d: { values: [Math.E, -1e-300], shape: [2], dtype: 'f64' as const },
  };
  const tensors = new Map(Object.entries(values).map(([k, v]) => [k, fromArray(v.values, v.shape, { dtype: v.dtype, device: cpu })]));
  await saveSafetensors(src, tensors, { from: 'step-webgpu' });
  const script = new URL('../../../test/fixtures/read_safetensors.py', import.meta.url).pathname;
  const r = spawnSync(PYTHON, [script, src, back], { encoding: 'utf8' });
  assert.equal(r.status, 0, `python failed: ${r.stderr}`);
  const seen = JSON.parse(r.stdout) as { metadata: Record<string, string>; tensors: Record<string, { dtype: string; shape: number[]; values: number[] }> };
  assert.deepEqual(seen.metadata, { from: 'step-webgpu' });
  for (const [name, t] of tensors) {
    const expected = [...await t.toArray()];
    assert.deepEqual(seen.tensors[name]!.shape, [...t.shape], name);
    assert.deepEqual(seen.tensors[name]!.values, expected, `torch sees the same ${name}`);
  }
  const { tensors: fromTorch, metadata } = await loadSafetensors(back, { device: cpu });
  assert.match(metadata.writer!, /^torch /);
  for (const [name, t] of tensors) {
    const got = fromTorch.get(name)!;
    assert.equal(got.dtype, t.dtype);
    const expected = [...await t.toArray()].map((v) => (t.dtype === 'i32' ? v + 1 : v * 2));
    assert.deepEqual(storedBits(await got.toArray(), t.dtype), storedBits(expected, t.dtype), name);
  }
});
