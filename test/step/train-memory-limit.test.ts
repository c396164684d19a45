/** `step train --memory-limit`: refused up front from the planner, or stopped in a step by the tracker, nothing lost. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { getDevice } from '../../engine/device.js';
import { OutOfMemoryError } from '../../engine/errors.js';
import { presetConfig } from '../../models/config-presets.js';
import { UsageError } from '../../step/cli-args.js';
import { planStages } from '../../step/planner/index.js';
import { parseTrainArgs } from '../../step/train/options.js';
import { runPlan, runPlanOptions } from '../../step/train/run-plan.js';
import { train } from '../../step/train/trainer.js';
import type { TrainOptions } from '../../step/train/options.js';
import { events, runOptions } from './run-fixtures.js';

const target = (o: TrainOptions) => presetConfig(o.preset, { ...o.configOverrides, vocab_size: o.vocabSize } as never);
const vanillaPeak = (o: TrainOptions) => planStages({ config: target(o), split: [target(o).num_hidden_layers], ...runPlanOptions(o) }).peak;

test('step train --memory-limit parses sizes with units, is not a run option, and refuses nonsense naming the command', () => {
  const parsed = parseTrainArgs(['--memory-limit', '1.5GiB']);
  assert.equal(parsed.memoryLimit, 1.5 * 2 ** 30);
  assert.equal(parseTrainArgs([]).memoryLimit, null);
  assert.ok(!('memoryLimit' in parsed.options), 'a machine property, not saved in train-config.json');
  assert.throws(() => parseTrainArgs(['--memory-limit', 'lots']), (e: unknown) => e instanceof UsageError && /^step train: --memory-limit must be a positive size/.test(e.message));
  // allowed with --resume: the limit belongs to the machine
  assert.equal(parseTrainArgs(['--resume', 'r', '--memory-limit', '2GB']).memoryLimit, 2e9);
});

test('step train --memory-limit: a model state that cannot fit is refused before the run folder or the model exists', async () => {
  const o = runOptions({ steps: 4 });
  const peak = vanillaPeak(o);
  await assert.rejects(train(o, null, { memoryLimit: peak - 1 }), (e: unknown) => {
    assert.ok(e instanceof OutOfMemoryError);
    assert.match(e.message, /^step train: out of memory before allocating anything: the model state alone peaks at .* \(\d+ B\) in vanilla training/);
    assert.match(e.message, /By category: optimizer .*Largest: /);
    return true;
  });
  assert.ok(!existsSync(join(o.runsDir, o.name)), 'no run folder');
  assert.equal(getDevice().memory().allocated, 0, 'nothing allocated');
  assert.equal(getDevice().tracker.limit, null, 'the device keeps no limit');

  // STEP: the whole run's peak (stage and transition) is what must fit, and the phase is named
  const s = runOptions({ steps: 4, method: 'step', stages: 2 });
  const plan = runPlan(s, target(s));
  assert.ok(plan.peak < peak, 'STEP needs less than vanilla');
  await assert.rejects(train(s, null, { memoryLimit: plan.peak - 1 }), /out of memory before allocating anything: .* in (stage \d of 2|the transition into stage 2)/);

  // ReLoRA starts full-rank: vanilla's bytes; GaLore: its projected optimizer state, as step memory predicts them
  for (const method of ['relora', 'galore'] as const) {
    const m = runOptions({ steps: 4, method, ...(method === 'relora' ? { reloraWarmStart: 2, reloraEvery: 2 } : { galoreRank: 4 }) });
    await assert.rejects(train(m, null, { memoryLimit: method === 'relora' ? peak - 1 : 1000 }), method === 'relora' ? /peaks at .* in ReLoRA's warm start phase/ : /peaks at .* in GaLore training/);
    assert.ok(!existsSync(join(m.runsDir, m.name)));
  }
});

test('step train --memory-limit: activations beyond the limit stop the step, log it, keep the last checkpoint, and a resume goes on', async () => {
  const o = runOptions({ steps: 8, checkpointEvery: 4 });
  const first = await train({ ...o, stopAfter: 4 });
  assert.ok(first.stopped);
  const runDir = join(o.runsDir, o.name);
  const checkpoints = () => readdirSync(join(runDir, 'checkpoints')).sort();
  const before = checkpoints();
  // the model state fits (to the byte), a step's activations do not
  await assert.rejects(train(o, o.name, { memoryLimit: vanillaPeak(o) + 64 }), (e: unknown) => {
    assert.ok(e instanceof OutOfMemoryError);
    assert.match(e.message, /Training stopped in step 5; the last checkpoint is .*step-000004/);
    assert.match(e.message, /step train --resume r --checkpoint-activations/);
    return true;
  });
  assert.deepEqual(checkpoints(), before, 'the checkpoints are untouched');
  const oom = events(runDir, 'oom');
  assert.equal(oom.length, 1);
  assert.equal(oom[0]!.step, 4);
  assert.equal(getDevice().tracker.limit, null, 'the limit is put back when the run stops');
  assert.equal(getDevice().memory().allocated, 0, 'everything freed');
  const done = await train(o, o.name, { memoryLimit: 1e9 });
  assert.equal(done.finalStep, 8);
  assert.equal(getDevice().tracker.limit, null);
});
