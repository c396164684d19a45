/**
 * The engine side of tables larger than one buffer: how rows split into blocks, the backends'
 * maxBufferBytes option, the row-block gather and scatter-add kernels, and safetensors files
 * written from (and read into) row blocks.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { CpuBackend, fromArray, initDevice, openSafetensors, saveSafetensors, zeros } from '../../index.js';
import { groupRowBlocks, markRowBlocks, rowBlockRanges } from '../../engine/row-blocks.js';
import { readRowBlocks } from '../../engine/safetensors.js';
import { gatherRowBlockInto, scatterAddRows } from '../../kernels/layout-rows.js';
import { freshWebGPU, testBothBackends } from '../helpers/backends.js';
import { createWebGPUBackend } from '../../engine/device.js';

test('rowBlockRanges: as few blocks as fit the f32 rows, the last one shorter; a row beyond the cap is refused', () => {
  assert.deepEqual(rowBlockRanges(301, 8, 4096, 't'), [[0, 128], [128, 128], [256, 45]]);
  assert.deepEqual(rowBlockRanges(256, 8, 4096, 't'), [[0, 128], [128, 128]]);
  assert.deepEqual(rowBlockRanges(10, 8, 2 ** 27, 't'), [[0, 10]], 'a table that fits stays whole');
  assert.deepEqual(rowBlockRanges(0, 8, 4096, 't'), [[0, 0]]);
  assert.deepEqual(rowBlockRanges(3, 8, 32, 't'), [[0, 1], [1, 1], [2, 1]], 'exactly one row per block');
  assert.throws(() => rowBlockRanges(3, 9, 32, 'emb'), /emb: one row of 9 elements needs 36 B in f32, beyond the device's largest buffer \(32 B\); a row cannot be split/);
});

test('groupRowBlocks: the blocks of one tensor become one entry; blocks out of order are refused', () => {
  const dev = new CpuBackend();
  const parts = [fromArray([1, 2], [1, 2], { device: dev }), fromArray([3, 4, 5, 6], [2, 2], { device: dev })];
  const other = fromArray([7], [1], { device: dev });
  markRowBlocks('w', parts);
  const grouped = groupRowBlocks([parts[0]!, parts[1]!, other], (t) => t, (t) => t.label || 'x');
  assert.deepEqual(grouped.map((g) => [g.name, g.parts.length]), [['w', 2], ['x', 1]]);
  assert.throws(() => groupRowBlocks([parts[1]!, parts[0]!], (t) => t, () => ''), /w: its 2 row blocks must be listed together and in order \(found block 1 at position 0\)/);
  assert.throws(() => groupRowBlocks([parts[0]!, other], (t) => t, () => ''), /w: its 2 row blocks must be listed together/);
});

test('backend option maxBufferBytes: caps the cpu backend, is passed by initDevice, and must be a size', async (t) => {
  assert.equal(new CpuBackend({ maxBufferBytes: 4096 }).maxBufferBytes, 4096);
  assert.equal((await initDevice('cpu', { maxBufferBytes: 1024 })).maxBufferBytes, 1024);
  assert.throws(() => new CpuBackend({ maxBufferBytes: 3 }), /backend option maxBufferBytes must be an integer of at least 16 bytes, got 3/);
  assert.throws(() => zeros([300], { device: new CpuBackend({ maxBufferBytes: 1024 }) }), /1200 bytes exceed the device's largest bindable buffer \(1024 bytes\)/);
  const plain = await freshWebGPU(t);
  if (!plain) return;
  const capped = await createWebGPUBackend({ maxBufferBytes: 4096 });
  assert.equal(capped.maxBufferBytes, 4096);
  assert.ok(plain.maxBufferBytes > 4096, 'the device default stays without the option');
  assert.throws(() => zeros([2048], { device: capped }), /8192 bytes exceed the device's largest bindable buffer \(4096 bytes\)/);
});

testBothBackends('gatherRowBlockInto and scatterAddRows with a row block: only the ids the block holds', async (b) => {
  // a [5, 2] table split as rows 0-1 and 2-4; ids from both blocks
  const table = [10, 11, 20, 21, 30, 31, 40, 41, 50, 51];
  const lo = fromArray(table.slice(0, 4), [2, 2], { device: b }), hi = fromArray(table.slice(4), [3, 2], { device: b });
  const ids = fromArray([4, 0, 2, 4, 1], [5], { dtype: 'i32', device: b });
  const out = fromArray(new Array(10).fill(-1), [5, 2], { device: b });
  gatherRowBlockInto(out, hi, ids, { firstRow: 2, totalRows: 5 });
  assert.deepEqual([...await out.toArray()], [50, 51, -1, -1, 30, 31, 50, 51, -1, -1], 'rows of the other block left alone');
  gatherRowBlockInto(out, lo, ids, { firstRow: 0, totalRows: 5 });
  assert.deepEqual([...await out.toArray()], [50, 51, 10, 11, 30, 31, 50, 51, 20, 21], 'both blocks: the whole lookup');
  const g = fromArray([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], [5, 2], { device: b });
  for (const method of ['links', 'sort'] as const) { // WebGPU's two ways of grouping ids; the cpu backend has one
    const dHi = scatterAddRows(g, ids, 3, { rowBlock: { firstRow: 2, totalRows: 5 }, method });
    assert.deepEqual([...await dHi.toArray()], [5, 6, 0, 0, 1 + 7, 2 + 8], `${method}: ids 2 and 4 (twice) add into rows 0 and 2 of the block`);
    const dLo = scatterAddRows(g, ids, 2, { rowBlock: { firstRow: 0, totalRows: 5 }, method });
    assert.deepEqual([...await dLo.toArray()], [3, 4, 9, 10], method);
  }
  assert.throws(() => scatterAddRows(g, ids, 3, { rowBlock: { firstRow: 3, totalRows: 5 } }), /scatterAddRows: a block of 3 rows cannot start at row 3 of 5/);
  if (b.name === 'cpu') {
    const bad = fromArray([5], [1], { dtype: 'i32', device: b });
    assert.throws(() => gatherRowBlockInto(zeros([1, 2], { device: b }), lo, bad, { firstRow: 0, totalRows: 5 }), /gatherRows: id 5 at position 0 is outside the table's 5 rows/);
  }
});

test('safetensors: row blocks are written as one tensor (the same bytes) and read back block by block', async () => {
  const dev = new CpuBackend();
  const dir = mkdtempSync(join(tmpdir(), 'row-blocks-st-'));
  try {
    const values = Array.from({ length: 15 }, (_, i) => i + 0.5);
    const whole = fromArray(values, [5, 3], { device: dev });
    const parts = [fromArray(values.slice(0, 6), [2, 3], { device: dev }), fromArray(values.slice(6), [3, 3], { device: dev })];
    await saveSafetensors(join(dir, 'whole.safetensors'), { w: whole, b: fromArray([1], [1], { device: dev }) });
    await saveSafetensors(join(dir, 'parts.safetensors'), new Map<string, typeof whole | typeof parts>([['w', parts], ['b', fromArray([1], [1], { device: dev })]]));
    assert.ok(readFileSync(join(dir, 'whole.safetensors')).equals(readFileSync(join(dir, 'parts.safetensors'))));
    const reader = await openSafetensors(join(dir, 'whole.safetensors'));
    try {
      assert.deepEqual(Array.from(await reader.rowValues('w', 1, 2)), values.slice(3, 9));
      await assert.rejects(reader.rowValues('w', 4, 2), /rows \[4, 6\) of tensor "w" are outside its 5 rows/);
      const into = [zeros([3, 3], { device: dev }), zeros([2, 3], { device: dev })];
      await readRowBlocks(reader, 'w', into);
      assert.deepEqual([...await into[0]!.toArray(), ...await into[1]!.toArray()], values);
    } finally {
      await reader.close();
    }
    await assert.rejects(saveSafetensors(join(dir, 'bad.safetensors'), { w: [parts[0]!, fromArray([1, 2], [1, 2], { device: dev })] }),
      /"w": row blocks must share the dtype and every dim but the first/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
