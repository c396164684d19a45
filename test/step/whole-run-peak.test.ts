import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { presetConfig } from '../../models/config-presets.js';
import { planStages } from '../../step/planner/plan.js';
import { train } from '../../step/train/trainer.js';
import type { TrainOptions } from '../../step/train/options.js';
import { AdamW, backward, CpuBackend, fromArray, initLlama, scopeSync, setDevice } from '../../index.js';
import { nextStage } from '../../step/index.js';
import { events, runOptions } from './run-fixtures.js';

/**
 * A 5-layer target trained by STEP in three stages [3, 1, 1], four steps a stage. The first stage
 * is the largest, so a transition that grew the model beside its optimizer state and gradients
 * (the old order) would peak above every stage and the prediction would not match.
 */
function threeStages(over: Partial<TrainOptions> = {}): TrainOptions {
  const base = runOptions({ method: 'step', split: [3, 1, 1], stages: 3, loraRank: 4, steps: 12, checkpointEvery: 0, stageWarmupSteps: 1, ...over });
  return { ...base, configOverrides: { ...base.configOverrides, num_hidden_layers: 5 } };
}

function plannedPeak(o: TrainOptions, vocab: number) {
  const config = presetConfig(o.preset, { ...o.configOverrides, vocab_size: vocab } as never);
  return planStages({ config, split: o.split!, rank: o.loraRank, mode: 'engine', precision: o.precision });
}

for (const precision of ['fp32', 'mixed'] as const) {
  test(`whole-run peak (${precision}): a 3-stage STEP run's model-state peak equals the planner's engine prediction to the byte`, async () => {
    const o = threeStages({ precision });
    const r = await train(o);
    assert.equal(r.finalStep, 12);
    const start = events(r.runDir, 'start')[0]!;
    const [end] = events(r.runDir, 'end') as unknown as { peak: { total: number; breakdown: Record<string, number>; modelState: { total: number; breakdown: Record<string, number> } } }[];
    assert.ok(end, 'the end event is logged');
    const plan = plannedPeak(o, (start.options as TrainOptions).vocabSize);
    assert.equal(plan.transitions.length, 2, 'two transitions in a 3-stage run');
    assert.equal(end.peak.modelState.total, plan.peak, `measured whole-run model-state peak vs the planner's (${plan.peakAt} ${plan.peakStage})`);
    const top = plan.stages.find((s) => s.stage === plan.peakStage)!.bytes;
    assert.deepEqual(end.peak.modelState.breakdown, { parameter: top.parameter, frozen: top.frozen, gradient: top.gradient, optimizer: top.optimizer });
    // the all-category peak covers the model state and the activations on top of it
    assert.ok(end.peak.total >= end.peak.modelState.total);
    assert.equal(Object.values(end.peak.breakdown).reduce((a, b) => a + b, 0), end.peak.total);
    // memory events carry the run's peak so far: it never goes down from one stage to the next
    const mem = events(r.runDir, 'memory') as unknown as { peak: { total: number; modelState: { total: number } } }[];
    assert.equal(mem.length, 3);
    for (let i = 1; i < mem.length; i++) assert.ok(mem[i]!.peak.modelState.total >= mem[i - 1]!.peak.modelState.total, 'peak so far is monotone');
    assert.equal(mem[2]!.peak.modelState.total, end.peak.modelState.total);
  });
}

test('nextStage frees the optimizer and gradients before it grows: the transition stays below the stage before it', () => {
  const device = new CpuBackend();
  setDevice(device);
  const config = presetConfig('tiny', { vocab_size: 29, hidden_size: 16, intermediate_size: 24, num_hidden_layers: 3, num_attention_heads: 4, num_key_value_heads: 4 });
  const model = initLlama(config, { device, seed: 1 });
  const optimizer = new AdamW(model.parameters(), { lr: 1e-3 });
  scopeSync(() => backward(model.loss(fromArray([[1, 5, 7, 2]], [1, 4], { dtype: 'i32' }), fromArray([[5, 7, 2, 3]], [1, 4], { dtype: 'i32' }))));
  optimizer.step();
  const stage1 = device.memory().live;
  const stage1State = stage1.parameter + stage1.frozen + stage1.gradient + stage1.optimizer;
  assert.equal(device.memory().peakModelState.total, stage1State, 'stage 1: weights, gradients and Adam state');
  const s2 = nextStage(model, 1, { lora: { rank: 2 }, optimizer });
  const m = device.memory();
  assert.equal(m.live.gradient + m.live.optimizer, 0, 'no gradient or optimizer state survives the transition');
  assert.equal(m.peakModelState.total, stage1State, 'the grown model was never allocated beside the old optimizer state');
  s2.model.dispose();
});

/** Every compiled .js file under a folder. */
function jsFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? jsFiles(p) : p.endsWith('.js') ? [p] : [];
  });
}

test('no code path in step/ resets the tracker\'s peak during a run (only engine\'s public resetPeak exists)', () => {
  const stepDir = fileURLToPath(new URL('../../step/', import.meta.url)); // dist/step
  const files = jsFiles(stepDir);
  assert.ok(files.length > 20, `compiled step/ sources found in ${stepDir}`);
  const offenders = files.filter((f) => /resetPeak/.test(readFileSync(f, 'utf8')));
  assert.deepEqual(offenders, [], 'step/ must not call resetPeak: the logged peak is the whole run\'s');
});
