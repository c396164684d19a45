/**
 * `step memory --method galore|relora`: real training steps through every phase of GaLore's and
 * ReLoRA's runs (a projector refresh; the warm start, the switch to LoRA, a merge-and-restart),
 * the measured model state equal to the planner's per category, on both backends, fp32 and mixed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import type { Backend } from '../../index.js';
import { CpuBackend, OutOfMemoryError } from '../../index.js';
import { presetConfig } from '../../models/config-presets.js';
import { UsageError } from '../../step/cli-args.js';
import { parseMemoryArgs } from '../../step/commands/memory.js';
import { checkPredictionFits } from '../../step/memory/budget.js';
import { formatMeasurement } from '../../step/memory/format.js';
import type { MemoryRunOptions } from '../../step/memory/measure.js';
import { measureMemory, predictMemory } from '../../step/memory/measure.js';
import { engineCostModel, galoreModelState, reloraModelState } from '../../step/planner/index.js';
import { testBothBackends } from '../helpers/backends.js';
import { CLI } from './run-fixtures.js';

/** A 3-layer model small enough that a training step takes milliseconds. */
const SMALL = { hidden_size: 32, intermediate_size: 48, num_hidden_layers: 3, num_attention_heads: 2, num_key_value_heads: 2, vocab_size: 300, max_position_embeddings: 64 };
const SET = Object.entries(SMALL).filter(([k]) => k !== 'vocab_size').flatMap(([k, v]) => ['--set', `${k}=${v}`]);
const config = presetConfig('tiny', SMALL);

function options(method: 'galore' | 'relora', over: Partial<MemoryRunOptions> = {}): MemoryRunOptions {
  return {
    config, method, split: [3], rank: 4, precision: 'mixed', batch: 2, seq: 16, checkpointActivations: false, stepsPerStage: 2, seed: 3,
    ...(method === 'galore' ? { galore: { rank: 4, updateGap: 1 } } : {}), ...over,
  };
}

testBothBackends('step memory --method galore: measured = galoreModelState per category, through two projector refreshes (fp32 and mixed)', async (device: Backend) => {
  for (const precision of ['fp32', 'mixed'] as const) {
    const o = options('galore', { precision });
    const m = await measureMemory(o, device);
    const expected = galoreModelState(config, { rank: 4, precision }).bytes;
    assert.equal(m.phases.length, 1);
    const [p] = m.phases;
    assert.equal(p!.label, 'GaLore');
    assert.deepEqual(p!.measured, expected, `${precision}: model state by category`);
    assert.ok(expected.optimizer < engineCostModel(config, 4, precision).vanilla.optimizer, 'projected moments are smaller than AdamW\'s');
    assert.equal(p!.losses.length, 2);
    assert.ok(p!.losses.every(Number.isFinite));
    assert.deepEqual(m.wholeRun.modelState, expected);
    assert.ok(m.match);
    assert.match(m.notes.join('\n'), /projectors of the 21 projected linears were refreshed .* at step 1, 2 of 2 \(--galore-update-gap 1\)/);
  }
});

testBothBackends('step memory --method relora: warm start, switch, LoRA and restart each = reloraModelState per category (fp32 and mixed)', async (device: Backend) => {
  for (const precision of ['fp32', 'mixed'] as const) {
    const o = options('relora', { precision, stepsPerStage: 1, checkpointActivations: precision === 'mixed' });
    const m = await measureMemory(o, device);
    const s = reloraModelState(config, { rank: 4, precision });
    assert.deepEqual(m.phases.map((p) => p.label), ['warm start', 'warm->LoRA', 'LoRA', 'restart']);
    assert.deepEqual(m.phases.map((p) => p.measured), [s.warmStart, s.switch, s.lora, s.lora], `${precision}: every phase by category`);
    assert.deepEqual(s.warmStart, engineCostModel(config, 4, precision).vanilla, 'the warm start is vanilla training');
    assert.ok(m.phases.every((p) => p.match));
    assert.deepEqual(m.phases.map((p) => p.losses.length), [1, 0, 1, 1]);
    assert.equal(m.wholeRun.modelState.total, s.warmStart.total, 'the whole run peaks in the full-rank warm start');
    assert.ok(m.match);
    assert.match(m.notes.join('\n'), /a restart after step 2 \(21 adapters merged and re-initialised/);
  }
});

test('step memory: a prediction off in one category (same total) is a mismatch, marked NO in that row', async () => {
  const o = options('relora', { stepsPerStage: 1 });
  const wrong = predictMemory(o);
  const lora = wrong.phases.find((p) => p.label === 'LoRA')!;
  lora.bytes = { ...lora.bytes, gradient: lora.bytes.gradient + 2, optimizer: lora.bytes.optimizer - 2 };
  const m = await measureMemory(o, new CpuBackend(), undefined, wrong);
  assert.deepEqual(m.phases.map((p) => p.match), [true, true, false, true]);
  assert.equal(m.match, false);
  const table = formatMeasurement(m, o, 'test');
  assert.match(table, /^LoRA .* NO /m);
  assert.match(table, /MISMATCH/);
});

test('step memory --memory-limit with galore and relora: refused up front, naming the phase at the peak and what to try', () => {
  const galore = options('galore');
  const pg = predictMemory(galore);
  assert.throws(() => checkPredictionFits(galore, pg, pg.peak - 1, 'step memory', '--memory-limit'),
    (e: unknown) => e instanceof OutOfMemoryError && /in GaLore training/.test(e.message) && /Largest: adam\.m of model\.embed_tokens\.weight \[300, 32\] f32/.test(e.message) && /Use a smaller --galore-rank, a smaller model/.test(e.message));
  const relora = options('relora', { precision: 'fp32' });
  const pr = predictMemory(relora);
  assert.throws(() => checkPredictionFits(relora, pr, pr.peak - 1, 'step memory', '--memory-limit'),
    (e: unknown) => e instanceof OutOfMemoryError && /in ReLoRA's warm start phase/.test(e.message) && /full-rank warm start holds vanilla's bytes\), mixed precision/.test(e.message));
  checkPredictionFits(relora, pr, pr.peak, 'step memory', '--memory-limit');
});

test('step memory: galore and relora flags; flags of another method are refused in one line naming them', () => {
  const base = ['--preset', 'tiny', '--seq', '16'];
  const g = parseMemoryArgs([...base, '--method', 'galore'])!.options;
  assert.deepEqual(g.galore, { rank: 16, updateGap: 200 }, 'step train\'s defaults: hidden/4, 200');
  assert.deepEqual(parseMemoryArgs([...base, '--method', 'galore', '--galore-rank', '8', '--galore-update-gap', '5'])!.options.galore, { rank: 8, updateGap: 5 });
  const r = parseMemoryArgs([...base, '--method', 'relora'])!.options;
  assert.equal(r.rank, 8, 'step train\'s --lora-rank default');
  assert.equal(r.galore, undefined);
  assert.deepEqual(r.split, [4]);
  const refused: [string[], RegExp][] = [
    [[...base, '--method', 'step', '--stages', '2', '--galore-rank', '8'], /--galore-rank applies to --method galore only, not --method step; leave it out/],
    [[...base, '--galore-update-gap', '5'], /--galore-update-gap applies to --method galore only, not --method vanilla/],
    [[...base, '--method', 'galore', '--rank', '4'], /--rank applies to --method step or relora only, not --method galore/],
    [[...base, '--method', 'relora', '--stages', '2', '--split', '2,2'], /--stages, --split apply to --method step only, not --method relora; leave them out/],
    [[...base, '--method', 'galore', '--galore-rank', '65'], /--galore-rank must be an integer in \[1, 64\]/],
    [[...base, '--method', 'galore', '--galore-update-gap', '0'], /--galore-update-gap must be an integer >= 1/],
  ];
  for (const [args, message] of refused) {
    assert.throws(() => parseMemoryArgs(args), (e: unknown) => e instanceof UsageError && message.test(e.message), args.join(' '));
  }
});

test('step memory --method galore --json and --method relora through the CLI (exit 0, every phase matches)', () => {
  const run = (...args: string[]) => spawnSync(process.execPath, [CLI, 'memory', '--preset', 'tiny', ...SET, '--vocab-size', '300', '--seq', '16', '--device', 'cpu', ...args], { encoding: 'utf8' });
  const g = run('--method', 'galore', '--galore-rank', '4', '--precision', 'fp32', '--json');
  assert.equal(g.status, 0, g.stderr);
  const j = JSON.parse(g.stdout) as Record<string, any>;
  assert.deepEqual(j.settings.galore, { rank: 4, updateGap: 200 });
  assert.equal(j.plan.galore.bytes.total, galoreModelState(config, { rank: 4, precision: 'fp32' }).bytes.total);
  assert.equal(j.plan.peak, j.wholeRun.modelState.total);
  assert.equal(j.match, true);
  const r = run('--method', 'relora', '--rank', '4');
  assert.equal(r.status, 0, r.stderr);
  for (const row of ['warm start', 'warm->LoRA', 'LoRA', 'restart', 'whole run']) assert.match(r.stdout, new RegExp(`^${row} .* yes `, 'm'), row);
  assert.match(r.stdout, /ReLoRA LoRA rank 4/);
});
