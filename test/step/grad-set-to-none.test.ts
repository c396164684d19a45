/**
 * The trainer drops its gradients at the start of each step (set-to-none): a parameter's first
 * gradient contribution is moved into .grad, later ones (micro-batches, a tied head) are added.
 * Training must be bit-identical to the old way, where gradients stayed allocated and were filled
 * with zeros after each step: checkpoints (weights and optimizer state) byte for byte, losses, and
 * the model-state peak that the planner predicts. Only the total peak may differ: it falls, since
 * no gradient is live beside the next forward's activations.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Optimizer } from '../../engine/optim/optimizer.js';
import type { TrainOptions } from '../../step/train/options.js';
import { train } from '../../step/train/trainer.js';
import { events, runOptions } from './run-fixtures.js';

type Peak = { total: number; modelState: { total: number; breakdown: Record<string, number> } };

/** Runs `o` the old way: every zeroGrad keeps the gradients and fills them with zeros. */
async function trainFilling(o: TrainOptions): Promise<void> {
  const zeroGrad = Optimizer.prototype.zeroGrad; // eslint-disable-line @typescript-eslint/unbound-method
  Optimizer.prototype.zeroGrad = function (this: Optimizer<never>) { zeroGrad.call(this, {}); };
  try {
    await train(o);
  } finally {
    Optimizer.prototype.zeroGrad = zeroGrad;
  }
}

function checkpointFiles(runDir: string, step: number): Record<string, Buffer> {
  const dir = join(runDir, 'checkpoints', `step-${String(step).padStart(6, '0')}`);
  return { model: readFileSync(join(dir, 'model.safetensors')), optimizer: readFileSync(join(dir, 'optimizer.safetensors')) };
}

const peakOf = (runDir: string): Peak => (events(runDir, 'end')[0] as unknown as { peak: Peak }).peak;

const cases: [string, Partial<TrainOptions>][] = [
  ['vanilla, 3 micro-batches, clipping', { gradAccum: 3, clip: 0.5 }],
  ['mixed precision with loss scaling', { precision: 'mixed', gradAccum: 2 }],
  ['STEP: 2 stages, frozen layers with LoRA and dropout', { method: 'step', split: [1, 1], loraRank: 4, loraDropout: 0.1, stageWarmupSteps: 1, gradAccum: 2 }],
  ['tied embeddings', { configOverrides: { ...runOptions().configOverrides, tie_word_embeddings: true }, gradAccum: 2 }],
];

for (const [name, over] of cases) {
  test(`set-to-none gradients train bit-identically to zero-filled ones: ${name}`, async () => {
    const o = (dir: string) => runOptions({ steps: 6, checkpointEvery: 3, warmupSteps: 1, name: dir, ...over });
    const none = o('none'), filled = { ...o('filled'), runsDir: none.runsDir };
    await train(none);
    await trainFilling(filled);
    const runNone = join(none.runsDir, 'none'), runFilled = join(none.runsDir, 'filled');
    const losses = (dir: string) => events(dir, 'train').map((e) => e.loss);
    assert.deepEqual(losses(runNone), losses(runFilled), 'the same losses, step by step');
    for (const step of [3, 6]) {
      const a = checkpointFiles(runNone, step), b = checkpointFiles(runFilled, step);
      assert.ok(a.model.equals(b.model), `model.safetensors at step ${step} is byte-identical`);
      assert.ok(a.optimizer.equals(b.optimizer), `optimizer.safetensors at step ${step} is byte-identical`);
    }
    assert.deepEqual(peakOf(runNone).modelState, peakOf(runFilled).modelState, 'the model-state peak (gradients included) is the same, to the byte');
    const mem = (dir: string) => events(dir, 'memory').map((e) => [e.measured, e.match]);
    assert.deepEqual(mem(runNone), mem(runFilled), 'memory events after each stage\'s first step are unchanged');
  });
}

test('set-to-none gradients lower the total peak where activations dominate: no gradient is live beside the forward', async () => {
  const none = runOptions({ steps: 2, checkpointEvery: 0, warmupSteps: 1, batchSize: 16, seqLen: 32, name: 'none' });
  await train(none);
  await trainFilling({ ...none, name: 'filled' });
  const a = peakOf(join(none.runsDir, 'none')), b = peakOf(join(none.runsDir, 'filled'));
  assert.deepEqual(a.modelState, b.modelState);
  assert.ok(a.total < b.total, `the whole-run total peak falls: ${a.total} < ${b.total} bytes`);
});
