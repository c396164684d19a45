import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { Tensor } from '../../index.js';
import { CpuBackend, DisposedError, fromArray, scope, setDevice, StepError, ShapeError } from '../../index.js';
import * as A from '../../autograd/index.js';
import type { GradNode } from '../../autograd/index.js';

const cpu = new CpuBackend();
const f64 = (values: number[], shape: number[]) => ({ values, shape });
const rnd = (n: number, seed: number, lo = -2, hi = 2) => Array.from({ length: n }, (_, i) => lo + (((Math.sin(seed * 7919 + i * 104.729) * 43758.5453) % 1) + 1) % 1 * (hi - lo));

async function check(name: string, fn: (...xs: Tensor[]) => Tensor, inputs: { values: number[]; shape: number[] }[]) {
  const r = await A.gradcheck(fn, inputs);
  assert.ok(r.ok, `${name}: max rel error ${r.maxRelError} at ${JSON.stringify(r.worst)}`);
}

test('gradcheck: every elementwise op, with broadcasting', async () => {
  const x = f64(rnd(6, 1), [2, 3]), pos = f64(rnd(6, 2, 0.5, 3), [2, 3]), row = f64(rnd(3, 3), [3]), col = f64(rnd(2, 4, 0.5, 2), [2, 1]);
  await check('add', (a, b) => A.add(a, b), [x, row]);
  await check('sub', (a, b) => A.sub(a, b), [col, x]);
  await check('mul', (a, b) => A.mul(a, b), [x, col]);
  await check('div', (a, b) => A.div(a, b), [x, col]);
  await check('maximum', (a, b) => A.maximum(a, b), [x, row]);
  await check('minimum', (a, b) => A.minimum(a, b), [x, row]);
  await check('neg', (a) => A.neg(a), [x]);
  await check('exp', (a) => A.exp(a), [x]);
  await check('log', (a) => A.log(a), [pos]);
  await check('sqrt', (a) => A.sqrt(a), [pos]);
  await check('rsqrt', (a) => A.rsqrt(a), [pos]);
  await check('square', (a) => A.square(a), [x]);
  await check('abs', (a) => A.abs(a), [x]);
  await check('sigmoid', (a) => A.sigmoid(a), [x]);
  await check('silu', (a) => A.silu(a), [x]);
  await check('tanh', (a) => A.tanh(a), [x]);
  await check('relu', (a) => A.relu(a), [x]);
  await check('pow 3', (a) => A.pow(a, 3), [x]);
  await check('pow -1.5', (a) => A.pow(a, -1.5), [pos]);
  await check('scalar forms', (a) => A.rdiv(A.rsub(A.div(A.mul(A.add(A.sub(a, 0.3), 2), -1.5), 4), 1), 2), [x]);
  await check('maximum scalar', (a) => A.minimum(A.maximum(a, -0.5), 0.7), [x]);
  await check('where', (a, b) => A.where(fromArray([1, 0, 1], [3], { dtype: 'i32', device: a.backend }), a, b), [x, row]);
});

test('backward: accumulates into .grad, visits shared subgraphs once, frees saved tensors', async () => {
  setDevice(cpu);
  const x = fromArray([1, 2, 3]);
  x.requiresGrad = true;
  await scope(async () => {
    const y = A.mul(x, x); // x used twice
    const z = A.add(A.mul(y, 2), y); // y shared: z = 3x^2
    const loss = A.mul(A.add(z, 0), fromArray([1, 1, 1]));
    const before = cpu.memory().live.activation;
    assert.ok(before > 0, 'saved tensors are counted as activations');
    A.backward(loss, { grad: fromArray([1, 1, 1]) });
    assert.deepEqual([...await x.grad!.toArray()], [6, 12, 18]);
    assert.equal((y.gradNode as GradNode).savedCount, 0, 'saved tensors freed after backward');
    assert.throws(() => A.backward(loss, { grad: fromArray([1, 1, 1]) }), /already freed by an earlier backward\(\); pass \{ retainGraph: true \}/);
  });
  assert.equal(x.grad!.category, 'gradient');
  await scope(async () => {
    A.backward(A.mul(x, 2), { grad: fromArray([1, 1, 1]) });
  });
  assert.deepEqual([...await x.grad!.toArray()], [8, 14, 20], 'gradients accumulate across backward calls');
  assert.equal(cpu.memory().live.activation, 0, 'nothing saved remains');
  assert.equal(cpu.memory().live.temporary, 12, 'only x itself');
  x.grad!.dispose();
  x.dispose();
});

test('backward: errors for non-scalars without grad, no graph, tensors outside the graph, and late backward', async () => {
  setDevice(cpu);
  await scope(async () => {
    const x = fromArray([1, 2]);
    x.requiresGrad = true;
    const y = A.exp(x);
    assert.throws(() => A.backward(y), (e: unknown) => e instanceof ShapeError && /has 2 elements; pass \{ grad \}/.test(e.message));
    assert.throws(() => A.backward(fromArray([1])), /does not require grad/);
    const other = fromArray([3]);
    other.requiresGrad = true;
    assert.throws(() => A.grad(A.mul(A.exp(x), 1), [other], { grad: fromArray([1, 1]) }), /is not part of the graph/);
    assert.throws(() => A.backward(y, { grad: fromArray([1, 1, 1]) }), /output gradient is \[3\]/);
    const frozen = fromArray([5]);
    assert.throws(() => A.grad(A.mul(x, frozen), [frozen], { grad: fromArray([1, 1]) }), /does not require grad/);
    // noGrad records nothing
    const n = A.noGrad(() => A.mul(x, x));
    assert.equal(n.requiresGrad, false);
  });
  const x = fromArray([1, 2]);
  x.requiresGrad = true;
  // the graph lives as long as its output: backward after the forward's scope ended works (as in PyTorch)
  const y = await scope(async () => A.exp(A.mul(x, 3)));
  A.backward(y, { grad: fromArray([1, 1]) });
  assert.deepEqual([...await x.grad!.toArray()].map((v) => +v.toFixed(3)), [3 * Math.exp(3), 3 * Math.exp(6)].map((v) => +v.toFixed(3)));
  y.dispose();
  assert.throws(() => A.backward(y, { grad: fromArray([1, 1]) }), (e: unknown) => e instanceof DisposedError && /backward: tensor .* was used after dispose\(\)/.test(e.message));
  x.grad!.dispose(); x.dispose();
});

test('frozen operands: nothing is saved that only their gradient would need', async () => {
  setDevice(cpu);
  await scope(async () => {
    const x = fromArray([1, 2, 3]);
    x.requiresGrad = true;
    const wFrozen = fromArray([4, 5, 6], [3], { category: 'frozen' });
    const y = A.mul(x, wFrozen); // dx needs w; dw (not wanted) would need x
    const node = y.gradNode as GradNode;
    assert.equal(node.savedCount, 1);
    const xFrozen = fromArray([1, 2, 3]);
    const w = fromArray([4, 5, 6]);
    w.requiresGrad = true;
    assert.equal((A.mul(xFrozen, w).gradNode as GradNode).savedCount, 1);
    assert.equal(cpu.memory().live.frozen, 12, 'a saved frozen weight keeps its category');
    const [gw] = A.grad(A.mul(xFrozen, w), [w], { grad: fromArray([1, 1, 1]) });
    assert.deepEqual([...await gw!.toArray()], [1, 2, 3]);
    assert.equal(w.grad, null, 'grad() leaves .grad alone');
  });
});

/** Random expression trees over random broadcastable shapes: autograd = finite differences. */
type Expr = { op: string; args: Expr[] } | { leaf: number };
const UNARY_SAFE = ['neg', 'exp', 'square', 'sigmoid', 'silu', 'tanh', 'sqrtabs', 'scale'];
const BINARY_OPS = ['add', 'sub', 'mul', 'div'];
const exprArb: fc.Arbitrary<Expr> = fc.letrec((tie) => ({
  node: fc.oneof({ depthSize: 'small' },
    fc.record({ leaf: fc.nat({ max: 2 }) }),
    fc.record({ op: fc.constantFrom(...UNARY_SAFE), args: fc.tuple(tie('node')) }),
    fc.record({ op: fc.constantFrom(...BINARY_OPS), args: fc.tuple(tie('node'), tie('node')) })) as fc.Arbitrary<Expr>,
})).node;

function evalExpr(e: Expr, xs: Tensor[]): Tensor {
  if ('leaf' in e) return xs[e.leaf]!;
  const a = evalExpr(e.args[0]!, xs);
  switch (e.op) {
    case 'neg': return A.neg(a);
    case 'exp': return A.exp(A.mul(a, 0.3));
    case 'square': return A.square(a);
    case 'sigmoid': return A.sigmoid(a);
    case 'silu': return A.silu(a);
    case 'tanh': return A.tanh(a);
    case 'sqrtabs': return A.sqrt(A.add(A.square(a), 1));
    case 'scale': return A.mul(a, 1.7);
  }
  const b = evalExpr(e.args[1]!, xs);
  switch (e.op) {
    case 'add': return A.add(a, b);
    case 'sub': return A.sub(a, b);
    case 'mul': return A.mul(a, b);
    default: return A.div(a, A.add(A.square(b), 1)); // keep denominators away from 0
  }
}

test('property: random compositions of ops over broadcastable shapes pass gradcheck', async () => {
  const shapes = fc.constantFrom<number[][]>([[2, 3], [3], [2, 1]], [[4], [1], [4]], [[2, 2, 2], [2, 1, 2], [1]], [[3, 1], [1, 3], [3, 3]]);
  await fc.assert(fc.asyncProperty(exprArb, shapes, fc.nat(), async (e, sh, seed) => {
    const inputs = sh.map((s, k) => ({ values: rnd(s.reduce((p, d) => p * d, 1), seed + k), shape: s }));
    // every input takes part (x*0 terms), so each has a gradient to compare
    const r = await A.gradcheck((...xs) => xs.reduce((acc, x) => A.add(acc, A.mul(x, 0)), evalExpr(e, xs)), inputs, { rtol: 1e-4, atol: 1e-6 });
    assert.ok(r.ok, `${JSON.stringify(e)}: ${r.maxRelError} at ${JSON.stringify(r.worst)}`);
  }), { numRuns: 60 });
});

test('graph errors are StepErrors (the class itself) with one line naming the call, the tensor and the fix', async () => {
  setDevice(cpu);
  const stepError = (pattern: RegExp) => (e: unknown) => {
    assert.ok(e instanceof StepError, `expected a StepError, got ${String(e)}`);
    assert.equal(e.constructor, StepError, `expected StepError itself, got ${e.constructor.name}`);
    assert.equal(e.name, 'StepError');
    assert.ok(!e.message.includes('\n'), `one line: ${e.message}`);
    assert.match(e.message, pattern);
    return true;
  };
  await scope(async () => {
    const x = fromArray([1, 2], [2], { label: 'x' });
    x.requiresGrad = true;
    const y = A.sum(A.mul(x, x));
    A.backward(y);
    assert.throws(() => A.backward(y), stepError(/^backward: the saved tensors of sum \(producing tensor #\d+ \[\]\) were already freed by an earlier backward\(\); pass \{ retainGraph: true \} to the first backward to run it twice$/));
    assert.throws(() => A.backward(fromArray([1], [1], { label: 'plain' })), stepError(/^backward: .*plain.* does not require grad: no input of the ops that made it has requiresGrad = true \(or it was computed under noGrad\)$/));
    const other = fromArray([3], [1], { label: 'other' });
    other.requiresGrad = true;
    assert.throws(() => A.grad(A.sum(A.exp(x)), [other]), stepError(/^grad: .*other.* is not part of the graph that produced .+$/));
    await assert.rejects(A.gradcheck(() => fromArray([1]), [{ values: [1], shape: [1] }]), stepError(/^gradcheck: the function returned f32; it must compute in f64 on the cpu backend$/));
  });
});
