import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { Backend, Tensor } from '../../index.js';
import { AdamW, CpuBackend, fromArray, LossScaler, resetPeak, scope, scopeSync, setDevice, StepError } from '../../index.js';
import * as A from '../../autograd/index.js';
import { initLlama } from '../../models/llama.js';
import { testBothBackends } from '../helpers/backends.js';

const config = { vocab_size: 50, hidden_size: 32, intermediate_size: 64, num_hidden_layers: 3, num_attention_heads: 4, rms_norm_eps: 1e-5, rope_theta: 10000, tie_word_embeddings: false };
const batch = (device: Backend) => fromArray([[1, 2, 3, 4, 5, 6, 7, 8], [8, 7, 6, 5, 4, 3, 2, 1]], [2, 8], { dtype: 'i32', device });

testBothBackends('accumulation in one scope: after each backward no activation is left, and memory stays flat', async (device) => {
  const model = initLlama(config, { device, seed: 1 });
  await scope(async () => {
    const ids = batch(device);
    const allocated: number[] = [];
    for (let micro = 0; micro < 4; micro++) {
      const loss = model.loss(ids, ids); // the loss stays alive in this scope, as a user's loop leaves it
      A.backward(loss);
      const m = device.memory();
      assert.equal(m.live.activation, 0, `micro-batch ${micro}: ${m.live.activation} activation bytes outlive backward`);
      allocated.push(m.allocated);
    }
    // the first backward created the .grad buffers; later ones add into them: only the 4-byte losses remain
    for (let i = 2; i < allocated.length; i++) assert.equal(allocated[i]! - allocated[i - 1]!, 4, `growth at micro-batch ${i}: ${allocated.join(', ')}`);
  });
  for (const p of model.parameters()) { p.grad?.dispose(); p.grad = null; }
  model.dispose();
});

testBothBackends('a forward with grad that is never backpropagated frees its saved tensors when its result goes', async (device) => {
  const model = initLlama(config, { device, seed: 2 });
  await scope(async () => {
    const ids = batch(device);
    await scope(async () => model.loss(ids, ids).item()); // the first forward uploads RoPE's inv_freq (kept by the model)
    const base = device.memory().allocated;
    for (let i = 0; i < 3; i++) {
      const metric = await scope(async () => model.loss(ids, ids).item()); // e.g. a training metric, no backward
      assert.ok(Number.isFinite(metric));
      assert.equal(device.memory().allocated, base, `iteration ${i}: the metric's graph outlived it`);
      assert.equal(device.memory().live.activation, 0);
    }
    // the same with the result disposed by hand, outside any inner scope
    const loss = model.loss(ids, ids);
    assert.ok(device.memory().live.activation > 0, 'saved tensors are counted as activation while the graph lives');
    loss.dispose();
    assert.equal(device.memory().live.activation, 0);
    assert.equal(device.memory().allocated, base);
  });
  model.dispose();
});

testBothBackends('categories mean what they say: an input batch is activation only while saved', async (device) => {
  await scope(async () => {
    const w = fromArray([1, 2, 3, 4], [2, 2], { category: 'parameter', device });
    w.requiresGrad = true;
    const x = fromArray([1, 0, 0, 1], [2, 2], { device });
    assert.equal(x.category, 'temporary');
    const y = A.sum(A.matmul(x, w));
    assert.equal(x.category, 'activation', 'saved for the weight gradient');
    assert.equal(w.category, 'parameter', 'a parameter keeps its category when saved');
    A.backward(y);
    assert.equal(x.category, 'temporary', 'back to temporary once backward no longer needs it');
    assert.equal(device.memory().live.activation, 0);
    w.grad!.dispose();
  });
});

test('Tensor.reshape records gradients; detach() leaves the graph on purpose', async () => {
  setDevice(new CpuBackend());
  await scope(async () => {
    const x = fromArray([1, 2, 3, 4, 5, 6], [2, 3]);
    x.requiresGrad = true;
    const y = A.sum(A.mul(x.reshape([3, 2]), fromArray([1, 2, 3, 4, 5, 6], [3, 2])));
    A.backward(y);
    assert.deepEqual([...await x.grad!.toArray()], [1, 2, 3, 4, 5, 6]);
    const d = x.detach();
    assert.equal(d.requiresGrad, false);
    assert.equal(A.noGrad(() => x.reshape([6])).requiresGrad, false, 'under noGrad nothing records');
    x.grad!.dispose();
  });
});

test('scalar-first operands: mul(2, x), add(1, x), sub(1, x), div(1, x) and their gradients', async () => {
  setDevice(new CpuBackend());
  await scope(async () => {
    const x = fromArray([1, 2, 4]);
    x.requiresGrad = true;
    const cases: [string, () => Tensor, number[], number[]][] = [
      ['mul(2, x)', () => A.mul(2, x), [2, 4, 8], [2, 2, 2]],
      ['add(1, x)', () => A.add(1, x), [2, 3, 5], [1, 1, 1]],
      ['sub(1, x)', () => A.sub(1, x), [0, -1, -3], [-1, -1, -1]],
      ['div(1, x)', () => A.div(1, x), [1, 0.5, 0.25], [-1, -0.25, -0.0625]],
      ['maximum(2, x)', () => A.maximum(2, x), [2, 2, 4], [0, 1, 1]],
    ];
    for (const [name, f, value, gradient] of cases) {
      const [g] = A.grad(A.sum(f()), [x]);
      assert.deepEqual([...await f().toArray()], value, name);
      assert.deepEqual([...await g!.toArray()], gradient, `${name} gradient`);
    }
    assert.throws(() => A.mul(2 as never, 3 as never), (e: unknown) => e instanceof StepError && /mul\(2, 3\): at least one operand must be a Tensor/.test(e.message));
    assert.throws(() => A.add(x, [1, 2, 3] as never), (e: unknown) => e instanceof StepError && /add: operands must be Tensors or numbers.*an array \(wrap it with fromArray\(\)\)/.test(e.message));
  });
});

test('rdiv reads only what it saved: backward works after an inner scope freed its input', async () => {
  setDevice(new CpuBackend());
  await scope(async () => {
    const x = fromArray([1, 2, 4]);
    x.requiresGrad = true;
    const y = scopeSync(() => A.rdiv(A.add(x, 1), 6)); // the inner add's result dies with the scope
    A.backward(A.sum(y));
    // d/dx 6 / (x + 1) = -6 / (x + 1)^2
    assert.deepEqual([...await x.grad!.toArray()], [-1.5, -6 / 9, -6 / 25].map((v) => Math.fround(v)));
    x.grad!.dispose();
  });
});

testBothBackends('LossScaler.scaleLoss is differentiable: gradients come out times the scale (mixed training end to end: mlp-train.test)', async (device) => {
  await scope(async () => {
    const w = fromArray([0.5, -1, 2], [3], { category: 'parameter', device });
    w.requiresGrad = true;
    const scaler = new LossScaler({ initScale: 1024 }, device);
    A.backward(scaler.scaleLoss(A.sum(A.square(w))));
    assert.deepEqual([...await w.grad!.toArray()], [1024, -2048, 4096]);
    w.grad!.dispose();
    scaler.dispose();
  });
});

/** Random expression trees: the same tree with and without inner scopes around subtrees gives the same gradients. */
type Tree = { kind: 'leaf'; i: number } | { kind: 'unary'; op: number; a: Tree; scoped: boolean } | { kind: 'binary'; op: number; a: Tree; b: Tree; scoped: boolean };
const UNARY = [(a: Tensor) => A.tanh(a), (a: Tensor) => A.square(a), (a: Tensor) => A.rdiv(A.add(A.square(a), 1), 2), (a: Tensor) => A.mul(3, a), (a: Tensor) => A.sum(a.reshape([-1]), { axis: 0, keepdim: true })];
const BINARY = [(a: Tensor, b: Tensor) => A.add(a, b), (a: Tensor, b: Tensor) => A.mul(a, b), (a: Tensor, b: Tensor) => A.sub(a, b), (a: Tensor, b: Tensor) => A.div(a, A.add(A.square(b), 1))];
const tree: fc.Arbitrary<Tree> = fc.letrec<{ t: Tree }>((tie) => ({
  t: fc.oneof({ maxDepth: 5, depthIdentifier: 'tree' },
    fc.record({ kind: fc.constant('leaf' as const), i: fc.integer({ min: 0, max: 2 }) }),
    fc.record({ kind: fc.constant('unary' as const), op: fc.integer({ min: 0, max: UNARY.length - 1 }), a: tie('t'), scoped: fc.boolean() }),
    fc.record({ kind: fc.constant('binary' as const), op: fc.integer({ min: 0, max: BINARY.length - 1 }), a: tie('t'), b: tie('t'), scoped: fc.boolean() })),
})).t;

function build(t: Tree, xs: Tensor[], useScopes: boolean): Tensor {
  if (t.kind === 'leaf') return xs[t.i]!;
  const run = t.kind === 'unary' ? () => UNARY[t.op]!(build(t.a, xs, useScopes)) : () => BINARY[t.op]!(build(t.a, xs, useScopes), build(t.b, xs, useScopes));
  return useScopes && t.scoped ? scopeSync(run) : run();
}

test('property: backward after inner scopes freed the forward intermediates equals backward without scopes', async () => {
  const device = new CpuBackend();
  setDevice(device);
  await fc.assert(fc.asyncProperty(tree, async (t) => {
    const gradsOf = (useScopes: boolean) => scope(async () => {
      const xs = [[0.5, -1.5, 2], [1, 0.25, -0.75], [-2, 1, 0.5]].map((v) => {
        const x = fromArray(v, [3], { dtype: 'f64' });
        x.requiresGrad = true;
        return x;
      });
      const y = A.sum(A.add(build(t, xs, useScopes), 0)); // add 0: a leaf tree still has a graph
      A.backward(y);
      const out = await Promise.all(xs.map(async (x) => (x.grad ? [...await x.grad.toArray()] : null)));
      for (const x of xs) x.grad?.dispose();
      return out;
    });
    const plain = await gradsOf(false);
    const scoped = await gradsOf(true);
    assert.deepEqual(scoped, plain);
    assert.equal(device.memory().live.activation, 0, 'no saved tensor outlives the step');
    assert.equal(device.memory().allocated, 0, 'nothing outlives the scope');
  }), { numRuns: 200, seed: 4242 });
});

testBothBackends('a whole training step: every memory category holds exactly what it says, at rest and at peak', async (device) => {
  const model = initLlama(config, { device, seed: 3 });
  const params = model.parameters();
  const paramBytes = params.reduce((n, p) => n + p.size * 4, 0);
  const opt = new AdamW(params, { lr: 1e-3 });
  const ids = batch(device); // the input batch lives across steps, as a data loader's would
  const idsBytes = ids.size * 4;
  const step = () => scope(async () => {
    A.backward(model.loss(ids, ids));
    opt.step();
    opt.zeroGrad();
  });
  await step();
  const rest = device.memory().live;
  const staging = rest.staging; // the backend's own buffers (uniform arena on webgpu), not tensors
  const ropeBytes = (config.hidden_size / config.num_attention_heads / 2) * 4; // RoPE's inv_freq, kept by the model
  assert.deepEqual(rest, {
    parameter: paramBytes, frozen: 0, gradient: paramBytes, optimizer: opt.stateBytes(), activation: 0,
    temporary: idsBytes + ropeBytes, staging,
  }, 'at rest, between steps');
  assert.equal(opt.stateBytes(), 2 * paramBytes, 'AdamW in fp32: m and v');
  resetPeak(device);
  await step();
  const peak = device.memory().peak.breakdown;
  assert.equal(peak.parameter, paramBytes, 'peak: parameters');
  assert.equal(peak.optimizer, 2 * paramBytes, 'peak: optimizer state');
  // one gradient per parameter (the grads are kept and zeroed); backward's seed is temporary, not a gradient
  assert.equal(peak.gradient, paramBytes, 'peak: one gradient per parameter');
  assert.equal(peak.frozen, 0);
  assert.ok(peak.activation > 0, 'peak: saved activations');
  assert.equal(device.memory().live.activation, 0, 'and none left after the step');
  for (const p of params) { p.grad?.dispose(); p.grad = null; }
  opt.dispose();
  model.dispose();
  ids.dispose();
});
