/**
 * `step eval-tasks` end to end on a tiny checkpoint trained here (cpu): built-in tasks with --limit,
 * users' task files of the three kinds, the table and --json, --write-sft, and its refusals.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { evalTasksCommand, formatTable } from '../../../step/commands/eval-tasks.js';
import type { MetricRow } from '../../../step/tasks/metrics.js';
import { train } from '../../../step/train/trainer.js';
import { CLI, runOptions } from '../run-fixtures.js';

const TMP = mkdtempSync(join(tmpdir(), 'step-eval-tasks-'));
after(() => rmSync(TMP, { recursive: true, force: true }));

const run = (async () => {
  const base = runOptions();
  // a context of 256 positions, so pos-brown's prompts fit (the tokenizer has only 300 tokens)
  const o = runOptions({ name: 'tasks', steps: 4, checkpointEvery: 4, configOverrides: { ...base.configOverrides, max_position_embeddings: 256 } });
  return (await train(o)).runDir;
})();

function writeTask(name: string, records: unknown[]): string {
  const file = join(TMP, name);
  writeFileSync(file, records.map((r) => JSON.stringify(r)).join('\n') + '\n');
  return file;
}

async function call(args: string[]): Promise<{ out: string; notes: string }> {
  let out = '', notes = '';
  assert.equal(await evalTasksCommand(args, (s) => { out += s; }, (s) => { notes += s; }), 0);
  return { out, notes };
}

test('step eval-tasks: built-in tasks and task files give one row per metric, n examples each, accuracies with stderr', async () => {
  const runDir = await run;
  const mc = writeTask('mc.jsonl', [
    { context: 'the cat sat on the', choices: ['mat', 'sky blue tree'], gold: 0 },
    { context: 'the dog ran to the', choices: ['house', 'under'], gold: 0 },
    { context: 'a big red', choices: ['tree', 'on'], gold: 1 },
  ]);
  const cloze = writeTask('cloze.jsonl', [{ context: 'the cat sat on a small', target: 'mat' }, { context: 'the big', target: 'dog' }]);
  const gen = writeTask('gen.jsonl', [{ instruction: 'Repeat the word.', input: 'cat', output: 'cat' }, { instruction: 'Say a colour.', output: 'red' }]);
  const { out, notes } = await call(['--checkpoint', runDir, '--device', 'cpu', '--tasks', 'lambada-brown,next-sentence-brown,pos-brown', '--limit', '3',
    '--task-file', mc, '--task-file', cloze, '--task-file', gen, '--template', 'compact', '--json']);
  const report = JSON.parse(out) as { rows: MetricRow[]; notes: string[]; template: string };
  assert.equal(report.template, 'compact');
  const got = report.rows.map((r) => `${r.task}/${r.metric}/${r.n}`);
  assert.deepEqual(got, [
    'lambada-brown/acc/3', 'lambada-brown/perplexity/3', 'next-sentence-brown/acc/3', 'next-sentence-brown/acc_norm/3',
    'pos-brown/exact_match/3', 'pos-brown/token_acc/3', 'mc/acc/3', 'mc/acc_norm/3', 'cloze/acc/2', 'cloze/perplexity/2',
    'gen/exact_match/2', 'gen/token_acc/2',
  ]);
  for (const r of report.rows) {
    if (r.metric === 'perplexity') { assert.ok(r.value > 1 && r.stderr === null); continue; }
    assert.ok(r.value >= 0 && r.value <= 1, `${r.task} ${r.metric} = ${r.value}`);
    if (r.metric !== 'token_acc') assert.ok(Number.isInteger(Math.round(r.value * r.n * 1e9) / 1e9), 'an accuracy is a count over n');
    assert.ok(r.stderr !== null && r.stderr >= 0);
  }
  assert.ok(report.notes.some((n) => /pos-brown: kept \d+ of \d+ sentences/.test(n)));
  assert.equal(notes, '', '--json puts the notes in the object, not on stderr');
  // the table: a header and one line per row
  const table = await call(['--checkpoint', runDir, '--device', 'cpu', '--tasks', 'none', '--task-file', mc]);
  assert.match(table.out, /task\s+metric\s+value\s+stderr\s+n\n/);
  assert.match(table.out, /\nmc\s+acc_norm\s+[01]\.\d{4}\s+\d\.\d{4}\s+3\n/);
});

test('formatTable: columns aligned, a missing stderr shown as -', () => {
  const t = formatTable([{ task: 'a', metric: 'acc', value: 0.5, stderr: 0.25, n: 4 }, { task: 'long-task', metric: 'perplexity', value: 123.456, stderr: null, n: 4 }]);
  assert.equal(t, [
    'task       metric         value  stderr  n',
    'a          acc           0.5000  0.2500  4',
    'long-task  perplexity  123.4560       -  4',
  ].join('\n'));
});

test('step eval-tasks --write-sft writes the Alpaca JSONL of pos-brown; refusals name the flag', async () => {
  const file = join(TMP, 'pos.jsonl');
  const { out } = await call(['--write-sft', file, '--max-words', '6', '--seed', '3']);
  assert.match(out, /^wrote \d+ pos-brown SFT records \(Brown training documents\)/);
  const first = JSON.parse(readFileSync(file, 'utf8').split('\n')[0]!) as Record<string, string>;
  assert.ok(first.input!.split(' ').length <= 6 && first.output!.split(' ').length === first.input!.split(' ').length);
  const runDir = await run;
  await assert.rejects(evalTasksCommand(['--write-sft', file, '--checkpoint', runDir]), /--write-sft takes only --seed and --max-words, not --checkpoint/);
  await assert.rejects(evalTasksCommand(['--device', 'cpu']), /--checkpoint DIR is required \(or --write-sft FILE\)/);
  await assert.rejects(evalTasksCommand(['--checkpoint', runDir, '--tasks', 'hellaswag']), /unknown task "hellaswag" in --tasks/);
  await assert.rejects(evalTasksCommand(['--checkpoint', runDir, '--tasks', 'none']), /no tasks: --tasks none and no --task-file given/);
  await assert.rejects(evalTasksCommand(['--checkpoint', runDir, '--template', 'chatml']), /--template must be one of alpaca, compact, got "chatml"/);
  const broken = writeTask('broken.jsonl', [{ context: 'a', choices: ['x', 'y'], gold: 0 }, { context: 'a', choices: ['x', 'y'], gold: 5 }]);
  await assert.rejects(evalTasksCommand(['--checkpoint', runDir, '--tasks', 'none', '--task-file', broken]), /broken\.jsonl:2: "gold" must be an integer index/);
});

test('the CLI knows eval-tasks: --help and `step help eval-tasks` print the usage; a misspelt flag gets a suggestion (exit 2)', () => {
  const step = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, STEP_DEVICE: 'cpu' } });
  for (const args of [['eval-tasks', '--help'], ['help', 'eval-tasks']]) {
    const r = step(...args);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^usage: step eval-tasks --checkpoint DIR/);
  }
  const typo = step('eval-tasks', '--limt', '5');
  assert.equal(typo.status, 2);
  assert.equal(typo.stderr, 'step eval-tasks: unknown option --limt (did you mean --limit?)\n');
  assert.match(step('--help').stdout, /\n  eval-tasks +downstream tasks/);
});
