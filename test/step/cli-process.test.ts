/**
 * The compiled CLI (dist/step/cli.js) as a user meets it: --help on every command, --flag=value,
 * usage errors with suggestions, system errors as one line naming the path, and internal errors
 * with their stack (step/cli-errors.ts).
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StepError } from '../../engine/errors.js';
import { UsageError } from '../../step/cli-args.js';
import { describeFailure, describeSystemError, isSystemError } from '../../step/cli-errors.js';

const CLI = new URL('../../step/cli.js', import.meta.url).pathname;
const TMP = mkdtempSync(join(tmpdir(), 'step-cli-'));
after(() => rmSync(TMP, { recursive: true, force: true }));

function step(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', cwd: TMP, env: { ...process.env, STEP_DEVICE: 'cpu' } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const COMMANDS = ['train', 'eval', 'grads', 'generate', 'plan', 'report', 'experiment', 'presets', 'info'];

test('step CMD --help / -h / step help CMD: the usage on stdout, exit 0, for every command', () => {
  for (const cmd of COMMANDS) {
    for (const args of [[cmd, '--help'], [cmd, '-h'], ['help', cmd]]) {
      const r = step(...args);
      assert.equal(r.status, 0, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stdout, new RegExp(`^usage: step ${cmd}`), args.join(' '));
      assert.equal(r.stderr, '', args.join(' '));
    }
  }
  // --help wins over other (even bad) values: it never trains or writes anything
  const r = step('train', '--steps', '5', '--help');
  assert.equal(r.status, 0);
  assert.match(r.stdout, /--resume NAME/);
});

test('step CMD: stray positionals and unknown flags give one line with a suggestion (exit 2)', () => {
  const stray = step('train', 'tiny');
  assert.equal(stray.status, 2);
  assert.equal(stray.stderr, 'step train: unexpected argument "tiny" (did you mean --preset tiny?)\n');
  assert.equal(step('train', 'step').stderr, 'step train: unexpected argument "step" (did you mean --method step?)\n');
  assert.equal(step('plan', '350m', '--stages', '2').stderr, 'step plan: unexpected argument "350m" (did you mean --preset 350m?)\n');
  assert.equal(step('experiment', 'small').stderr, 'step experiment: unexpected argument "small" (did you mean --preset small?)\n');
  const noHint = step('eval', 'whatever');
  assert.equal(noHint.status, 2);
  assert.match(noHint.stderr, /^step eval: unexpected argument "whatever"\nusage: step eval/);
  for (const [cmd, bad, near] of [['train', '--stepz', '--steps'], ['eval', '--checkpiont', '--checkpoint'], ['generate', '--max-new-token', '--max-new-tokens'],
    ['grads', '--token', '--tokens'], ['plan', '--stage', '--stages'], ['report', '--output', '--out'], ['experiment', '--run', '--runs'], ['presets', '--jsno', '--json']] as const) {
    const r = step(cmd, `${bad}=1`);
    assert.equal(r.status, 2, `${cmd} ${bad}`);
    assert.equal(r.stderr, `step ${cmd}: unknown option ${bad} (did you mean ${near}?)\n`);
  }
});

test('step CMD: --flag=value works like --flag value', () => {
  const a = step('plan', '--preset', 'tiny', '--stages', '2', '--json');
  const b = step('plan', '--preset=tiny', '--stages=2', '--json');
  assert.equal(a.status, 0, a.stderr);
  assert.equal(a.stdout, b.stdout);
  assert.match(step('generate', '--checkpoint=nope', '--prompt=hi', '--top-p=0').stderr, /--top-p must be a number in \(0, 1\], got "0"/);
  assert.match(step('eval', '--checkpoint=nope', '--batches=0').stderr, /--batches must be an integer >= 1, got "0"/);
  assert.match(step('experiment', '--steps=0').stderr, /--steps must be an integer >= 1, got "0"/);
  assert.match(step('experiment', '--set=num_hidden_layers=4', '--set', 'num_hidden_layers=6').stderr, /--set num_hidden_layers given twice/);
});

test('step experiment: bad run options are refused before the experiment folder is created', () => {
  const out = join(TMP, 'exp');
  for (const bad of [['--vocab-size', '100'], ['--set', 'vocab_size=600'], ['--lora-rank', '1000'], ['--seq-len', '4096']]) {
    const r = step('experiment', '--out', out, '--device', 'cpu', ...bad);
    assert.notEqual(r.status, 0, bad.join(' '));
    assert.match(r.stderr, new RegExp(`^step (experiment|train): .*${bad[0]}`), r.stderr);
    assert.ok(!existsSync(out), `${bad.join(' ')}: nothing created`);
  }
});

test('step: a Node system error escaping a command is one line naming the path', () => {
  const file = join(TMP, 'a-file');
  writeFileSync(file, 'x');
  const r = step('train', '--runs-dir', join(file, 'runs'), '--name', 'r', '--device', 'cpu', '--steps', '2', '--warmup', '0');
  assert.equal(r.status, 1);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, r.stderr);
  assert.ok(lines[0]!.includes(join(file, 'runs')), r.stderr);
  assert.match(lines[0]!, /is a file, not a folder; check the path \[ENOTDIR/, 'says what to do');
  assert.doesNotMatch(r.stderr, /^\s+at /m, 'no stack trace for a user-fixable error');
});

test('step: an internal error (a bug) prints its whole stack and asks for a report', () => {
  // a fault injected into a built-in that `step presets` uses: a TypeError from inside the command
  const fault = 'data:text/javascript,String.prototype.padStart=function(){throw new TypeError("injected fault")}';
  const r = spawnSync(process.execPath, ['--import', fault, CLI, 'presets'], { encoding: 'utf8', cwd: TMP });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /^step: internal error \(a bug in step-webgpu, not in your input\):\nTypeError: injected fault\n/);
  assert.match(r.stderr, /\n\s+at .*step\/commands\/presets\.js:\d+:\d+/, 'the stack names the file and line');
  assert.match(r.stderr, /Please report it with the command you ran and the lines above\.\n$/);
});

test('describeFailure: user errors one line, system errors name the path and what to do, internal errors carry their stack', () => {
  assert.deepEqual(describeFailure(new StepError('data: "x" does not exist')), { text: 'step: data: "x" does not exist\n', exitCode: 1 });
  assert.deepEqual(describeFailure(new StepError('step eval: --checkpoint DIR is required')), { text: 'step eval: --checkpoint DIR is required\n', exitCode: 1 });
  assert.equal(describeFailure(new UsageError('step train: unknown option --x')).exitCode, 2);

  let enoent: unknown;
  try { readFileSync(join(TMP, 'no', 'such', 'file.json')); } catch (e) { enoent = e; }
  assert.ok(isSystemError(enoent));
  const sys = describeFailure(enoent);
  assert.equal(sys.exitCode, 1);
  assert.equal(sys.text, `step: ${join(TMP, 'no', 'such', 'file.json')} does not exist; check the path (and that its parent folder exists) [ENOENT in open]\n`);
  for (const [code, what] of [['ENOSPC', /no space left on the device holding \/data\/x; free some space/], ['EACCES', /permission denied for \/data\/x/],
    ['EROFS', /\/data\/x is on a read-only file system/], ['EWHATEVER', /EWHATEVER on \/data\/x \(write\): boom/]] as const) {
    const e = Object.assign(new Error('boom'), { code, path: '/data/x', syscall: 'write' });
    assert.match(describeSystemError(e), what);
    assert.equal(describeFailure(e).text.split('\n').length, 2, 'one line');
  }

  const bug = describeFailure(new TypeError("Cannot read properties of undefined (reading 'shape')"));
  assert.equal(bug.exitCode, 1);
  assert.match(bug.text, /^step: internal error \(a bug in step-webgpu, not in your input\):\nTypeError: Cannot read properties of undefined \(reading 'shape'\)\n\s+at /);
  assert.match(bug.text, /cli-process\.test\.js/, 'the stack says where');
  assert.match(bug.text, /Please report it with the command you ran and the lines above\.\n$/);
  assert.match(describeFailure('a string').text, /internal error[\s\S]*thrown value: a string/);
});
