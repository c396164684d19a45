import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import type { Backend } from '../../index.js';
import { CpuBackend, getDevice, OutOfMemoryError, setDevice, setMemoryLimit } from '../../index.js';
import { presetConfig } from '../../models/config-presets.js';
import { UsageError } from '../../step/cli-args.js';
import { memoryCommand, parseMemoryArgs, parseSize } from '../../step/commands/memory.js';
import { checkModelStateFits } from '../../step/memory/budget.js';
import type { MemoryRunOptions } from '../../step/memory/measure.js';
import { measureMemory, planFor } from '../../step/memory/measure.js';
import { testBothBackends } from '../helpers/backends.js';
import { CLI } from './run-fixtures.js';

/** A 3-layer model small enough that a training step takes milliseconds. */
const SMALL = { hidden_size: 32, intermediate_size: 48, num_hidden_layers: 3, num_attention_heads: 2, num_key_value_heads: 2, vocab_size: 300, max_position_embeddings: 64 };
const SET = Object.entries(SMALL).filter(([k]) => k !== 'vocab_size').flatMap(([k, v]) => ['--set', `${k}=${v}`]);

function options(split: number[], over: Partial<MemoryRunOptions> = {}): MemoryRunOptions {
  return {
    config: presetConfig('tiny', SMALL), method: split.length > 1 ? 'step' : 'vanilla', split, rank: 4, precision: 'mixed',
    batch: 2, seq: 16, checkpointActivations: false, stepsPerStage: 2, seed: 3, ...over,
  };
}

testBothBackends('step memory: measured model state = the planner to the byte in every stage and transition (vanilla, K = 2, K = 3; with and without checkpointing)', async (device: Backend) => {
  for (const split of [[3], [2, 1], [1, 1, 1]]) {
    const activation: Record<string, number> = {};
    for (const checkpointActivations of [false, true]) {
      const o = options(split, { checkpointActivations, precision: split.length === 2 ? 'fp32' : 'mixed' });
      const m = await measureMemory(o, device);
      const plan = planFor(o);
      const what = `split [${split}] checkpointing ${checkpointActivations} (${o.precision})`;
      assert.equal(m.phases.length, 2 * split.length - 1, `${what}: every stage and every transition`);
      for (const p of m.phases) {
        const predicted = p.phase === 'stage' ? plan.stages[p.stage - 1]!.bytes : plan.transitions[p.stage - 2]!.bytes;
        assert.deepEqual(p.measured, predicted, `${what}: ${p.phase} ${p.stage}, model state by category`);
        assert.ok(p.match);
        if (p.phase === 'stage') {
          assert.equal(p.losses.length, 2, 'two real training steps per stage');
          assert.ok(p.losses.every(Number.isFinite));
          // gradients are set to none before each step (as step train does): the total peak may come in the forward,
          // without gradients, or at the optimizer step, with them; it is at least the model-state peak either way
          assert.ok(p.peak.total >= p.measured.total, 'the total peak covers the model-state peak');
          assert.equal(p.peak.total, Object.values(p.peak.breakdown).reduce((a, b) => a + b, 0), 'the total peak is its split');
        }
      }
      assert.equal(m.wholeRun.modelState.total, plan.peak, `${what}: the whole run's model-state peak`);
      assert.ok(m.match);
      assert.ok(m.wholeRun.peak.total >= Math.max(...m.phases.map((p) => p.peak.total)), 'the whole run covers every phase');
      activation[String(checkpointActivations)] = m.wholeRun.activation;
    }
    assert.ok(activation.true! < activation.false!, `split [${split}]: activation peak ${activation.true} with checkpointing < ${activation.false} without`);
  }
});

test('step memory: gradients set to none before each step as in step train, so one step per stage shows the same peaks as two or three', async () => {
  for (const checkpointActivations of [false, true]) {
    const peaks = [];
    for (const stepsPerStage of [1, 2, 3]) {
      const m = await measureMemory(options([1, 2], { checkpointActivations, stepsPerStage }), new CpuBackend());
      peaks.push(JSON.stringify([m.wholeRun.peak, ...m.phases.map((p) => p.peak)]));
    }
    assert.equal(peaks[1], peaks[0], `checkpointing ${checkpointActivations}: 2 steps vs 1`);
    assert.equal(peaks[2], peaks[0], `checkpointing ${checkpointActivations}: 3 steps vs 1`);
  }
});

test('step memory: the whole-run window is the device tracker\'s own peak on a fresh device (never reset)', async () => {
  const device = new CpuBackend();
  const m = await measureMemory(options([2, 1]), device);
  const r = device.memory();
  assert.equal(m.wholeRun.peak.total, r.peak.total);
  assert.equal(m.wholeRun.modelState.total, r.peakModelState.total);
});

test('step memory --json: one object with the settings, the plan, every phase and the whole run', () => {
  const r = spawnSync(process.execPath, [CLI, 'memory', '--preset', 'tiny', ...SET, '--vocab-size', '300', '--method', 'step', '--stages', '2', '--rank', '4',
    '--seq', '16', '--steps', '1', '--checkpoint-activations', '--device', 'cpu', '--json'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout) as Record<string, any>;
  assert.deepEqual(Object.keys(j), ['command', 'source', 'config', 'settings', 'device', 'plan', 'phases', 'wholeRun', 'notes', 'match']);
  assert.equal(j.command, 'memory');
  assert.equal(j.config.num_hidden_layers, 3);
  assert.deepEqual(j.settings, { method: 'step', split: j.plan.split, rank: 4, precision: 'mixed', seq: 16, batch: 2, checkpointActivations: true, stepsPerStage: 1, seed: 1 });
  assert.deepEqual(j.phases.map((p: { phase: string; stage: number }) => `${p.phase} ${p.stage}`), ['stage 1', 'transition 2', 'stage 2']);
  for (const p of j.phases) assert.deepEqual(Object.keys(p.measured), ['parameter', 'frozen', 'gradient', 'optimizer', 'total']);
  assert.equal(j.wholeRun.modelState.total, j.plan.peak);
  assert.equal(j.match, true);
});

test('step memory: the table names every phase, the match column and the whole run', async () => {
  const write = process.stdout.write.bind(process.stdout);
  let out = '';
  process.stdout.write = ((s: string) => { out += s; return true; }) as typeof process.stdout.write;
  const before = getDevice();
  try {
    assert.equal(await memoryCommand(['--preset', 'tiny', ...SET, '--vocab-size', '300', '--method', 'step', '--split', '1,2', '--rank', '4', '--seq', '16', '--steps', '1', '--device', 'cpu']), 0);
  } finally {
    process.stdout.write = write;
    setDevice(before);
  }
  assert.match(out, /phase +layers +new +old +parameter +frozen +gradient +optimizer +model state +predicted +match +activation +total peak/);
  for (const row of ['stage 1', '1->2', 'stage 2', 'whole run']) assert.match(out, new RegExp(`^${row} .* yes `, 'm'), row);
  assert.match(out, /every phase matches the planner to the byte/);
});

test('step memory: refused flags, each in one line naming the flag', () => {
  const base = ['--preset', 'tiny', '--seq', '16'];
  const refused: [string[], RegExp][] = [
    [['--seq', '16'], /give --preset NAME/],
    [[...base, '--rank', '4'], /--rank applies to --method step or relora only, not --method vanilla; leave it out/],
    [[...base, '--method', 'step'], /--method step needs --stages K/],
    [[...base, '--method', 'step', '--stages', '1'], /--stages must be an integer in \[2, 4\]/],
    [[...base, '--method', 'step', '--split', '4'], /--split 4 has one stage/],
    [[...base, '--method', 'step', '--split', '2,1'], /sums to 3, but the model has 4 layers/],
    [[...base, '--method', 'step', '--split', '2,2', '--stages', '3'], /--stages 3 but --split 2,2 has 2 stages/],
    [[...base, '--method', 'step', '--stages', '2', '--rank', '999'], /rank 999 must be an integer in 1\.\.64/],
    [['--preset', 'tiny'], /--seq 256 \(the default\) is beyond the model's max_position_embeddings 128/],
    [[...base, '--method', 'lora'], /--method must be one of vanilla, step, galore, relora/],
    [[...base, '--precison', 'fp32'], /unknown option --precison \(did you mean --precision\?\)/],
    [[...base, '--set', 'vocab_size=5'], /use --vocab-size N/],
    [[...base, '--memory-limit', '3 parsecs'], /--memory-limit must be a positive size/],
    [[...base, '--steps', '0'], /--steps must be an integer in \[1, 100\]/],
    [[...base, '--batch', '2.5'], /--batch must be an integer >= 1/],
  ];
  for (const [args, message] of refused) {
    assert.throws(() => parseMemoryArgs(args), (e: unknown) => e instanceof UsageError && message.test(e.message) && !e.message.split('\n')[0]!.includes('undefined'), args.join(' '));
  }
  assert.equal(parseMemoryArgs(['--help']), null);
  assert.deepEqual(parseMemoryArgs([...base, '--method', 'step', '--stages', '2'])!.options.split.length, 2);
  assert.equal(parseSize('--memory-limit', '6GB'), 6e9);
  assert.equal(parseSize('--memory-limit', '1.5KiB'), 1536);
  assert.equal(parseSize('--memory-limit', '123'), 123);
});

test('step memory --memory-limit: a model state that cannot fit is refused before any device exists, naming categories and tensors', async () => {
  const o = options([3]);
  const plan = planFor(o);
  assert.throws(() => checkModelStateFits(o.config, plan, plan.peak - 1, 'step memory', '--memory-limit'), (e: unknown) => {
    assert.ok(e instanceof OutOfMemoryError);
    assert.match(e.message, /before allocating anything/);
    assert.match(e.message, new RegExp(`peaks at .* \\(${plan.peak} B\\) in vanilla training`));
    assert.match(e.message, /By category: optimizer .*, parameter .*, gradient /);
    assert.match(e.message, /Largest: adam\.m of model\.embed_tokens\.weight \[300, 32\] f32 = 37\.50 KiB \[optimizer\]/);
    assert.match(e.message, /--method step --stages K/);
    return true;
  });
  checkModelStateFits(o.config, plan, plan.peak, 'step memory', '--memory-limit'); // exactly enough: accepted
  const before = getDevice();
  await assert.rejects(memoryCommand(['--preset', 'tiny', ...SET, '--vocab-size', '300', '--seq', '16', '--memory-limit', String(plan.peak - 1), '--device', 'cpu']), OutOfMemoryError);
  assert.equal(getDevice(), before, 'no device was even created');
});

test('step memory: past the up-front check, activations beyond the limit fail in the tracker, and everything is freed', async () => {
  const device = new CpuBackend();
  const o = options([3]);
  setMemoryLimit(planFor(o).peak + 1024, device); // the model state fits, its activations do not
  await assert.rejects(measureMemory(o, device), (e: unknown) => {
    assert.ok(e instanceof OutOfMemoryError);
    assert.match(e.message, /Live by category: optimizer/);
    return true;
  });
  assert.equal(device.memory().allocated, 0, 'nothing is left allocated');
});

test('step memory through the CLI: --help, -h and `step help memory` print the usage (exit 0); a stray word gets a suggestion (exit 2)', () => {
  const step = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, STEP_DEVICE: 'cpu' } });
  for (const args of [['memory', '--help'], ['memory', '-h'], ['help', 'memory']]) {
    const r = step(...args);
    assert.equal(r.status, 0, args.join(' '));
    assert.match(r.stdout, /^usage: step memory/);
    assert.equal(r.stderr, '');
  }
  const stray = step('memory', '350m');
  assert.equal(stray.status, 2);
  assert.equal(stray.stderr, 'step memory: unexpected argument "350m" (did you mean --preset 350m?)\n');
});

test('step memory: a STEP run whose embedding and head are split into row blocks keeps every block\'s Adam state across a transition, to the byte', async () => {
  // 300 rows of 32 f32 (128 B each) under an 8 KiB cap: 5 row blocks per table (the 680m case on llvmpipe)
  const device = new CpuBackend({ maxBufferBytes: 8192 });
  const o = options([2, 1], { precision: 'fp32', stepsPerStage: 1 });
  const m = await measureMemory(o, device); // before the fix: "model.embed_tokens.weight is split into 5 row blocks"
  const plan = planFor(o);
  assert.deepEqual(m.phases.map((p) => p.measured), [plan.stages[0]!.bytes, plan.transitions[0]!.bytes, plan.stages[1]!.bytes]);
  assert.ok(m.match);
});
