/**
 * STEP's procedure choices as `step train` runs them: growth placement, no-PET, frozen embeddings,
 * Adam state across a boundary, stage timing; each logged, measured against the planner to the
 * byte, refused when impossible, and resumed exactly.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { warmupCosineSchedule } from '../../engine/optim/schedules.js';
import { openSafetensors } from '../../engine/safetensors.js';
import { presetConfig } from '../../models/config-presets.js';
import { plan as planCommand } from '../../step/commands/plan.js';
import { growthGaps, PLACEMENTS } from '../../step/growth.js';
import { planStages } from '../../step/planner/plan.js';
import type { TrainOptions } from '../../step/train/options.js';
import { DEFAULT_TRAIN_OPTIONS, parseTrainArgs } from '../../step/train/options.js';
import { stageSchedule } from '../../step/train/stage-schedule.js';
import { train } from '../../step/train/trainer.js';
import { captureStdout, events, runOptions } from './run-fixtures.js';

const ckpt = (runDir: string, step: number) => join(runDir, 'checkpoints', `step-${String(step).padStart(6, '0')}`);

async function tensorValues(file: string, name: string): Promise<number[]> {
  const r = await openSafetensors(file);
  try { return Array.from(await r.values(name)); } finally { await r.close(); }
}

async function tensorNames(file: string): Promise<string[]> {
  const r = await openSafetensors(file);
  try { return [...r.names]; } finally { await r.close(); }
}

/** Step counts by parameter label from a checkpoint's optimizer.safetensors. */
async function adamSteps(dir: string): Promise<Map<string, number>> {
  const r = await openSafetensors(join(dir, 'optimizer.safetensors'));
  try {
    const saved = JSON.parse(r.metadata.state!) as { params: { label: string; step: number }[] };
    return new Map(saved.params.map((p) => [p.label, p.step]));
  } finally { await r.close(); }
}

/** `step plan ARGS --json` in this process: its plan. */
async function stepPlanJson(command: string): Promise<ReturnType<typeof planStages>> {
  const args = command.split(' ').slice(2); // drop "step plan"
  const { out } = await captureStdout(async () => { await planCommand([...args, '--json']); });
  return JSON.parse(out).plan;
}

const fourLayers = (over: Partial<TrainOptions>): TrainOptions => {
  const base = runOptions({ method: 'step', loraRank: 4, stageWarmupSteps: 1, ...over });
  return { ...base, configOverrides: { ...base.configOverrides, num_hidden_layers: 4 } };
};

test('placement: new layers go where growthGaps puts them, for every placement; the choices are in train-config, the start event and the stage event', async () => {
  for (const placement of PLACEMENTS) {
    const o = fourLayers({ split: [3, 1], steps: 4, checkpointEvery: 0, placement, growthOperator: 'stack' });
    const { value: r, out } = await captureStdout(() => train(o));
    const [gap] = growthGaps(3, 1, placement, o.seed + 1);
    const stage = events(r.runDir, 'stage')[0]!;
    assert.deepEqual(stage.newLayers, [gap! + 1], `${placement}: the new layer sits above old layer ${gap}`);
    assert.deepEqual(stage.frozenLayers, [0, 1, 2, 3].filter((i) => i !== gap! + 1));
    const start = events(r.runDir, 'start')[0]!;
    assert.equal((start.options as TrainOptions).placement, placement);
    assert.match(String(start.procedure), new RegExp(`growth stack / ${placement}`));
    assert.match(out, new RegExp(`growth stack / ${placement}`), 'printed');
    assert.match(out, /plan \(the same as `step plan --preset tiny .*--split 3,1 --rank 4 --precision fp32`\)/);
  }
});

for (const choice of ['noPet', 'freezeEmbeddings'] as const) {
  test(`${choice}: every stage's measured bytes equal the planner's (the run's step plan command) to the byte; frozen tensors do not change`, async () => {
    const o = runOptions({ method: 'step', split: [1, 1], loraRank: 4, steps: 6, checkpointEvery: 0, stageWarmupSteps: 1, [choice]: true });
    const r = await train(o);
    const start = events(r.runDir, 'start')[0]!;
    const printed = await stepPlanJson(String(start.planCommand));
    assert.deepEqual(printed, start.stepPlan, 'step plan with the printed flags gives the run\'s plan');
    assert.equal(choice === 'noPet' ? printed.pet : printed.trainEmbeddings, false);
    const memory = events(r.runDir, 'memory') as unknown as { stage: number; measured: Record<string, number>; match: boolean }[];
    assert.equal(memory.length, 2);
    for (const m of memory) {
      const { total: _t, ...bytes } = printed.stages[m.stage]!.bytes;
      assert.deepEqual(m.measured, bytes, `stage ${m.stage + 1}: measured = planned`);
      assert.equal(m.match, true);
    }
    // stage 2 started at step 3 (a checkpoint); the frozen tensors are the same in the final model
    const boundary = join(ckpt(r.runDir, 3), 'model.safetensors'), final = join(r.runDir, 'final', 'model.safetensors');
    const frozen = choice === 'noPet' ? 'model.layers.0.mlp.down_proj.weight' : 'model.embed_tokens.weight';
    assert.deepEqual(await tensorValues(final, frozen), await tensorValues(boundary, frozen), `${frozen} stays as it was at the boundary`);
    const names = await tensorNames(join(ckpt(r.runDir, 6), 'model.safetensors'));
    assert.equal(names.some((n) => n.includes('lora_')), choice !== 'noPet', 'adapters only with PET');
  });
}

test('Adam state across a boundary: what trains on keeps its moments and step count (default); --stage-optimizer reset restarts it', async () => {
  for (const stageOptimizer of ['keep', 'reset'] as const) {
    const r = await train(runOptions({ method: 'step', split: [1, 1], loraRank: 4, steps: 6, checkpointEvery: 5, stageWarmupSteps: 1, stageOptimizer, name: stageOptimizer }));
    const steps = await adamSteps(ckpt(r.runDir, 5)); // stage 2 runs steps 4..6
    const embed = [...steps].find(([label]) => label.includes('embed_tokens'))!;
    assert.equal(embed[1], stageOptimizer === 'keep' ? 5 : 2, `${stageOptimizer}: ${embed[0]} has had ${embed[1]} updates`);
    const stage = events(r.runDir, 'stage')[0]!;
    assert.equal(stage.carriedOptimizerState, stageOptimizer === 'keep' ? 3 : 0, 'embeddings, final norm and head');
    const layer = [...steps].find(([label]) => label.includes('layers.1.'))!;
    assert.equal(layer[1], 2, 'a new layer starts afresh either way');
  }
});

test('stage timing: paper cuts each stage at 75% of its plan and gives it its own warm-up + cosine; equal shares one schedule', async () => {
  const base = { ...DEFAULT_TRAIN_OPTIONS, batchSize: 4, seqLen: 16, gradAccum: 1 };
  assert.deepEqual(stageSchedule({ ...base, steps: 14, stageTiming: 'paper' }, 2), { timing: 'paper', steps: [6, 8], starts: [0, 6], planned: [8, 8], total: 14 });
  assert.deepEqual(stageSchedule({ ...base, steps: 10, stageTiming: 'paper' }, 3).steps, [3, 3, 4]);
  assert.deepEqual(stageSchedule({ ...base, stageTokens: [64 * 8, 64 * 4], stageTiming: 'paper' }, 2), { timing: 'paper', steps: [6, 4], starts: [0, 6], planned: [8, 4], total: 10 });
  assert.deepEqual(stageSchedule({ ...base, steps: 10, stageTiming: 'equal' }, 3).steps, [3, 4, 3]);
  const o = runOptions({ method: 'step', split: [1, 1], loraRank: 4, steps: 14, warmupSteps: 2, stageWarmupSteps: 2, checkpointEvery: 0, stageTiming: 'paper' });
  const r = await train(o);
  assert.deepEqual(events(r.runDir, 'stage').map((e) => e.step), [6]);
  const lr = new Map(events(r.runDir, 'train').map((e) => [e.step as number, e.lr as number]));
  const first = warmupCosineSchedule({ warmupSteps: 2, totalSteps: 8, minRatio: o.minLrRatio });
  const second = warmupCosineSchedule({ warmupSteps: 2, totalSteps: 8, minRatio: o.minLrRatio });
  for (let step = 1; step <= 14; step++) {
    const want = o.lr * (step <= 6 ? first(step - 1) : second(step - 1 - 6));
    assert.ok(Math.abs(lr.get(step)! - want) < 1e-12, `lr at step ${step}: ${lr.get(step)} vs ${want}`);
  }
  assert.ok(lr.get(6)! > o.lr * o.minLrRatio * 1.01, 'stage 1 is cut before its cosine ends');
});

test('refused before anything is created: K > L, a stage with no step, a paper stage shorter than its warm-up, --no-pet with adapter restarts', () => {
  const args = ['--method', 'step', '--preset', 'tiny'];
  const refused: [string[], RegExp][] = [
    [['--stages', '5'], /--stages 5 is more than the model's 4 layers/],
    [['--stages', '3', '--steps', '2', '--warmup', '1'], /--steps 2 leaves stage 2 of 3 with no step \(equal timing: \[1, 0, 1\]\); give more --steps or fewer --stages/],
    [['--stages', '2', '--stage-tokens', '1024,100'], /--stage-tokens: stage 2 gets 0 steps of 1024 tokens/],
    [['--stages', '2', '--steps', '20', '--warmup', '15', '--stage-timing', 'paper'], /--stage-timing paper: stage 1 plans 11 steps, not more than its warm-up --warmup 15/],
    [['--stages', '2', '--no-pet', '--stage-relora-every', '5'], /--stage-relora-every restarts adapters, but --no-pet trains without them/],
    [['--stages', '2', '--placement', 'middle'], /--placement/],
  ];
  for (const [extra, re] of refused) assert.throws(() => parseTrainArgs([...args, ...extra]), re, extra.join(' '));
  assert.throws(() => parseTrainArgs(['--method', 'vanilla', '--no-pet']), /--no-pet has no effect with --method vanilla/);
  assert.throws(() => parseTrainArgs(['--method', 'relora', '--freeze-embeddings']), /--freeze-embeddings is STEP's/);
  const ok = parseTrainArgs([...args, '--stages', '2', '--growth', 'function-preserving', '--placement', 'random', '--no-pet', '--freeze-embeddings', '--stage-optimizer', 'reset', '--stage-timing', 'paper']).options;
  assert.deepEqual([ok.growthOperator, ok.placement, ok.noPet, ok.freezeEmbeddings, ok.stageOptimizer, ok.stageTiming], ['function-preserving', 'random', true, true, 'reset', 'paper']);
});

test('step plan and step train --method step share their defaults (engine mode, fp32, rank 8, embeddings train, Adam state kept)', async () => {
  const printed = await stepPlanJson('step plan --preset tiny --stages 2');
  const o = DEFAULT_TRAIN_OPTIONS;
  assert.deepEqual(printed, JSON.parse(JSON.stringify(planStages({ config: presetConfig('tiny'), stages: 2, mode: 'engine', precision: o.precision, rank: o.loraRank, trainEmbeddings: true, pet: true, carryOptimizer: true }))));
});

const CHOICE_SETS: Partial<TrainOptions>[] = [
  { growthOperator: 'stack', placement: 'random', freezeEmbeddings: true, stageTiming: 'paper', stageOptimizer: 'reset' },
  { growthOperator: 'function-preserving', placement: 'intermediate', noPet: true, stageOptimizer: 'keep' },
  { placement: 'lower', precision: 'mixed' },
];

for (const choices of CHOICE_SETS) {
  test(`resume is exact with ${JSON.stringify(choices)}: interrupted in each stage and at the boundary, the same losses and final model as one uninterrupted run`, async () => {
    const o = fourLayers({ split: [2, 1, 1], steps: 9, warmupSteps: 1, checkpointEvery: 2, ...choices });
    const whole = await train({ ...o, name: 'whole' });
    await train({ ...o, stopAfter: 2 }); // stage 1
    for (const stopAfter of [2, 1]) await train({ ...o, stopAfter }, 'r'); // across the first boundary (step 3) to step 4, then step 5
    const parts = await train({ ...o, stopAfter: null }, 'r');
    assert.equal(parts.finalStep, 9);
    const losses = (dir: string) => new Map(events(dir, 'train').map((e) => [e.step, e.loss]));
    assert.deepEqual([...losses(parts.runDir)].sort(), [...losses(whole.runDir)].sort(), 'every step\'s loss');
    assert.deepEqual(events(parts.runDir, 'stage').map((e) => [e.step, e.newLayers]), events(whole.runDir, 'stage').map((e) => [e.step, e.newLayers]));
    const file = (dir: string) => join(dir, 'final', 'model.safetensors');
    for (const name of await tensorNames(file(whole.runDir))) {
      assert.deepEqual(await tensorValues(file(parts.runDir), name), await tensorValues(file(whole.runDir), name), name);
    }
  });
}
