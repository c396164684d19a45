import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_EXPERIMENT, experimentRuns, parseExperimentArgs } from '../../step/experiment/design.js';
import type { ExperimentOptions } from '../../step/experiment/design.js';
import { runExperiment } from '../../step/experiment/run.js';
import { tinyCorpus } from '../helpers/corpus.js';


test('experiment: arguments, defaults and equal-token runs', () => {
  const d = parseExperimentArgs([]);
  assert.equal(d.preset, 'small');
  assert.deepEqual(d.configOverrides, { num_hidden_layers: 8 });
  assert.match(d.out, /^experiments\/step-small-/);
  const o = parseExperimentArgs(['--steps', '40', '--set', 'num_hidden_layers=6', '--methods', 'vanilla,step3', '--out', 'x']);
  assert.deepEqual(o.configOverrides, { num_hidden_layers: 6 }, '--set replaces the default overrides');
  assert.deepEqual(o.methods, ['vanilla', 'step3']);
  assert.deepEqual(parseExperimentArgs(['--preset', 'tiny']).configOverrides, {}, 'the 8-layer default belongs to small');
  assert.throws(() => parseExperimentArgs(['--methods', 'lomo']), /--methods takes vanilla, step2, step3, relora, galore; got "lomo"/);
  assert.throws(() => parseExperimentArgs(['--stepz', '3']), /unknown option --stepz/);
  assert.throws(() => parseExperimentArgs(['--steps']), /--steps needs a value/);
  const runs = experimentRuns({ ...DEFAULT_EXPERIMENT, out: 'x' }, '/tmp/r');
  assert.deepEqual(runs.map((r) => r.name), ['vanilla', 'step-2-stages', 'step-3-stages', 'relora', 'galore']);
  for (const key of ['steps', 'batchSize', 'seqLen', 'gradAccum', 'lr', 'warmupSteps', 'minLrRatio', 'seed', 'data', 'vocabSize', 'preset'] as const) {
    assert.equal(new Set(runs.map((r) => JSON.stringify(r[key]))).size, 1, `every run has the same ${key}`);
  }
});

test('experiment: a tiny run of all five methods writes a report and a summary naming every run; a rerun reuses them', async () => {
  const e: ExperimentOptions = {
    ...DEFAULT_EXPERIMENT, out: join(mkdtempSync(join(tmpdir(), 'step-exp-')), 'exp'), preset: 'tiny', data: tinyCorpus({ seed: 11 }), vocabSize: 300,
    configOverrides: { hidden_size: 32, intermediate_size: 48, num_hidden_layers: 3, num_attention_heads: 2, num_key_value_heads: 2, max_position_embeddings: 64 },
    steps: 8, batchSize: 4, seqLen: 16, warmupSteps: 1, evalEvery: 4, evalBatches: 2, loraRank: 4, device: 'cpu',
  };
  const lines: string[] = [];
  const r = await runExperiment(e, 'test', (l) => lines.push(l));
  const html = readFileSync(r.reportPath, 'utf8');
  const names = ['vanilla', 'step-2-stages', 'step-3-stages', 'relora', 'galore'];
  for (const n of names) assert.ok(html.includes(`<b>${n}</b>`), `report mentions ${n}`);
  const summary = JSON.parse(readFileSync(join(r.dir, 'summary.json'), 'utf8'));
  assert.deepEqual(summary.rows.map((x: { run: string }) => x.run), names);
  const md = readFileSync(join(r.dir, 'summary.md'), 'utf8');
  for (const n of names) assert.match(md, new RegExp(`\\| ${n} \\|`));
  const rows = r.summary.rows;
  assert.equal(new Set(rows.map((x) => x.tokens)).size, 1, 'equal tokens');
  assert.equal(rows[0]!.tokens, 8 * 4 * 16);
  for (const x of rows) assert.ok(Number.isFinite(x.valLoss) && Number.isFinite(x.peakModelState), `${x.run}: final loss and memory`);
  const [vanilla, step2, step3, , galore] = rows;
  assert.equal(vanilla!.predictionExact, true);
  assert.equal(galore!.predictionExact, true, 'GaLore: measured bytes equal the planner\'s');
  assert.equal(galore!.peakModelState, galore!.predictedPeak, 'GaLore: measured peak = planned');
  assert.ok(galore!.memoryReduction! > 0, `GaLore holds less model state than vanilla (${galore!.memoryReduction})`);
  for (const s of [step2!, step3!]) {
    assert.equal(s.predictionExact, true, `${s.run}: measured bytes equal the planner's in every stage`);
    assert.equal(s.peakModelState, s.predictedPeak, `${s.run}: measured peak = planned peak`);
    assert.ok(Math.abs(s.memoryReduction! - s.predictedReduction!) < 1e-12, `${s.run}: measured reduction = planned reduction`);
  }
  assert.equal(r.summary.target!.layers, 3);
  // A rerun finds every run finished and only rewrites the report.
  const again: string[] = [];
  const r2 = await runExperiment(e, 'test', (l) => again.push(l));
  assert.equal(again.filter((l) => l.includes('finished before, reused')).length, 5);
  assert.deepEqual(r2.summary.rows.map((x) => x.valLoss), rows.map((x) => x.valLoss));
  // A folder holding a run with other options is refused rather than mixed in.
  await assert.rejects(runExperiment({ ...e, steps: 10 }, 'test', () => {}), /holds a run with other options than this experiment's; delete that folder or choose another --out/);
  assert.ok(existsSync(join(r.dir, 'runs', 'relora', 'log.jsonl')));
});
