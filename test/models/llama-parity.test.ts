import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fromArray, scope } from '../../index.js';
import * as A from '../../autograd/index.js';
import { initLlama } from '../../models/llama.js';
import type { LlamaDims } from '../../models/llama.js';
import { testBothBackends } from '../helpers/backends.js';

interface Fixture {
  config: LlamaDims;
  ids: number[][];
  targets: number[][];
  logits: number[];
  loss: number;
  weights: Record<string, { shape: number[]; values: number[] }>;
  grads: Record<string, number[]>;
}

const fixture = JSON.parse(readFileSync(new URL('../../../test/fixtures/llama-tiny.json', import.meta.url), 'utf8')) as Fixture;

/** Worst |a - b| relative to the largest |b| of the array (f32 against an f64 reference). */
function scaledError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let maxB = 0, worst = 0;
  for (let i = 0; i < b.length; i++) maxB = Math.max(maxB, Math.abs(b[i]!));
  for (let i = 0; i < b.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
  return worst / (maxB || 1);
}

// The reference runs in f64; ours in f32 through ~20 ops: 2e-5 of the array's scale covers f32
// rounding (2^-24 per op, amplified by the softmax and the norms) with margin.
const TOL = 2e-5;

testBothBackends('LLaMA forward and backward match PyTorch (HF semantics, GQA, untied head)', async (device) => {
  await scope(async () => {
    const model = initLlama(fixture.config, { device, seed: 0 });
    const named = new Map(model.namedTensors());
    assert.deepEqual([...named.keys()].sort(), Object.keys(fixture.weights).sort(), 'the same tensor names as Hugging Face');
    for (const [name, w] of Object.entries(fixture.weights)) {
      const t = named.get(name)!;
      assert.deepEqual(t.shape, w.shape, name);
      device.write(t.storage, w.values);
    }
    const B = fixture.ids.length, T = fixture.ids[0]!.length;
    const ids = fromArray(fixture.ids.flat(), [B, T], { dtype: 'i32' });
    const targets = fromArray(fixture.targets.flat(), [B, T], { dtype: 'i32' });
    const logits = model.forward(ids);
    const logitErr = scaledError(await logits.toArray(), fixture.logits);
    assert.ok(logitErr < TOL, `logits: scaled error ${logitErr}`);
    const loss = model.loss(ids, targets);
    const l = await loss.item();
    assert.ok(Math.abs(l - fixture.loss) < 1e-5 * fixture.loss, `loss ${l} vs ${fixture.loss}`);
    A.backward(loss);
    for (const [name, g] of Object.entries(fixture.grads)) {
      const t = named.get(name)!;
      assert.ok(t.grad, `${name} has a gradient`);
      const err = scaledError(await t.grad.toArray(), g);
      assert.ok(err < TOL, `${name}: gradient scaled error ${err}`);
    }
    for (const [, t] of named) { t.grad?.dispose(); t.grad = null; t.dispose(); }
  });
});
