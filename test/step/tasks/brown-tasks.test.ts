/**
 * The built-in tasks: deterministic given the seed, made from validation documents only (every
 * example names a validation document and its text is found there, never in a training document),
 * and pos-brown's SFT set from training documents only.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { detokenize, loadBrownCorpus } from '../../../models/data/brown.js';
import { loadTaggedBrown, normaliseTag, taggedParagraphs } from '../../../step/tasks/brown-tagged.js';
import { BUILTIN_TASKS, POS_INSTRUCTION } from '../../../step/tasks/brown-tasks.js';
import { loadTasks, parseTaskNames, writePosSftSet } from '../../../step/tasks/suite.js';
import type { Task } from '../../../step/tasks/task.js';

const corpus = loadBrownCorpus();
const tagged = loadTaggedBrown();

test('tagged sentences: one per line, tags without -tl/-hl/-nc, the doubled marks and extra periods of this edition removed', () => {
  const raw = '\n\tThe/at-tl jury/nn-hl said/vbd ;/. ;/. Jr./np ./.\n\tIt/pps ran/vbd ;/.\n\t;/. then/rb ./.\n\n\tNext/ap ./.\n';
  const p = taggedParagraphs(raw, 'cx01');
  assert.equal(p.length, 2);
  assert.deepEqual(p[0]![0]!.words.map((w) => `${w.word}/${w.tag}`), ['The/at', 'jury/nn', 'said/vbd', ';/.', 'Jr./np']);
  assert.deepEqual(p[0]!.slice(1).map((s) => s.words.map((w) => w.word).join(' ')), ['It ran ;', 'then .'], 'a mark doubled across two lines is dropped');
  assert.deepEqual(p[1]![0], { doc: 'cx01', paragraph: 1, words: [{ word: 'Next', tag: 'ap' }, { word: '.', tag: '.' }] });
  assert.equal(normaliseTag('nn-tl-hl'), 'nn');
  assert.equal(normaliseTag('fw-nn'), 'fw-nn');
});

test('the tagged split is training\'s split, and its words are the text training reads', async () => {
  const [c, t] = await Promise.all([corpus, tagged]);
  assert.deepEqual(t.validation.map((d) => d.id), c.validation.map((d) => d.id));
  assert.deepEqual(t.train.map((d) => d.id), c.train.map((d) => d.id));
  // every document's words detokenize to the very text brown.ts gives training
  const texts = [...c.train, ...c.validation].map((d) => d.text);
  [...t.train, ...t.validation].forEach((doc, i) => {
    const text = doc.paragraphs.map((p) => detokenize(p.flatMap((s) => s.words.map((w) => w.word)))).join('\n\n');
    assert.equal(text, texts[i], doc.id);
  });
});

/** Every example's document is a validation document, and its text occurs in that document's text. */
function assertHeldOut(task: Task, validation: Map<string, string>, trainIds: Set<string>): void {
  assert.ok(task.examples.length > 100, `${task.name} has ${task.examples.length} examples`);
  for (const e of task.examples) {
    assert.ok(e.source && validation.has(e.source), `${task.name}: source ${e.source} is not a validation document`);
    assert.ok(!trainIds.has(e.source!));
    const doc = validation.get(e.source!)!;
    if (task.kind === 'choice') {
      const e2 = e as { context: string; choices: string[]; gold: number };
      assert.ok(doc.includes(e2.context), `${task.name}: context not in ${e.source}`);
      assert.ok(doc.includes(`${e2.context} ${e2.choices[e2.gold]}`), `${task.name}: the true next sentence follows the context in ${e.source}`);
    } else if (task.kind === 'cloze') {
      const e2 = e as { context: string; target: string };
      assert.ok(doc.includes(`${e2.context} ${e2.target}`), `${task.name}: context + target not in ${e.source}`);
    }
  }
}

test('built-in tasks use validation documents only and are deterministic given the seed', async () => {
  const c = await corpus;
  const validation = new Map(c.validation.map((d) => [d.id, d.text]));
  const trainIds = new Set(c.train.map((d) => d.id));
  const tasks = await loadTasks(BUILTIN_TASKS, [], { seed: 5 });
  assert.deepEqual(tasks.map((t) => t.name), [...BUILTIN_TASKS]);
  for (const t of tasks) assertHeldOut(t, validation, trainIds);
  // pos-brown: inputs are the sentences' words, one tag per word
  const pos = tasks[2]!;
  assert.equal(pos.kind, 'generation');
  for (const e of pos.examples as { input: string; output: string; instruction: string }[]) {
    assert.equal(e.input.split(' ').length, e.output.split(' ').length);
    assert.ok(e.input.split(' ').length <= 12);
    assert.equal(e.instruction, POS_INSTRUCTION);
  }
  assert.match(pos.note!, /longer than 12 tokens/);
  // next-sentence distractors come from other documents, not the example's own
  const choice = tasks[1]!;
  assert.equal(choice.kind, 'choice');
  const again = await loadTasks(BUILTIN_TASKS, [], { seed: 5 });
  assert.deepEqual(again, tasks, 'the same seed builds the same tasks');
  const other = await loadTasks(['lambada-brown', 'next-sentence-brown'], [], { seed: 6 });
  assert.notDeepEqual(other[0]!.examples.slice(0, 20), tasks[0]!.examples.slice(0, 20), 'another seed, another order');
  assert.notDeepEqual(other[1]!.examples.map((e) => (e as { gold: number }).gold), choice.examples.map((e) => (e as { gold: number }).gold));
  assert.throws(() => parseTaskNames('lambada-brown,pos'), /unknown task "pos" in --tasks; built-in tasks: lambada-brown, next-sentence-brown, pos-brown/);
});

test('the pos-brown SFT set is Alpaca JSONL from training documents only', async () => {
  const [c, t] = await Promise.all([corpus, tagged]);
  const dir = mkdtempSync(join(tmpdir(), 'step-sft-set-'));
  const file = join(dir, 'pos.jsonl');
  const task = await writePosSftSet(file, { maxWords: 8 });
  const records = readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, string>);
  assert.equal(records.length, task.examples.length);
  assert.ok(records.length > 1000);
  assert.deepEqual(Object.keys(records[0]!), ['instruction', 'input', 'output']);
  const trainIds = new Set(c.train.map((d) => d.id));
  for (const e of task.examples) assert.ok(trainIds.has(e.source!), `SFT example from ${e.source}, not a training document`);
  // and no validation sentence (as written in the eval set) is among them, unless it also occurs in training
  const valInputs = new Set(t.validation.flatMap((d) => d.paragraphs.flat()).map((s) => s.words.map((w) => w.word).join(' ')));
  const trainInputs = new Set(t.train.flatMap((d) => d.paragraphs.flat()).map((s) => s.words.map((w) => w.word).join(' ')));
  for (const r of records) assert.ok(trainInputs.has(r.input!) || !valInputs.has(r.input!));
  assert.ok(records.every((r) => r.input!.split(' ').length <= 8));
});
