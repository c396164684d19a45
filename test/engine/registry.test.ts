import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CpuBackend, DeviceMismatchError, fromArray, scope, StepError, zeros } from '../../index.js';
import { defineKernel, registerKernel, runKernel } from '../../engine/registry.js';

// A kernel of this test only: out = k * x (+ bias), cpu only; `bias` is an optional operand.
const scaleKernel = defineKernel<{ k: number }>()('test_registry_scale', { inputs: ['x', 'bias?'], outputs: ['out'] });
registerKernel(scaleKernel, {
  cpu(backend, { inputs: { x, bias }, outputs: { out }, attrs: { k } }) {
    const xv = backend.values(x.storage), bv = bias ? backend.values(bias.storage) : null, o = backend.view(out.storage);
    for (let i = 0; i < o.length; i++) o[i] = k * xv[i]! + (bv ? bv[i]! : 0);
  },
});

test('registry: typed call with and without the optional operand; by-name call maps operands in declared order', async () => {
  const device = new CpuBackend();
  await scope(async () => {
    const x = fromArray([1, 2, 3], [3], { device }), bias = fromArray([10, 20, 30], [3], { device });
    const out = zeros([3], { device });
    runKernel(scaleKernel, { inputs: { x }, outputs: { out }, attrs: { k: 2 } });
    assert.deepEqual([...await out.toArray()], [2, 4, 6]);
    runKernel(scaleKernel, { inputs: { x, bias }, outputs: { out }, attrs: { k: 2 } });
    assert.deepEqual([...await out.toArray()], [12, 24, 36]);
    runKernel('test_registry_scale', { inputs: [x, bias], outputs: [out], attrs: { k: 3 } });
    assert.deepEqual([...await out.toArray()], [13, 26, 39]);
  });
});

test('registry: a missing operand, extra operands, another backend and a second registration are refused, naming the op', async () => {
  const device = new CpuBackend();
  await scope(async () => {
    const x = fromArray([1, 2, 3], [3], { device }), out = zeros([3], { device });
    // @ts-expect-error the compiler refuses a call without the required input `x`
    assert.throws(() => runKernel(scaleKernel, { inputs: {}, outputs: { out }, attrs: { k: 1 } }),
      (e: unknown) => e instanceof StepError && e.message === 'test_registry_scale: input "x" is missing (the kernel takes inputs x, bias?)');
    const typeChecksOnly = (): void => {
      // @ts-expect-error the compiler refuses attributes of the wrong type
      runKernel(scaleKernel, { inputs: { x }, outputs: { out }, attrs: { k: 'two' } });
      // @ts-expect-error ... and an operand the kernel does not declare
      runKernel(scaleKernel, { inputs: { x, y: x }, outputs: { out }, attrs: { k: 1 } });
    };
    void typeChecksOnly;
    assert.throws(() => runKernel('test_registry_scale', { inputs: [x, x, x], outputs: [out], attrs: { k: 1 } }),
      (e: unknown) => e instanceof StepError && e.message === 'test_registry_scale: 3 inputs given but the kernel takes 2 (x, bias?)');
    const other = zeros([3], { device: new CpuBackend() });
    assert.throws(() => runKernel(scaleKernel, { inputs: { x }, outputs: { out: other }, attrs: { k: 1 } }),
      (e: unknown) => e instanceof DeviceMismatchError && /^test_registry_scale: .* is on cpu but .* is on cpu; move one with toDevice\(\)$/.test(e.message));
  });
  assert.throws(() => registerKernel(scaleKernel, { cpu() {} }), (e: unknown) => e instanceof StepError && e.message === 'registerKernel: op "test_registry_scale" already has a cpu kernel');
  const twin = defineKernel()('test_registry_scale', { inputs: ['x'], outputs: ['out'] });
  assert.throws(() => registerKernel(twin, { webgpu() {} }), (e: unknown) => e instanceof StepError && /already defined by another defineKernel call/.test(e.message));
  assert.throws(() => runKernel('test_registry_unknown', { inputs: [], outputs: [zeros([1], { device })], attrs: {} }),
    (e: unknown) => e instanceof StepError && /^test_registry_unknown: no kernel registered under this name/.test(e.message));
});

test('registry: defineKernel refuses duplicate operand names and a list operand that is not last', () => {
  assert.throws(() => defineKernel()('test_registry_dup', { inputs: ['x', 'x?'], outputs: ['out'] }),
    (e: unknown) => e instanceof StepError && e.message === 'defineKernel(test_registry_dup): operand names must be distinct, got x, x, out');
  assert.throws(() => defineKernel()('test_registry_list', { inputs: ['...xs', 'y'], outputs: ['out'] }),
    (e: unknown) => e instanceof StepError && /only the last operand may be a list/.test(e.message));
});
