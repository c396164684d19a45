import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_EXPERIMENT, parseExperimentArgs } from '../../step/experiment/design.js';
import { runFlops } from '../../step/experiment/flops.js';
import { availableKinds, EXPERIMENT_RUNS, experimentRuns, experimentTarget } from '../../step/experiment/runs.js';
import { runExperiment } from '../../step/experiment/run.js';
import { spread } from '../../step/experiment/summary.js';
import { countParameters } from '../../models/config-params.js';
import { tinyCorpus } from '../helpers/corpus.js';

test('experiment: defaults (12 layers, 3 seeds, every available run), arguments, and the run list', () => {
  const d = parseExperimentArgs([]);
  const target = experimentTarget(d);
  assert.equal(target.num_hidden_layers, 12);
  const n = countParameters(target);
  assert.ok(n.layers / n.total > 0.9, `layers dominate: ${n.layers / n.total}`);
  assert.deepEqual(d.seeds, [1, 2, 3]);
  assert.ok(d.finalEvalTokens >= 100_000);
  assert.deepEqual(d.runs, availableKinds());
  for (const k of ['vanilla', 'step2', 'step3', 'relora', 'no-pet', 'placement-intermediate', 'placement-lower', 'placement-random', 'frozen-embeddings', 'vanilla-lr-third', 'step2-lr-third']) assert.ok(d.runs.includes(k), k);
  assert.ok(EXPERIMENT_RUNS.some((r) => r.kind === 'galore'), 'GaLore has its slot');
  assert.match(d.out, /^experiments\/step-small-/);
  const o = parseExperimentArgs(['--steps', '40', '--set', 'num_hidden_layers=6', '--runs', 'vanilla,step3', '--seeds', '4,5', '--out', 'x']);
  assert.deepEqual(o.configOverrides, { num_hidden_layers: 6 }, '--set replaces the default overrides');
  assert.deepEqual([o.runs, o.seeds], [['vanilla', 'step3'], [4, 5]]);
  assert.throws(() => parseExperimentArgs(['--runs', 'step2']), /--runs must include vanilla/);
  assert.throws(() => parseExperimentArgs(['--runs', 'vanilla,steps2']), /--runs takes vanilla, step2, .*; got "steps2"/);
  assert.throws(() => parseExperimentArgs(['--stepz', '3']), /unknown option --stepz/);
  assert.throws(() => parseExperimentArgs(['--seeds', '1,,2']), /--seeds takes a comma-separated list/);

  const runs = experimentRuns({ ...DEFAULT_EXPERIMENT, out: 'x' }, '/tmp/r');
  assert.ok(availableKinds().includes('galore'), 'step train offers --method galore, so the experiment runs it');
  const galore = runs.find((r) => r.name === 'galore-seed1')!;
  assert.equal(galore.options.galoreUpdateGap, Math.floor(DEFAULT_EXPERIMENT.steps / 6), 'GaLore refreshes every sixth of the run');
  assert.equal(runs.length, 3 * (availableKinds().length + 3), 'per seed: every kind at equal tokens, STEP K=2, K=3 and ReLoRA also at equal FLOPs');
  assert.equal(new Set(runs.map((r) => r.name)).size, runs.length);
  assert.deepEqual(runs.slice(0, 9).map((r) => r.name), ['vanilla', 'step2', 'step2-eqflops'].flatMap((k) => [1, 2, 3].map((s) => `${k}-seed${s}`)),
    'kind by kind over every seed: an interrupted experiment already has the spread of vanilla and STEP');
  const vanilla = runs.find((r) => r.name === 'vanilla-seed1')!;
  const vanillaFlops = runFlops(vanilla.options, experimentTarget(DEFAULT_EXPERIMENT as never));
  for (const r of runs) {
    for (const key of ['batchSize', 'seqLen', 'gradAccum', 'warmupSteps', 'minLrRatio', 'data', 'vocabSize', 'preset', 'configOverrides'] as const) {
      assert.deepEqual(r.options[key], vanilla.options[key], `${r.name}: same ${key} as vanilla`);
    }
    // the same rate, but for the learning-rate check: vanilla and STEP K=2 at a third of it
    assert.equal(r.options.lr, r.kind.endsWith('-lr-third') ? vanilla.options.lr / 3 : vanilla.options.lr, `${r.name}: learning rate`);
    assert.equal(r.options.seed, r.seed, 'the seed sets the initialisation and the data order: every run of a seed sees the same batches');
    if (r.budget === 'tokens') assert.equal(r.options.steps, DEFAULT_EXPERIMENT.steps, `${r.name}: equal tokens`);
    else {
      const flops = runFlops(r.options, experimentTarget(DEFAULT_EXPERIMENT as never));
      const perStep = flops / r.options.steps;
      assert.ok(Math.abs(flops - vanillaFlops) <= perStep, `${r.name}: ${r.options.steps} steps give vanilla's FLOPs to within a step`);
      assert.ok(r.options.steps > DEFAULT_EXPERIMENT.steps, `${r.name}: more tokens than vanilla at equal FLOPs`);
    }
  }
  assert.deepEqual(spread([1, 2, 3]), { mean: 2, std: 1, n: 3 });
});

test('experiment --smoke: every run over 2 seeds, final models evaluated on the held-out tokens, mean and spread in the summary and the report; a rerun reuses the runs', async () => {
  const out = join(mkdtempSync(join(tmpdir(), 'step-exp-')), 'exp');
  const e = parseExperimentArgs(['--smoke', '--data', tinyCorpus({ seed: 11 }), '--out', out]);
  const lines: string[] = [];
  const r = await runExperiment(e, 'test', (l) => lines.push(l));
  const { groups, rows } = r.summary;
  assert.equal(rows.length, 2 * (availableKinds().length + 3));
  assert.deepEqual(groups.map((g) => `${g.kind}/${g.budget}`), availableKinds().flatMap((k) => (['step2', 'step3', 'relora'].includes(k) ? [`${k}/tokens`, `${k}/flops`] : [`${k}/tokens`])));
  for (const g of groups) {
    assert.equal(g.valLoss!.n, 2, `${g.kind}: two seeds`);
    assert.ok(Number.isFinite(g.valLoss!.mean) && g.valLoss!.std >= 0);
    if (g.kind !== 'vanilla') assert.ok(Number.isFinite(g.lossVsVanilla!), `${g.kind}: compared with vanilla`);
    if (g.kind.startsWith('step') || g.kind.startsWith('placement') || g.kind === 'no-pet' || g.kind === 'frozen-embeddings') assert.equal(g.predictionExact, true, `${g.kind}: measured = planned`);
  }
  for (const row of rows) assert.ok(row.evalTokens >= e.finalEvalTokens, `${row.run}: ${row.evalTokens} held-out tokens`);
  const seed1 = rows.filter((x) => x.seed === 1 && x.budget === 'tokens');
  assert.equal(new Set(seed1.map((x) => x.tokens)).size, 1, 'equal tokens');
  const flopsRuns = rows.filter((x) => x.budget === 'flops');
  const vanillaFlops = rows.find((x) => x.kind === 'vanilla')!.flops;
  for (const x of flopsRuns) assert.ok(x.tokens > seed1[0]!.tokens && Math.abs(x.flops - vanillaFlops) / vanillaFlops < 0.2, `${x.run}: equal FLOPs`);
  const html = readFileSync(r.reportPath, 'utf8');
  assert.match(html, /Experiment: final validation over seeds/);
  assert.match(html, /<svg width="\d+" height="\d+" role="img" aria-label="validation loss, mean and standard deviation over seeds">/);
  const md = readFileSync(join(r.dir, 'summary.md'), 'utf8');
  assert.match(md, /\| STEP K=2, paper defaults \| equal FLOPs \| 1,2 \|/);
  assert.match(md, /\d\.\d{4} ± \d\.\d{4}/);
  const again: string[] = [];
  const r2 = await runExperiment(e, 'test', (l) => again.push(l));
  assert.equal(again.filter((l) => l.includes('finished before, reused')).length, rows.length);
  assert.deepEqual(r2.summary.rows.map((x) => x.valLoss), rows.map((x) => x.valLoss));
  await assert.rejects(runExperiment({ ...e, steps: 10 }, 'test', () => {}), /holds a run with other options than this experiment's; delete that folder or choose another --out/);
  // --finished-only with a third seed not yet trained: nothing trains, the summary covers seeds 1 and 2 and names the rest
  assert.equal(parseExperimentArgs(['--smoke', '--finished-only']).finishedOnly, true);
  const partial = await runExperiment({ ...e, seeds: [1, 2, 3] }, 'test', () => {}, true);
  assert.deepEqual(partial.summary.rows.map((x) => x.valLoss), rows.map((x) => x.valLoss));
  assert.ok(!existsSync(join(out, 'runs', 'vanilla-seed3')), 'nothing trained');
  // a run another process has just started (its folder, no checkpoint yet) is unfinished, not an error
  mkdirSync(join(out, 'runs', 'vanilla-seed3'));
  writeFileSync(join(out, 'runs', 'vanilla-seed3', 'train-config.json'), JSON.stringify({ started: 'elsewhere' }));
  const during = await runExperiment({ ...e, seeds: [1, 2, 3] }, 'test', () => {}, true);
  assert.equal(during.summary.rows.length, rows.length, 'the finished runs, the started one left out');
  await assert.rejects(runExperiment({ ...e, seeds: [1, 2, 3] }, 'test', () => {}), /vanilla-seed3 holds a run with other options/, 'training still refuses the folder');
  rmSync(join(out, 'runs', 'vanilla-seed3'), { recursive: true });
  assert.match(partial.markdown, new RegExp(`Partial summary\\*\\*: ${rows.length} of ${rows.length * 3 / 2} runs finished; not yet: vanilla-seed3, `));
  await assert.rejects(runExperiment({ ...e, seeds: [4] }, 'test', () => {}, true), /--finished-only: no run of this experiment has finished/);
});
