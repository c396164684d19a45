import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { appendFileSync, cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_TRAIN_OPTIONS } from '../../step/train/options.js';
import type { TrainOptions } from '../../step/train/options.js';
import { train } from '../../step/train/trainer.js';
import { loadRun } from '../../step/report/load-run.js';
import { writeReport } from '../../step/report/html.js';
import { report } from '../../step/commands/report.js';
import { tinyCorpus } from '../helpers/corpus.js';

const REQUIRE = process.env.STEP_REQUIRE_WEBGPU === '1';


const ROOT = mkdtempSync(join(tmpdir(), 'step-report-'));
const RUNS = join(ROOT, 'runs');
const NAMES = ['vanilla', 'step-2', 'relora'];

before(async () => {
  const data = tinyCorpus();
  const base: TrainOptions = {
    ...DEFAULT_TRAIN_OPTIONS, runsDir: RUNS, data, vocabSize: 300, seqLen: 16, batchSize: 4, steps: 8, warmupSteps: 1, evalEvery: 4,
    evalBatches: 2, checkpointEvery: 0, device: 'cpu', loraRank: 4,
    configOverrides: { hidden_size: 32, intermediate_size: 48, num_hidden_layers: 4, num_attention_heads: 2, num_key_value_heads: 2, max_position_embeddings: 64 },
  };
  await train({ ...base, name: 'vanilla' });
  await train({ ...base, name: 'step-2', method: 'step', stages: 2 });
  await train({ ...base, name: 'relora', method: 'relora', reloraWarmStart: 2, reloraEvery: 3 });
});

/** The JSON the page's script draws from. */
function pageData(html: string): { runs: { name: string; train: number[][]; evals: number[][]; stageTokens: number[] }[]; stateGroups: { run: string; stage: string }[] } {
  const m = /<script type="application\/json" id="report-data">([\s\S]*?)<\/script>/.exec(html);
  assert.ok(m, 'the page embeds its chart data');
  return JSON.parse(m[1]!);
}

test('report: one self-contained page with every run, its memory, the STEP planner table and the configs', async () => {
  const out = join(ROOT, 'out', 'all.html');
  const { path, summaries } = await writeReport(NAMES.map((n) => join(RUNS, n)), out);
  assert.equal(path, out);
  const html = readFileSync(out, 'utf8');
  assert.deepEqual(readdirSync(join(ROOT, 'out')), ['all.html'], 'no temp file left next to the report');
  for (const n of NAMES) assert.ok(html.includes(`<b>${n}</b>`), `summary row for ${n}`);
  // self-contained: no external scripts, styles, images or fonts
  assert.doesNotMatch(html, /<(link|img|iframe)\b|\bsrc=|https?:\/\/(?!www\.w3\.org\/2000\/svg)|@import|url\((?!#)/i);
  const data = pageData(html);
  assert.deepEqual(data.runs.map((r) => r.name), NAMES);
  for (const r of data.runs) {
    assert.equal(r.train.length, 8, `${r.name}: a point per step`);
    assert.deepEqual(r.train.map((p) => p[0]), [1, 2, 3, 4, 5, 6, 7, 8].map((s) => s * 64), `${r.name}: x is tokens`);
    assert.deepEqual(r.evals.map((p) => p[0]), [256, 512]);
  }
  assert.deepEqual(data.runs[1]!.stageTokens, [256], 'STEP grows halfway');
  assert.deepEqual(data.stateGroups.map((g) => `${g.run}/${g.stage}`),
    ['vanilla/all layers', 'step-2/stage 1', 'step-2/stage 2', 'relora/full-rank warm start', 'relora/LoRA phase']);
  // The planner table for the STEP run, recomputed from its options, agrees with what it measured.
  const step = summaries.find((s) => s.name === 'step-2')!;
  assert.ok(step.plan, 'planner table computed');
  assert.equal(step.plan.split.reduce((a, b) => a + b, 0), 4);
  for (const b of step.bars) assert.equal(b.match, true, `${b.label}: measured bytes equal the planner's`);
  assert.ok(html.includes(`split ${step.plan.split.join(' + ')} of 4 layers`));
  const vanilla = summaries.find((s) => s.name === 'vanilla')!;
  assert.equal(vanilla.bars[0]!.match, true, 'vanilla measured bytes equal the planner\'s vanilla bytes');
  assert.ok(step.peakModelState! < vanilla.peakModelState!, 'STEP peaks below vanilla');
  // ReLoRA's LoRA phase (frozen weights plus adapters) holds fewer trainable bytes than its warm start.
  const relora = summaries.find((s) => s.name === 'relora')!;
  assert.ok(relora.bars[1]!.measured.frozen > 0 && relora.bars[1]!.measured.optimizer < relora.bars[0]!.measured.optimizer);
  for (const s of summaries) {
    assert.ok(Number.isFinite(s.valPerplexity) && Number.isFinite(s.unigramPerplexity), `${s.name}: final perplexity and baseline`);
    assert.ok(html.includes(s.valPerplexity!.toFixed(1)));
  }
  assert.match(html, /<th>option<\/th><th>vanilla<\/th><th>step-2<\/th><th>relora<\/th>/, 'config table with a column per run');
});

test('report: the command takes run names under ./runs and writes RUN/report.html for one run', async () => {
  const cwd = process.cwd();
  process.chdir(ROOT);
  try {
    assert.equal(await report(['step-2']), 0);
    assert.ok(readFileSync(join(RUNS, 'step-2', 'report.html'), 'utf8').includes('step-2'));
    assert.equal(await report(['vanilla', 'runs/relora', '--out', 'cmp.html']), 0);
    assert.match(readFileSync(join(ROOT, 'cmp.html'), 'utf8'), /relora/);
    await assert.rejects(report(['vanilla', '--bogus']), /unknown option --bogus/);
  } finally {
    process.chdir(cwd);
  }
});

test('report: errors name the missing run, the corrupt file and line, the empty log', async () => {
  const bad = join(ROOT, 'bad');
  mkdirSync(bad, { recursive: true });
  await assert.rejects(writeReport([join(ROOT, 'nope')], join(bad, 'x.html')), /no run ".*nope"/);
  const copy = (name: string) => { const d = join(bad, name); cpSync(join(RUNS, 'vanilla'), d, { recursive: true }); return d; };
  const corrupt = copy('corrupt');
  const lines = readFileSync(join(corrupt, 'log.jsonl'), 'utf8').split('\n');
  lines[4] = lines[4]!.slice(0, 30);
  writeFileSync(join(corrupt, 'log.jsonl'), lines.join('\n'));
  await assert.rejects(writeReport([corrupt], join(bad, 'x.html')), (e: Error) => e.message.includes(`${join(corrupt, 'log.jsonl')}:5: corrupt log line`));
  const empty = copy('empty');
  writeFileSync(join(empty, 'log.jsonl'), '\n');
  await assert.rejects(writeReport([empty], join(bad, 'x.html')), /log\.jsonl is empty/);
  const noConfig = copy('no-config');
  rmSync(join(noConfig, 'train-config.json'));
  await assert.rejects(writeReport([noConfig], join(bad, 'x.html')), /cannot read train-config\.json/);
  const notEvent = copy('not-event');
  appendFileSync(join(notEvent, 'log.jsonl'), '[1,2]\n');
  await assert.rejects(writeReport([notEvent], join(bad, 'x.html')), /:\d+: a log line must be a JSON object with an "event"/);
  assert.deepEqual(readdirSync(bad).filter((f) => f.endsWith('.html') || f.includes('.tmp')), [], 'nothing written on error');
});

test('report: a resumed run that logged steps twice keeps the last record of each step', () => {
  const d = join(ROOT, 'resumed');
  cpSync(join(RUNS, 'vanilla'), d, { recursive: true });
  const log = readFileSync(join(d, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  const redo = log.filter((e) => e.event === 'train' && e.step >= 7).map((e) => ({ ...e, loss: e.loss + 1 }));
  appendFileSync(join(d, 'log.jsonl'), [{ event: 'resume', step: 6 }, ...redo].map((e) => JSON.stringify(e)).join('\n') + '\n');
  const run = loadRun(d);
  assert.deepEqual(run.train.map((t) => t.step), [1, 2, 3, 4, 5, 6, 7, 8]);
  assert.equal(run.train[7]!.loss, redo[1].loss);
});

test('report: the whole-run peak comes from the logged tracker peak (transitions included); an old log falls back to live bytes', async () => {
  const { summaries } = await writeReport([join(RUNS, 'step-2'), join(RUNS, 'vanilla'), join(RUNS, 'relora')], join(ROOT, 'out', 'peak.html'));
  for (const s of summaries) {
    const end = readFileSync(join(RUNS, s.name, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)).find((e) => e.event === 'end');
    assert.equal(s.peakModelStateSource, 'whole-run tracker peak', s.name);
    assert.equal(s.peakModelState, end.peak.modelState.total, `${s.name}: the end event's model-state peak`);
    assert.equal(s.peakTotal, end.peak.total);
    if (s.plan) assert.equal(s.peakModelState, s.plan.peak, `${s.name}: measured whole-run peak = the planner's`);
  }
  const html = readFileSync(join(ROOT, 'out', 'peak.html'), 'utf8');
  assert.match(html, /id="whole-run-peak"/);
  assert.match(html, /model state \(whole-run tracker peak\)[^]*?<span class="good">exact<\/span>/);
  // a log from before the whole-run peak was logged: no peak records, the live bytes after steps stand in
  const d = join(ROOT, 'old-log');
  cpSync(join(RUNS, 'vanilla'), d, { recursive: true });
  const stripped = readFileSync(join(d, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => { const e = JSON.parse(l); delete e.peak; return JSON.stringify(e); });
  writeFileSync(join(d, 'log.jsonl'), stripped.join('\n') + '\n');
  const old = (await writeReport([d], join(ROOT, 'out', 'old.html'))).summaries[0]!;
  assert.equal(old.peakModelStateSource, 'live after logged steps');
  assert.equal(old.peakTotal, null);
});

/** Chromium, or the reason it cannot run. */
function chromium(): string | { error: string } {
  const r = spawnSync('chromium', ['--version'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) return { error: `chromium is not installed (apt-get install -y chromium): ${r.error?.message ?? r.stderr}` };
  return 'chromium';
}

test('report: headless Chromium runs the page script and draws every chart', (t) => {
  const bin = chromium();
  if (typeof bin !== 'string') {
    if (REQUIRE) throw new Error(`STEP_REQUIRE_WEBGPU=1 and ${bin.error}`);
    t.skip(bin.error);
    return;
  }
  const page = join(ROOT, 'out', 'all.html');
  const profile = mkdtempSync(join(tmpdir(), 'step-chromium-'));
  const r = spawnSync(bin, ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', `--user-data-dir=${profile}`, '--dump-dom', `file://${page}`], { encoding: 'utf8', timeout: 60_000, maxBuffer: 64 << 20 });
  rmSync(profile, { recursive: true, force: true });
  assert.equal(r.status, 0, `chromium failed: ${r.error?.message ?? ''} ${r.stderr}`);
  const dom = r.stdout;
  assert.doesNotMatch(dom, /<body[^>]*data-chart-error="[^"]*"/, 'the page script threw');
  assert.match(dom, /<body[^>]*data-charts-drawn="3"/, 'loss, model-state and peak charts drawn');
  const section = (from: string, to: string) => dom.slice(dom.indexOf(`id="${from}"`), dom.indexOf(`id="${to}"`));
  const loss = section('loss-chart', 'state-legend');
  for (const n of NAMES) {
    for (const kind of ['train', 'smoothed', 'validation']) {
      const m = new RegExp(`<path d="([^"]+)"[^>]*data-run="${n}" data-kind="${kind}"`).exec(loss);
      assert.ok(m, `${n}: ${kind} curve drawn`);
      const coords = m[1]!.split(/[ML,]/).filter(Boolean).map(Number);
      assert.ok(coords.length >= (kind === 'validation' ? 4 : 16) && coords.every(Number.isFinite), `${n} ${kind}: finite coordinates, got ${m[1]}`);
    }
  }
  assert.equal((loss.match(/class="val-dot"/g) ?? []).length, 6, 'a dot per evaluation');
  const bars = section('state-chart', 'peak-legend');
  const rects = [...bars.matchAll(/<rect x="([\d.]+)" y="([\d.]+)" width="[\d.]+" height="([\d.]+)"/g)];
  // vanilla 3 categories x (pred + meas), step stage 1 same, stage 2 4 x 2, relora warm 3 x 2, LoRA phase 4 measured
  assert.equal(rects.length, 6 + 6 + 8 + 6 + 4, 'a rectangle per category and bar');
  assert.ok(rects.every((m) => Number(m[3]) > 0), 'every stacked segment has a height');
  assert.equal((section('peak-chart', 'exact-bytes').match(/<rect /g) ?? []).length > 0, true, 'peak bars drawn');
});
