/**
 * `step experiment-tasks` on a tiny experiment folder built here (cpu): vanilla and STEP K=2 runs
 * over 2 seeds, compared with --smoke sizes; identical tuning, results per model and stage, the
 * aggregate, the report, resume without rework, and the refusals.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { aggregateResults, compareMarkdown, markdownTable, accuracyColumns, formatSpreadCell, formatStderrCell, type ModelResult } from '../../../step/tasks-compare/aggregate.js';
import { DEFAULT_COMPARE, parseCompareArgs } from '../../../step/tasks-compare/options.js';
import { runComparison } from '../../../step/tasks-compare/run.js';
import { tuningOptions } from '../../../step/tasks-compare/tune.js';
import type { SftOptions } from '../../../step/sft/options.js';
import { train } from '../../../step/train/trainer.js';
import { captureStdout, CLI, events, runOptions } from '../run-fixtures.js';

const TMP = mkdtempSync(join(tmpdir(), 'step-exp-tasks-'));
after(() => rmSync(TMP, { recursive: true, force: true }));
const EXP = join(TMP, 'exp');

/** The experiment folder: runs/{vanilla,step2}-seed{1,2}, each with final/ (context 160, so pos-brown's prompts fit). */
const experiment = (async () => {
  for (const seed of [1, 2]) {
    for (const [kind, method] of [['vanilla', { method: 'vanilla' as const }], ['step2', { method: 'step' as const, stages: 2 }]] as const) {
      const base = runOptions();
      const o = runOptions({ ...method, runsDir: join(EXP, 'runs'), name: `${kind}-seed${seed}`, seed, steps: 4, checkpointEvery: 4, warmupSteps: 0,
        configOverrides: { ...base.configOverrides, max_position_embeddings: 160 } });
      await captureStdout(() => train(o));
    }
  }
  return EXP;
})();

/** The comparison at test sizes: --smoke, 3 examples per log-likelihood task, 2 generations. */
const compare = async (limit = '3') => {
  const lines: string[] = [];
  const args = ['--experiment', EXP, '--smoke', '--kinds', 'vanilla,step2', '--limit', limit, '--generation-limit', '2'];
  const { value } = await captureStdout(() => runComparison(parseCompareArgs(args), 'test', (l) => lines.push(l)));
  return { ...value, lines };
};

const MODELS = ['vanilla-seed1', 'step2-seed1', 'vanilla-seed2', 'step2-seed2'];
const tasksDir = join(EXP, 'tasks');
const pieces = () => MODELS.flatMap((m) => [join(tasksDir, 'models', m, 'zero-shot.json'), join(tasksDir, 'models', m, 'tuned.json'), join(tasksDir, 'sft', m, 'log.jsonl')]);
const mtimes = () => new Map(pieces().map((p) => [p, statSync(p).mtimeMs]));

test('experiment-tasks: every model evaluated zero-shot and after tuning, all tuned alike; summary, table and report; a rerun redoes nothing', async () => {
  await experiment;
  const r = await compare();
  assert.deepEqual(r.groups.map((g) => `${g.kind}/${g.stage}/${g.seeds.join(',')}`), ['vanilla/zero-shot/1,2', 'vanilla/tuned/1,2', 'step2/zero-shot/1,2', 'step2/tuned/1,2']);
  for (const g of r.groups) {
    assert.deepEqual(g.metrics.map((m) => `${m.task}/${m.metric}`), ['lambada-brown/acc', 'lambada-brown/perplexity', 'next-sentence-brown/acc', 'next-sentence-brown/acc_norm', 'pos-brown/exact_match', 'pos-brown/token_acc']);
    for (const m of g.metrics) assert.ok(m.n === (m.task === 'pos-brown' ? 2 : 3) && m.values.length === 2 && Number.isFinite(m.mean) && m.std >= 0, `${g.kind} ${m.task} ${m.metric}`);
  }
  // every model tuned on the same records in the same order: the same options but the checkpoint and name, the same data, the same batches
  const configs = MODELS.map((m) => JSON.parse(readFileSync(join(tasksDir, 'sft', m, 'sft-config.json'), 'utf8')) as { options: SftOptions; dataSha256: string });
  const common = ({ checkpoint: _c, name: _n, ...rest }: SftOptions) => rest;
  for (const [i, c] of configs.entries()) {
    assert.deepEqual(common(c.options), common(configs[0]!.options), `${MODELS[i]}: the same tuning`);
    assert.equal(c.dataSha256, configs[0]!.dataSha256);
    assert.equal(c.options.checkpoint, join(EXP, 'runs', MODELS[i]!, 'final'), 'the run\'s final model is what is tuned');
    assert.equal(c.options.data, join(tasksDir, 'pos-brown-sft.jsonl'));
    const tokens = events(join(tasksDir, 'sft', MODELS[i]!), 'train').map((e) => e.tokens);
    assert.deepEqual(tokens, events(join(tasksDir, 'sft', MODELS[0]!), 'train').map((e) => e.tokens), 'the same batches, step by step');
    assert.equal(tokens.length, 4);
  }
  for (const m of MODELS) {
    const zero = JSON.parse(readFileSync(join(tasksDir, 'models', m, 'zero-shot.json'), 'utf8')) as { model: string; rows: unknown[] };
    const tuned = JSON.parse(readFileSync(join(tasksDir, 'models', m, 'tuned.json'), 'utf8')) as { model: string; rows: unknown[] };
    assert.equal(zero.model, join(EXP, 'runs', m, 'final'));
    assert.equal(tuned.model, join(tasksDir, 'sft', m, 'final'));
    assert.equal(zero.rows.length, 6);
    assert.equal(tuned.rows.length, 6);
  }
  const md = readFileSync(join(tasksDir, 'summary.md'), 'utf8');
  assert.match(md, /\| kind \| stage \| lambada-brown acc \| next-sentence-brown acc \| next-sentence-brown acc_norm \| pos-brown exact_match \| pos-brown token_acc \|\n/);
  assert.match(md, /\n\| step2 \| after SFT \| \d\.\d{3} ± \d\.\d{3} \|/);
  const summary = JSON.parse(readFileSync(join(tasksDir, 'summary.json'), 'utf8')) as { models: unknown[]; groups: unknown[] };
  assert.equal(summary.models.length, 4);
  assert.equal(summary.groups.length, 4);
  const html = readFileSync(r.reportPath, 'utf8');
  assert.match(html, /<h2 id="downstream">Downstream tasks: zero-shot and after instruction tuning<\/h2>/);
  assert.match(html, /<td>step2<\/td><td>after SFT<\/td><td title="seeds 1, 2: /);

  // a rerun reuses every piece: nothing is evaluated or tuned again
  const before = mtimes();
  const again = await compare();
  assert.deepEqual(mtimes(), before, 'no result file or tuning log rewritten');
  assert.equal(again.lines.filter((l) => /^zero-shot: reused/.test(l)).length, 4);
  assert.equal(again.lines.filter((l) => /: finished before, reused$/.test(l)).length, 4);
  assert.equal(again.markdown, r.markdown.replace(/ in this process.*/s, ''), 'the same tables');
  // one missing piece is redone alone
  rmSync(join(tasksDir, 'models', 'step2-seed2', 'tuned.json'));
  await compare();
  const after = mtimes();
  for (const [p, t] of before) {
    if (p.endsWith(join('step2-seed2', 'tuned.json'))) assert.ok(existsSync(p) && after.get(p)! > 0);
    else assert.equal(after.get(p), t, `${p} untouched`);
  }
  // other settings in the same folder are refused, naming the flag
  await assert.rejects(compare('5'), /holds a comparison made with other settings \(--limit 3 there, 5 now\); give the same flags to continue it, or another --name/);
});

test('experiment-tasks: clear errors for a missing folder, a kind without runs, a run without final/', async () => {
  await experiment;
  const run = (exp: string, ...args: string[]) => runComparison(parseCompareArgs(['--experiment', exp, '--smoke', ...args]), 'test', () => {});
  await assert.rejects(run(join(TMP, 'nope')), /experiment folder .*nope does not exist; pass the folder step experiment --out wrote/);
  await assert.rejects(run(EXP, '--kinds', 'vanilla,step3'), /runs holds no run of kind step3 \(folders step3-seedS\)/);
  const unfinished = join(TMP, 'unfinished');
  mkdirSync(join(unfinished, 'runs', 'vanilla-seed1'), { recursive: true });
  await assert.rejects(run(unfinished, '--kinds', 'vanilla'), /no run of kind vanilla in .* has finished \(none has final\/\)/);
  await assert.rejects(run(unfinished, '--kinds', 'vanilla', '--seeds', '1'), /vanilla-seed1 has no final model \(final\/ of its latest step\): the run is unfinished/);
  await assert.rejects(run(EXP, '--kinds', 'vanilla', '--seeds', '1,3'), /vanilla-seed3 does not exist \(kind vanilla has seeds 1, 2\); give --seeds that every kind has/);
  assert.throws(() => parseCompareArgs([]), /--experiment OUT is required/);
  assert.throws(() => parseCompareArgs(['--experiment', EXP, '--kinds', 'vanilla,steps2']), /--kinds takes kinds of step experiment .*; got "steps2"/);
  assert.throws(() => parseCompareArgs(['--experiment', EXP, '--sft-epochs', '2']), /--sft-epochs 2 needs --sft-steps 0/);
  assert.throws(() => parseCompareArgs(['--experiment', EXP, '--name', '../x']), /--name must be a plain folder name/);
  const lora = tuningOptions(parseCompareArgs(['--experiment', EXP, '--lora-rank', '4', '--sft-steps', '0', '--sft-epochs', '2']), '/c', '/d', '/r', 'n');
  assert.deepEqual([lora.loraRank, lora.steps, lora.epochs, lora.checkpoint, lora.data, lora.name], [4, 0, 2, '/c', '/d', 'n'], 'LoRA tuning and whole epochs reach step sft');
  const d = parseCompareArgs(['--experiment', EXP]);
  assert.deepEqual([d.kinds, d.seeds, d.limit, d.sftSteps, d.loraRank, d.template], [['vanilla', 'step2', 'step3'], null, DEFAULT_COMPARE.limit, DEFAULT_COMPARE.sftSteps, 0, 'compact']);
});

test('experiment-tasks aggregate: mean and std over seeds, per-model stderr averaged, the Markdown cells', () => {
  const row = (task: string, metric: string, value: number, stderr: number | null) => ({ task, metric, value, stderr, n: 100 });
  const results: ModelResult[] = [[1, 0.5, 0.1], [2, 0.6, 0.2], [3, 0.7, 0.3]].map(([seed, acc, se]) => ({
    name: `vanilla-seed${seed}`, kind: 'vanilla', seed: seed!, stage: 'zero-shot' as const, rows: [row('t', 'acc', acc!, se!), row('t', 'perplexity', 10 * seed!, null)],
  }));
  results.push({ name: 'step2-seed1', kind: 'step2', seed: 1, stage: 'tuned', rows: [row('t', 'acc', 0.25, 0.05)] });
  const groups = aggregateResults(results, ['vanilla', 'step2']);
  assert.deepEqual(groups.map((g) => `${g.kind}/${g.stage}`), ['vanilla/zero-shot', 'step2/tuned']);
  const acc = groups[0]!.metrics[0]!;
  assert.ok(Math.abs(acc.mean - 0.6) < 1e-12 && Math.abs(acc.std - 0.1) < 1e-12 && Math.abs(acc.stderr! - 0.2) < 1e-12, JSON.stringify(acc));
  const ppl = groups[0]!.metrics[1]!;
  assert.deepEqual([ppl.mean, ppl.std, ppl.stderr], [20, 10, null]);
  const one = groups[1]!.metrics[0]!;
  assert.deepEqual([one.mean, one.std, one.stderr, one.values], [0.25, 0, 0.05, [0.25]], 'one seed: std 0');
  assert.equal(formatStderrCell(acc), '0.600 ± 0.200');
  assert.equal(markdownTable(groups, accuracyColumns(groups), formatStderrCell), [
    '| kind | stage | t acc |', '| --- | --- | --- |', '| vanilla | zero-shot | 0.600 ± 0.200 |', '| step2 | after SFT | 0.250 ± 0.050 |',
  ].join('\n'));
  assert.match(compareMarkdown(groups, results, ['h']), /\| vanilla \| zero-shot \| 0\.600 ± 0\.100 \| 20\.0 ± 10\.0 \|/);
  assert.equal(formatSpreadCell({ ...ppl, mean: 1.6e10, std: 2e9 }), '1.60e+10 ± 2.00e+9', 'huge perplexities in exponent form');
});

test('the CLI knows experiment-tasks: --help prints the usage; a missing folder is one line (exit 1)', () => {
  const r = spawnSync(process.execPath, [CLI, 'help', 'experiment-tasks'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^usage: step experiment-tasks --experiment OUT/);
  const bad = spawnSync(process.execPath, [CLI, 'experiment-tasks', '--experiment', join(TMP, 'nope'), '--smoke'], { encoding: 'utf8' });
  assert.equal(bad.status, 1, bad.stderr);
  assert.match(bad.stderr, /^step experiment-tasks: experiment folder .*nope does not exist; pass the folder step experiment --out wrote\n$/);
});
