import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as root from '../../index.js';
import type { Tensor } from '../../index.js';
import { greater } from '../../kernels/index.js';

const repo = fileURLToPath(new URL('../../../', import.meta.url));

const cpu = new root.CpuBackend();
root.setDevice(cpu);
const g = new root.Generator(11);
/** A float leaf that wants a gradient; `positive` keeps log/sqrt/rsqrt/div in their domain. */
const leaf = (shape: number[], positive = false): Tensor => {
  const t = root.rand(shape, { generator: g, low: positive ? 0.5 : -1, high: positive ? 2 : 1 });
  t.requiresGrad = true;
  return t;
};
const ids = (values: number[]) => root.fromArray(new Int32Array(values), [values.length], { dtype: 'i32' });

/** One sample call per differentiable op: the tensors that want gradients, and the op applied to them. */
const CASES: Record<string, () => { inputs: Tensor[]; out: Tensor }> = {
  abs: () => { const x = leaf([2, 3]); return { inputs: [x], out: root.abs(x) }; },
  add: () => { const a = leaf([2, 3]), b = leaf([3]); return { inputs: [a, b], out: root.add(a, b) }; },
  attention: () => {
    const q = leaf([1, 2, 3, 4]), k = leaf([1, 1, 3, 4]), v = leaf([1, 1, 3, 4]);
    return { inputs: [q, k, v], out: root.attention(q, k, v) };
  },
  cast: () => { const x = leaf([2, 3]); return { inputs: [x], out: root.cast(x, 'f64') }; },
  concat: () => { const a = leaf([2, 3]), b = leaf([1, 3]); return { inputs: [a, b], out: root.concat([a, b], 0) }; },
  crossEntropy: () => { const x = leaf([4, 5]); return { inputs: [x], out: root.crossEntropy(x, ids([0, 4, 2, 1])) }; },
  div: () => { const a = leaf([2, 3]), b = leaf([2, 3], true); return { inputs: [a, b], out: root.div(a, b) }; },
  exp: () => { const x = leaf([2, 3]); return { inputs: [x], out: root.exp(x) }; },
  gatherRows: () => { const t = leaf([5, 3]); return { inputs: [t], out: root.gatherRows(t, ids([4, 0, 4])) }; },
  linearCrossEntropy: () => {
    const h = leaf([4, 3]), w = leaf([5, 3]);
    return { inputs: [h, w], out: root.linearCrossEntropy(h, w, ids([0, 4, -100, 1]), { chunkRows: 3 }) };
  },
  log: () => { const x = leaf([2, 3], true); return { inputs: [x], out: root.log(x) }; },
  matmul: () => { const a = leaf([2, 3]), b = leaf([3, 4]); return { inputs: [a, b], out: root.matmul(a, b) }; },
  max: () => { const x = leaf([2, 3]); return { inputs: [x], out: root.max(x, { axis: 1 }) }; },
  maximum: () => { const a = leaf([2, 3]), b = leaf([2, 3]); return { inputs: [a, b], out: root.maximum(a, b) }; },
  mean: () => { const x = leaf([2, 3]); return { inputs: [x], out: root.mean(x) }; },
  minimum: () => { const a = leaf([2, 3]), b = leaf([2, 3]); return { inputs: [a, b], out: root.minimum(a, b) }; },
  mul: () => { const a = leaf([2, 3]), b = leaf([2, 3]); return { inputs: [a, b], out: root.mul(a, b) }; },
  neg: () => { const x = leaf([2, 3]); return { inputs: [x], out: root.neg(x) }; },
  permute: () => { const x = leaf([2, 3, 4]); return { inputs: [x], out: root.permute(x, [2, 0, 1]) }; },
  pow: () => { const x = leaf([2, 3], true); return { inputs: [x], out: root.pow(x, 3) }; },
  rdiv: () => { const x = leaf([2, 3], true); return { inputs: [x], out: root.rdiv(x, 2) }; },
  relu: () => { const x = leaf([2, 3]); return { inputs: [x], out: root.relu(x) }; },
  reshape: () => { const x = leaf([2, 3]); return { inputs: [x], out: root.reshape(x, [3, 2]) }; },
  rmsNorm: () => { const x = leaf([2, 4]), w = leaf([4]); return { inputs: [x, w], out: root.rmsNorm(x, w, 1e-5) }; },
  rope: () => { const x = leaf([1, 3, 2, 4]); return { inputs: [x], out: root.rope(x) }; },
  rsqrt: () => { const x = leaf([2, 3], true); return { inputs: [x], out: root.rsqrt(x) }; },
  rsub: () => { const x = leaf([2, 3]); return { inputs: [x], out: root.rsub(x, 1) }; },
  sigmoid: () => { const x = leaf([2, 3]); return { inputs: [x], out: root.sigmoid(x) }; },
  silu: () => { const x = leaf([2, 3]); return { inputs: [x], out: root.silu(x) }; },
  slice: () => { const x = leaf([2, 5]); return { inputs: [x], out: root.slice(x, { axis: 1, start: 1, end: 4 }) }; },
  softmax: () => { const x = leaf([2, 3]); return { inputs: [x], out: root.softmax(x) }; },
  sqrt: () => { const x = leaf([2, 3], true); return { inputs: [x], out: root.sqrt(x) }; },
  square: () => { const x = leaf([2, 3]); return { inputs: [x], out: root.square(x) }; },
  sub: () => { const a = leaf([2, 3]), b = leaf([2, 3]); return { inputs: [a, b], out: root.sub(a, b) }; },
  sum: () => { const x = leaf([2, 3]); return { inputs: [x], out: root.sum(x, { axis: 0 }) }; },
  sumOfSquares: () => { const x = leaf([2, 3]); return { inputs: [x], out: root.sumOfSquares(x) }; },
  swiglu: () => { const a = leaf([2, 3]), b = leaf([2, 3]); return { inputs: [a, b], out: root.swiglu(a, b) }; },
  tanh: () => { const x = leaf([2, 3]); return { inputs: [x], out: root.tanh(x) }; },
  transpose: () => { const x = leaf([2, 3]); return { inputs: [x], out: root.transpose(x, 0, 1) }; },
  where: () => {
    const a = leaf([2, 3]), b = leaf([2, 3]);
    return { inputs: [a, b], out: root.where(greater(root.fromArray([[1, -1, 1], [-1, 1, -1]]), 0), a, b) };
  },
};

test('every op in DIFFERENTIABLE_OPS is exported by the root and has a sample call here', () => {
  for (const op of root.DIFFERENTIABLE_OPS) {
    assert.equal(typeof (root as Record<string, unknown>)[op], 'function', `step-webgpu does not export ${op}`);
    assert.ok(op in CASES, `no sample call for ${op} in test/api/differentiable.test.ts`);
  }
  assert.deepEqual(Object.keys(CASES).sort(), [...root.DIFFERENTIABLE_OPS].sort());
});

for (const op of root.DIFFERENTIABLE_OPS) {
  test(`${op} records a tape node and backward reaches every input`, async () => {
    await root.scope(async () => {
      const { inputs, out } = CASES[op]!();
      assert.ok(out.requiresGrad && out.gradNode !== null, `${op} did not record`);
      root.backward(root.sum(root.cast(out, 'f32')));
      for (const [i, x] of inputs.entries()) {
        assert.ok(x.grad, `${op}: input ${i} got no gradient`);
        assert.deepEqual(x.grad.shape, x.shape, `${op}: gradient ${i} shape`);
        x.grad.dispose();
        x.grad = null;
      }
    });
  });
}

test('every root-exported function from tensors to a tensor records gradients or documents (@nograd) that it does not', async () => {
  const { apiModel } = await import(pathToFileURL(join(repo, 'scripts/api-model.mjs')).href) as {
    apiModel: () => { entries: { subpath: string; symbols: { name: string; isOp: boolean; grad: string | null; file: string }[] }[] };
  };
  const rootEntry = apiModel().entries.find((e) => e.subpath === '.')!;
  const ops = rootEntry.symbols.filter((s) => s.isOp);
  const undeclared = ops.filter((s) => s.grad === 'undeclared').map((s) => `${s.name} (${s.file})`);
  assert.deepEqual(undeclared, [], 'add these to DIFFERENTIABLE_OPS (autograd/index.ts) or give them a `@nograd reason` TSDoc tag');
  const recording = ops.filter((s) => s.grad === 'records').map((s) => s.name).sort();
  assert.deepEqual(recording, [...root.DIFFERENTIABLE_OPS].sort(), 'the ops the analysis sees as differentiable are DIFFERENTIABLE_OPS');
});
