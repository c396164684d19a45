/** The shared argument parser of the `step` subcommands (step/cli-args.ts). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { CommandSpec } from '../../step/cli-args.js';
import { closestFlag, editDistance, flagValue, numberValue, parseArgs, UsageError } from '../../step/cli-args.js';

/** Matches the error's message (not its String(), which starts with the class name). */
const msg = (re: RegExp) => (e: unknown): boolean => { assert.match((e as Error).message, re); return true; };

const SPEC: CommandSpec = {
  command: 'demo',
  usage: 'usage: step demo [options]',
  flags: [
    { name: '--preset', takesValue: true, choices: ['tiny', 'small'] },
    { name: '--steps', takesValue: true },
    { name: '--clip', takesValue: true },
    { name: '--set', takesValue: true, repeatable: true },
    { name: '--json', takesValue: false },
  ],
};

test('parser: --flag value and --flag=value give the same result; = splits at the first =', () => {
  const a = parseArgs(SPEC, ['--preset', 'tiny', '--steps', '10', '--set', 'a=1', '--json']);
  const b = parseArgs(SPEC, ['--preset=tiny', '--steps=10', '--set=a=1', '--json']);
  assert.deepEqual([...a.values], [...b.values]);
  assert.equal(flagValue(b, '--set'), 'a=1');
  assert.equal(flagValue(b, '--json'), 'true');
});

test('parser: --help and -h anywhere ask for the usage instead of an error', () => {
  assert.equal(parseArgs(SPEC, ['--help']).help, true);
  assert.equal(parseArgs(SPEC, ['--steps', '3', '-h']).help, true);
  assert.equal(parseArgs(SPEC, ['--steps', '3']).help, false);
  assert.equal(parseArgs(SPEC, ['tiny', '--bogus', '--help']).help, true, 'even after mistakes');
});

test('parser: a negative number is a value, not a flag', () => {
  assert.equal(flagValue(parseArgs(SPEC, ['--clip', '-1']), '--clip'), '-1');
  assert.equal(flagValue(parseArgs(SPEC, ['--clip', '-.5']), '--clip'), '-.5');
});

test('parser: a stray positional names itself and suggests the flag whose choice it is', () => {
  assert.throws(() => parseArgs(SPEC, ['tiny']), (e: Error) => e instanceof UsageError
    && e.message === 'step demo: unexpected argument "tiny" (did you mean --preset tiny?)');
  // no flag takes it: the usage follows
  assert.throws(() => parseArgs(SPEC, ['--steps', '3', 'banana']), msg(/^step demo: unexpected argument "banana"\nusage: step demo/));
  assert.throws(() => parseArgs(SPEC, ['5']), /unexpected argument "5"/);
  // a command that takes positionals keeps them
  assert.deepEqual(parseArgs({ ...SPEC, positionals: 'RUN' }, ['a', '--json', 'b']).positionals, ['a', 'b']);
});

test('parser: an unknown flag suggests the closest known one, or lists them all', () => {
  assert.throws(() => parseArgs(SPEC, ['--stepz', '3']), msg(/^step demo: unknown option --stepz \(did you mean --steps\?\)$/));
  assert.throws(() => parseArgs(SPEC, ['--pres', 'tiny']), /did you mean --preset\?/);
  assert.throws(() => parseArgs(SPEC, ['--frobnicate=2']), /unknown option --frobnicate; valid options: --preset, --steps, --clip, --set, --json\nusage:/);
});

test('parser: missing and empty values, values on switches and repeats are refused', () => {
  assert.throws(() => parseArgs(SPEC, ['--steps']), /--steps needs a value/);
  assert.throws(() => parseArgs(SPEC, ['--steps', '--json']), /--steps needs a value/);
  assert.throws(() => parseArgs(SPEC, ['--steps=']), /--steps needs a value, got an empty one/);
  assert.throws(() => parseArgs(SPEC, ['--json=yes']), /--json takes no value, got "--json=yes"/);
  assert.throws(() => parseArgs(SPEC, ['--steps', '1', '--steps=2']), /--steps given twice \("1" and "2"\); give it once/);
  assert.deepEqual(parseArgs(SPEC, ['--set', 'a=1', '--set', 'b=2']).values.get('--set'), ['a=1', 'b=2']);
});

test('numberValue: integers, ranges and exclusive bounds, with the flag and the text in the message', () => {
  assert.equal(numberValue('demo', '--steps', '12', { integer: true, min: 1 }), 12);
  assert.throws(() => numberValue('demo', '--steps', '1.5', { integer: true, min: 1 }), msg(/^step demo: --steps must be an integer >= 1, got "1.5"$/));
  assert.throws(() => numberValue('demo', '--eps', '0', { min: 0, minExclusive: true }), /--eps must be a number > 0, got "0"/);
  assert.throws(() => numberValue('demo', '--p', '1', { min: 0, max: 1, maxExclusive: true, reason: 'why' }), /--p must be a number in \[0, 1\), got "1" \(why\)/);
  for (const bad of ['', ' ', 'NaN', 'Infinity', '-Infinity', '1e400', 'ten', '0x']) {
    assert.throws(() => numberValue('demo', '--x', bad, {}), /--x must be a number/, JSON.stringify(bad));
  }
});

test('editDistance: a metric that counts a swap of neighbours as one edit', () => {
  assert.equal(editDistance('steps', 'stpes'), 1);
  assert.equal(editDistance('', 'abc'), 3);
  fc.assert(fc.property(fc.string({ maxLength: 8 }), fc.string({ maxLength: 8 }), (a, b) => {
    const d = editDistance(a, b);
    assert.equal(d, editDistance(b, a));
    assert.equal(d === 0, a === b);
    assert.ok(d <= Math.max(a.length, b.length));
    assert.ok(d >= Math.abs(a.length - b.length));
  }));
});

test('closestFlag: near misses only', () => {
  assert.equal(closestFlag('--lerning-rate', ['--lr', '--steps']), null);
  assert.equal(closestFlag('--batchsize', ['--batch-size', '--seq-len']), '--batch-size');
  assert.equal(closestFlag('--x', ['--batch-size']), null);
});
