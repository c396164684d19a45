import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { warmupCosineSchedule } from '../../engine/optim/schedules.js';
import type { TrainOptions } from '../../step/train/options.js';
import { train } from '../../step/train/trainer.js';
import { captureStdout, events, runOptions } from './run-fixtures.js';

const given = (...keys: (keyof TrainOptions)[]) => ({ given: new Set<keyof TrainOptions>(keys) });
const trainConfig = (runDir: string) => JSON.parse(readFileSync(join(runDir, 'train-config.json'), 'utf8')) as TrainOptions;
const lrAt = (runDir: string, step: number) => events(runDir, 'train').filter((e) => e.step === step).at(-1)!.lr as number;

test('--resume --steps 16 on a finished 8-step run continues to 16 with the schedule of the new total, logged and saved', async () => {
  const o = runOptions({ steps: 8, checkpointEvery: 4 });
  await train(o);
  // --seq-len given at its saved value is no change, so it is accepted
  const { value: r, out } = await captureStdout(() => train({ ...o, steps: 16 }, 'r', given('steps', 'seqLen')));
  assert.equal(r.finalStep, 16);
  assert.match(out, /resume: --steps 8 -> 16/);
  const resume = events(r.runDir, 'resume').at(-1)!;
  assert.deepEqual(resume.overrides, [{ key: 'steps', from: 8, to: 16 }]);
  const schedule = warmupCosineSchedule({ warmupSteps: 2, totalSteps: 16, minRatio: o.minLrRatio });
  for (const step of [9, 12, 16]) assert.equal(lrAt(r.runDir, step), o.lr * schedule(step - 1), `lr at step ${step}`);
  assert.equal(trainConfig(r.runDir).steps, 16, 'the override is saved for later resumes');
});

test('--resume --lr takes effect although the optimizer state holds the old lr, and later resumes keep it', async () => {
  const o = runOptions({ steps: 12, checkpointEvery: 2, stopAfter: 4 });
  await train(o);
  const { value: r, out } = await captureStdout(() => train({ ...o, lr: 1e-3, stopAfter: 4 }, 'r', given('lr', 'stopAfter')));
  assert.equal(r.finalStep, 8);
  assert.match(out, /resume: --lr 3e-3 -> 1e-3/);
  const schedule = warmupCosineSchedule({ warmupSteps: 2, totalSteps: 12, minRatio: o.minLrRatio });
  assert.ok(Math.abs(lrAt(r.runDir, 5) - 1e-3 * schedule(4)) < 1e-12, `lr at step 5: ${lrAt(r.runDir, 5)} vs ${1e-3 * schedule(4)}`);
  assert.equal(trainConfig(r.runDir).lr, 1e-3);
  assert.equal(trainConfig(r.runDir).stopAfter, 4, "this process's --stop-after is not saved over the run's");
  const again = await train({ ...o, stopAfter: null }, 'r', given());
  assert.equal(again.finalStep, 12);
  assert.ok(Math.abs(lrAt(r.runDir, 9) - 1e-3 * schedule(8)) < 1e-12, 'a later resume trains with the saved override');
});

test('--resume refuses flags that cannot change, naming the flag and the reason', async () => {
  const o = runOptions({ steps: 8, stopAfter: 4 });
  await train(o);
  await assert.rejects(train({ ...o, seqLen: 32 }, 'r', given('seqLen')), /--resume r: --seq-len cannot change on resume \(the run has 16, given 32\): the sampler's position in the data depends on it/);
  await assert.rejects(train({ ...o, preset: 'small' }, 'r', given('preset')), /--preset cannot change on resume .*model structure/);
  await assert.rejects(train({ ...o, steps: 3 }, 'r', given('steps')), /--steps 3 is below the checkpoint's step 4/);
  await assert.rejects(train({ ...o, name: 'other' }, 'r', given('name')), /--name other and --resume r name different runs/);
  await assert.rejects(train({ ...o, warmupSteps: 20 }, 'r', given('warmupSteps')), /--resume r: .*--warmup \(20\) must be below --steps \(8\)/);
  const tokens = runOptions({ method: 'step', split: [1, 1], stageTokens: [256, 256], steps: 8, loraRank: 4, stopAfter: 2 });
  await train(tokens);
  await assert.rejects(train({ ...tokens, steps: 20 }, 'r', given('steps')), /--steps 20 cannot take effect: the run's other options set it to 8 \(from --stage-tokens\)/);
});

test('--resume --steps on STEP: accepted before the next stage starts, refused once a boundary it would move was reached', async () => {
  const o = runOptions({ method: 'step', split: [1, 1], steps: 8, loraRank: 4, checkpointEvery: 2, stopAfter: 2 });
  await train(o); // stages start at steps 0 and 4; stopped at step 2, in stage 1
  const r = await train({ ...o, steps: 12, stopAfter: null }, 'r', given('steps'));
  assert.equal(r.finalStep, 12);
  assert.deepEqual(events(r.runDir, 'stage').map((e) => e.step), [6], 'stage 2 starts at half of the new 12 steps');
  const late = runOptions({ method: 'step', split: [1, 1], steps: 8, loraRank: 4, checkpointEvery: 2, stopAfter: 6 });
  await train(late); // in stage 2 (started at step 4)
  await assert.rejects(train({ ...late, steps: 16 }, 'r', given('steps')),
    /--steps 16 would move the start of stage 2 from step 4 to step 8, but the run \(at step 6, stage 2\) has already started that stage/);
});

test('resume refuses a latest.json that points outside the run, and a trainer state whose step differs from its folder', async () => {
  const o = runOptions({ steps: 8, stopAfter: 4 });
  await train(o);
  const runDir = join(o.runsDir, 'r');
  const latest = join(runDir, 'latest.json');
  const good = readFileSync(latest, 'utf8');
  for (const bad of ['{}', '4', '{"checkpoint":"../../other/checkpoints/step-000004"}']) {
    writeFileSync(latest, bad);
    await assert.rejects(train(o, 'r'), (e: Error) => e.name === 'StepError' && e.message.startsWith(latest), `latest.json ${bad}`);
  }
  writeFileSync(latest, good);
  const statePath = join(runDir, 'checkpoints', 'step-000004', 'trainer-state.json');
  const state = JSON.parse(readFileSync(statePath, 'utf8'));
  writeFileSync(statePath, JSON.stringify({ ...state, step: 5 }));
  await assert.rejects(train(o, 'r'), /trainer-state\.json: field "step" must be 4 \(the folder's name says step 4\)/);
});
