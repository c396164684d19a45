import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Tensor } from '../../index.js';
import { fromArray } from '../../index.js';
import * as A from '../../autograd/index.js';

const rnd = (n: number, seed: number, lo = -2, hi = 2) => Array.from({ length: n }, (_, i) => lo + (((Math.sin(seed * 7919 + i * 104.729) * 43758.5453) % 1) + 1) % 1 * (hi - lo));
const inp = (shape: number[], seed: number, lo = -2, hi = 2) => ({ values: rnd(shape.reduce((a, b) => a * b, 1), seed, lo, hi), shape });

async function check(name: string, fn: (...xs: Tensor[]) => Tensor, inputs: { values: number[]; shape: number[]; requiresGrad?: boolean; dtype?: 'f64' | 'i32' }[], tol: { rtol?: number; atol?: number } = {}) {
  const r = await A.gradcheck(fn, inputs, tol);
  assert.ok(r.ok, `${name}: max rel error ${r.maxRelError} at ${JSON.stringify(r.worst)}`);
}

test('gradcheck: matmul with every transpose combination, batched and linear-layer forms', async () => {
  await check('A B', (a, b) => A.matmul(a, b), [inp([3, 4], 1), inp([4, 2], 2)]);
  await check('A^T B', (a, b) => A.matmul(a, b, { transA: true }), [inp([4, 3], 3), inp([4, 2], 4)]);
  await check('A B^T', (a, b) => A.matmul(a, b, { transB: true }), [inp([3, 4], 5), inp([2, 4], 6)]);
  await check('A^T B^T', (a, b) => A.matmul(a, b, { transA: true, transB: true }), [inp([4, 3], 7), inp([2, 4], 8)]);
  await check('linear [2,3,4] x W^T', (x, w) => A.matmul(x, w, { transB: true }), [inp([2, 3, 4], 9), inp([5, 4], 10)]);
  await check('batched attention q k^T', (q, k) => A.matmul(q, k, { transB: true }), [inp([2, 3, 4], 11), inp([2, 3, 4], 12)]);
});

test('gradcheck: reductions', async () => {
  await check('sum all', (x) => A.sum(x), [inp([2, 3], 1)]);
  await check('sum axis 1 keepdim', (x) => A.sum(x, { axis: 1, keepdim: true }), [inp([2, 3, 2], 2)]);
  await check('mean axes [0, 2]', (x) => A.mean(x, { axis: [0, -1] }), [inp([2, 3, 2], 3)]);
  await check('max axis -1', (x) => A.max(x, { axis: -1 }), [inp([3, 4], 4)]);
  await check('sumOfSquares', (x) => A.sumOfSquares(x), [inp([5], 5)]);
});

test('gradcheck: layout ops', async () => {
  await check('reshape', (x) => A.mul(A.reshape(x, [3, 2]), fromArray([1, 2], [2], { dtype: 'f64', device: x.backend })), [inp([2, 3], 1)]);
  await check('transpose', (x) => A.transpose(x, 0, 2), [inp([2, 3, 2], 2)]);
  await check('permute', (x) => A.permute(x, [1, 2, 0]), [inp([2, 3, 2], 3)]);
  await check('slice', (x) => A.slice(x, { axis: 1, start: 1, end: 3 }), [inp([2, 4], 4)]);
  await check('slice strided, two axes', (x) => A.slice(x, [{ axis: 0, start: 1 }, { axis: 1, start: 0, end: 5, step: 2 }]), [inp([3, 5], 12)]);
  await check('slice begin/size', (x) => A.slice(x, [1, 0], [1, -1]), [inp([3, 4], 13)]);
  await check('concat', (a, b) => A.concat([a, b], 0), [inp([1, 3], 5), inp([2, 3], 6)]);
  await check('gatherRows', (t, ids) => A.gatherRows(t, ids), [inp([4, 3], 7), { values: [1, 3, 1, 0], shape: [2, 2], dtype: 'i32', requiresGrad: false }]);
});

test('gradcheck: fused LLaMA ops', async () => {
  await check('softmax', (x) => A.softmax(x), [inp([2, 5], 1)]);
  await check('causal softmax', (x) => A.softmax(x, { causal: true }), [inp([2, 3, 3], 2)]);
  await check('crossEntropy', (l, t) => A.crossEntropy(l, t), [inp([4, 5], 3), { values: [0, 4, -100, 2], shape: [4], dtype: 'i32', requiresGrad: false }]);
  await check('rmsNorm', (x, w) => A.rmsNorm(x, w, 1e-5), [inp([3, 4], 4), inp([4], 5, 0.5, 1.5)]);
  await check('rope', (x) => A.rope(x, { theta: 10000 }), [inp([1, 3, 2, 4], 6)]);
  await check('swiglu', (g, u) => A.swiglu(g, u), [inp([2, 3], 7), inp([2, 3], 8)]);
});
