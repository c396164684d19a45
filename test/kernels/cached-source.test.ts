import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cachedSource } from '../../kernels/wgsl.js';
import type { MatmulVariant } from '../../kernels/matmul-wgsl.js';
import { matmulSource } from '../../kernels/matmul-wgsl.js';

test('cachedSource generates each distinct source once and returns the same string object', () => {
  let calls = 0;
  const gen = cachedSource((kind: string, n: number) => { calls++; return `// ${kind} ${n}\n`.repeat(3); });
  const a = gen('x', 1);
  assert.equal(gen('x', 1), a);
  assert.equal(calls, 1, 'equal arguments reuse the source');
  assert.notEqual(gen('x', 2), a);
  assert.notEqual(gen('y', 1), a);
  assert.equal(calls, 3, 'different arguments generate again');
});

test('matmulSource: equal variants give the same source object (the pipeline lookup reuses its hash), others differ', () => {
  const v: MatmulVariant = {
    kind: 'subgroup', transA: false, transB: true, dtype: 'f32', rows: 32, cols: 4, subgroup: 16, lanes: 16, kStep: 4,
    vecA: true, vecB: false, texB: true, texStored: false, transC: false, vecC: true,
  };
  const s = matmulSource(v);
  assert.ok(Object.is(matmulSource({ ...v }), s));
  const other = matmulSource({ ...v, rows: 64 });
  assert.notEqual(other, s);
  assert.match(other, /acc63_0/, 'a 64-row variant has 64 rows of accumulators');
  assert.doesNotMatch(s, /acc32_0/);
});
