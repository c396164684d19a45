import assert from 'node:assert/strict';
import { test } from 'node:test';
import { backward, CpuBackend, fromArray, Generator, gradcheck, Linear, parameter, scope, setDevice, ShapeError, StepError, sum } from '../../index.js';
import { assertClose, testBothBackends } from '../helpers/backends.js';

testBothBackends('Linear with a bias computes x W^T + b, and backward reaches x, W and b', async (device) => {
  await scope(async () => {
    const w = parameter(fromArray([[1, 2, 3], [-1, 0, 2]], undefined, { device }));
    const b = parameter(fromArray([0.5, -2], undefined, { device }));
    const lin = new Linear('lin', w, b);
    const x = fromArray([[1, 1, 1], [2, 0, -1]], undefined, { device });
    x.requiresGrad = true;
    const y = lin.forward(x);
    assertClose(await y.toArray(), [6.5, -1, -0.5, -6], 1e-6, 0, 'y');
    backward(sum(y));
    assertClose(await b.grad!.toArray(), [2, 2], 1e-6, 0, 'db = rows of dy');
    assertClose(await w.grad!.toArray(), [3, 1, 0, 3, 1, 0], 1e-6, 0, 'dW = dy^T x');
    assertClose(await x.grad!.toArray(), [0, 2, 5, 0, 2, 5], 1e-6, 0, 'dx = dy W');
    lin.dispose();
  });
});

test('Linear forward passes gradcheck for the input, the weight and the bias (f64, cpu)', async () => {
  setDevice(new CpuBackend());
  const input = (shape: number[]) => ({ shape, values: Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => Math.sin(i * 1.7 + shape.length)) });
  const r = await gradcheck((x, w, b) => new Linear('lin', w!, b!).forward(x!), [input([2, 3, 4]), input([5, 4]), input([5])]);
  assert.ok(r.ok, `worst ${JSON.stringify(r.worst)}, max relative error ${r.maxRelError}`);
});

test('Linear.create: PyTorch init bounds, trainable parameters, optional bias, names', async () => {
  const cpu = new CpuBackend();
  setDevice(cpu);
  const lin = Linear.create(16, 8, { name: 'fc', generator: new Generator(1) });
  assert.deepEqual(lin.weight.shape, [8, 16]);
  assert.deepEqual(lin.bias!.shape, [8]);
  assert.deepEqual(lin.namedTensors().map(([n]) => n), ['fc.weight', 'fc.bias']);
  assert.deepEqual(lin.parameters(), [lin.weight, lin.bias]);
  assert.equal(cpu.memory().live.parameter, (16 * 8 + 8) * 4);
  for (const t of [lin.weight, lin.bias!]) {
    assert.equal(t.requiresGrad, true);
    const v = [...await t.toArray()];
    assert.ok(v.every((x) => Math.abs(x) <= 1 / Math.sqrt(16)), 'values within 1/sqrt(in)');
  }
  const noBias = Linear.create(16, 8, { bias: false });
  assert.equal(noBias.bias, null);
  assert.deepEqual(noBias.parameters(), [noBias.weight]);
  lin.dispose(); noBias.dispose();
  assert.equal(cpu.memory().live.parameter, 0);
});

test('Linear refuses a bias of the wrong shape and bad feature counts, naming the layer', () => {
  setDevice(new CpuBackend());
  const w = fromArray([[1, 2], [3, 4], [5, 6]]);
  assert.throws(() => new Linear('proj', w, fromArray([1, 2])), (e: unknown) => e instanceof ShapeError && /Linear proj: the bias must be \[3\]/.test(e.message));
  assert.throws(() => Linear.create(0, 3, { name: 'bad' }), (e: unknown) => e instanceof StepError && /Linear bad: inFeatures must be a positive integer, got 0/.test(e.message));
});

test('a LoRA adapter on a Linear with a bias keeps the bias in the output', async () => {
  const cpu = new CpuBackend();
  setDevice(cpu);
  await scope(async () => {
    const lin = Linear.create(4, 3, { generator: new Generator(2) });
    const x = fromArray([[1, 2, 3, 4]]);
    const before = await lin.forward(x).toArray();
    lin.addLora(2, 2, new Generator(3));
    assertClose(await lin.forward(x).toArray(), before, 1e-6, 0, 'B = 0: the adapter adds nothing at first');
    assert.equal(lin.parameters().length, 4);
    lin.dispose();
  });
});
