/** The JSONL task format: the three record kinds parse; every mistake is refused naming the file and line. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataError } from '../../../models/data/documents.js';
import { loadTaskFile, parseTaskFile } from '../../../step/tasks/task-file.js';

const lines = (...records: unknown[]) => records.map((r) => (typeof r === 'string' ? r : JSON.stringify(r))).join('\n');

test('task files: multiple choice, cloze and generation records; blank lines skipped; the name is the file name', () => {
  const mc = parseTaskFile(lines({ context: 'The sky is', choices: ['blue', 'red'], gold: 0 }, '', { context: '', choices: ['a', 'b', 'c'], gold: 2, delimiter: '\n' }) + '\n', 'dir/colours.jsonl');
  assert.equal(mc.name, 'colours');
  assert.equal(mc.kind, 'choice');
  assert.deepEqual(mc.examples[1], { context: '', choices: ['a', 'b', 'c'], gold: 2, delimiter: '\n' });
  const cloze = parseTaskFile(lines({ context: 'He opened the', target: 'door' }), 'c.jsonl');
  assert.deepEqual(cloze, { name: 'c', kind: 'cloze', examples: [{ context: 'He opened the', target: 'door' }] });
  const gen = parseTaskFile(lines({ instruction: 'Add', input: '2 2', output: '4' }, { instruction: 'Say hi', output: 'hi' }), 'g.jsonl');
  assert.equal(gen.kind, 'generation');
  assert.deepEqual(gen.examples[1], { instruction: 'Say hi', input: '', output: 'hi' });
});

test('task files: each error names the file and the line', () => {
  const bad: [string, RegExp][] = [
    [lines({ context: 'a', choices: ['x', 'y'], gold: 0 }, '{"context": "b", "choices": ['), /^t\.jsonl:2: not valid JSON/],
    [lines({ context: 'a', choices: ['x', 'y'], gold: 2 }), /^t\.jsonl:1: "gold" must be an integer index into the 2 choices \(0\.\.1\), got 2/],
    [lines({ context: 'a', choices: ['x', 'y'], gold: 0.5 }), /^t\.jsonl:1: "gold" must be an integer/],
    [lines({ context: 'a', choices: ['x'], gold: 0 }), /^t\.jsonl:1: "choices" must be an array of at least 2 strings/],
    [lines({ context: 'a', choices: ['x', ''], gold: 0 }), /^t\.jsonl:1: choice 1 must be a non-empty string/],
    [lines({ context: 'a', choices: ['x', 'y'] }), /^t\.jsonl:1: a choice record needs "gold"/],
    [lines({ context: 'a', target: 'b', answer: 'c' }), /^t\.jsonl:1: unknown key "answer" in a cloze record/],
    [lines({ context: 3, target: 'b' }), /^t\.jsonl:1: "context" must be a string, got 3/],
    [lines({ context: 'a', target: ' ' }), /^t\.jsonl:1: "target" must not be empty/],
    [lines({ context: 'a', target: 'b' }, '', { context: 'a', choices: ['x', 'y'], gold: 0 }), /^t\.jsonl:3: a choice record in a file of cloze records \(line 1 is cloze\)/],
    [lines({ question: 'a' }), /^t\.jsonl:1: cannot tell the record's kind: .*keys: question/],
    [lines([1, 2]), /^t\.jsonl:1: expected a JSON object/],
    [lines({ instruction: 'a' }), /^t\.jsonl:1: a generation record needs "output"/],
    ['\n  \n', /^t\.jsonl: no records/],
  ];
  for (const [text, re] of bad) {
    assert.throws(() => parseTaskFile(text, 't.jsonl'), (e: unknown) => e instanceof DataError && re.test((e as Error).message), `expected ${re}`);
  }
});

test('loadTaskFile reads a file; a missing one is named', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'step-tasks-'));
  const file = join(dir, 'mine.jsonl');
  writeFileSync(file, lines({ context: 'a', target: 'b' }));
  assert.equal((await loadTaskFile(file)).name, 'mine');
  await assert.rejects(loadTaskFile(join(dir, 'nope.jsonl')), /task file .*nope\.jsonl: cannot read it/);
});
