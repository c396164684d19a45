import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BpeTokenizer } from '../../models/tokenizer/bpe.js';
import { renderPrompt } from '../../step/instruct/template.js';
import { encodeExample, encodeExamples, epochOrder, InstructionBatches, padBatch } from '../../step/sft/examples.js';
import { parseInstructions, readInstructionFile } from '../../step/sft/records.js';
import { EOT, IGNORE_INDEX } from '../../step/train/data.js';

const tokenizer = BpeTokenizer.train(['the cat sat on the mat. the dog ran to the house.'], { vocabSize: 300, specialTokens: [EOT] });
const eot = tokenizer.specialId(EOT);

test('the templates render Alpaca prompts exactly, with and without input; compact drops the preamble', () => {
  assert.equal(renderPrompt({ instruction: 'Tag it.', input: 'the cat' }, 'alpaca'),
    'Below is an instruction that describes a task, paired with an input that provides further context. Write a response that appropriately completes the request.\n\n' +
    '### Instruction:\nTag it.\n\n### Input:\nthe cat\n\n### Response:\n');
  assert.equal(renderPrompt({ instruction: 'Tag it.' }, 'alpaca'),
    'Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n### Instruction:\nTag it.\n\n### Response:\n');
  assert.equal(renderPrompt({ instruction: 'Tag it.', input: '' }, 'compact'), '### Instruction:\nTag it.\n\n### Response:\n');
  assert.equal(renderPrompt({ instruction: 'Tag it.', input: 'x' }, 'compact'), '### Instruction:\nTag it.\n\n### Input:\nx\n\n### Response:\n');
});

test('an example is the rendered prompt, then the output and end-of-text, encoded separately', () => {
  const record = { instruction: 'Say it.', input: 'cat', output: 'the cat sat' };
  const ex = encodeExample(tokenizer, record, 'compact', eot);
  const prompt = tokenizer.encode(renderPrompt(record, 'compact'));
  assert.equal(ex.promptLength, prompt.length);
  assert.deepEqual([...ex.tokens], [...prompt, ...tokenizer.encode('the cat sat'), eot]);
});

test('padBatch: right padding; targets are the next tokens at response positions only, IGNORE_INDEX elsewhere', () => {
  const a = { tokens: Int32Array.from([10, 11, 12, 13, 14, 15]), promptLength: 3 };
  const b = { tokens: Int32Array.from([20, 21, 22, 23]), promptLength: 2 };
  const batch = padBatch([a, b], 99);
  assert.equal(batch.rows, 2);
  assert.equal(batch.cols, 5);
  const I = IGNORE_INDEX;
  assert.deepEqual([...batch.inputs], [10, 11, 12, 13, 14, 20, 21, 22, 99, 99]);
  // a: targets 11 12 (prompt) | 13 14 15; b: targets 21 (prompt) | 22 23, then padding
  assert.deepEqual([...batch.targets], [I, I, 13, 14, 15, I, 22, 23, I, I]);
  assert.equal(batch.tokens, 5 + 3);
  assert.equal(batch.responseTokens, 3 + 2);
});

test('too long: the response is cut to fit, an example whose prompt alone is longer is skipped, both counted', () => {
  const short = { instruction: 'a', output: 'the cat' };
  const long = { instruction: 'a', output: 'the cat sat on the mat and the dog ran to the house '.repeat(4) };
  const huge = { instruction: 'the dog ran to the house '.repeat(20), output: 'x' };
  const promptLength = encodeExample(tokenizer, short, 'compact', eot).promptLength;
  const seqLen = promptLength + 6;
  const r = encodeExamples(tokenizer, [short, long, huge], 'compact', seqLen, eot);
  assert.equal(r.truncated, 1);
  assert.equal(r.skipped, 1);
  assert.equal(r.examples.length, 2);
  for (const ex of r.examples) assert.ok(ex.tokens.length - 1 <= seqLen, 'every example fits --seq-len positions');
  const cut = r.examples[1]!;
  assert.equal(cut.tokens.length, seqLen + 1);
  assert.notEqual(cut.tokens.at(-1), eot, 'a cut response has no end-of-text');
  assert.equal(r.examples[0]!.tokens.at(-1), eot);
});

test('the data order: each epoch a seeded permutation; batches are a pure function of (seed, index)', () => {
  const order = epochOrder(50, 3, 0);
  assert.deepEqual([...order].sort((x, y) => x - y), [...Array(50).keys()]);
  assert.deepEqual([...epochOrder(50, 3, 0)], [...order], 'deterministic');
  assert.notDeepEqual([...epochOrder(50, 3, 1)], [...order], 'another epoch, another order');
  assert.notDeepEqual([...epochOrder(50, 4, 0)], [...order], 'another seed, another order');
  const examples = Array.from({ length: 6 }, (_, i) => ({ tokens: Int32Array.from([i, i + 100, i + 200]), promptLength: 1 }));
  const batches = new InstructionBatches(examples, 4, 9, 0);
  // batches 0..2 hold places 0..11: each example twice (two epochs)
  const seen = [0, 1, 2].flatMap((i) => { const w = batches.batchAt(i); return Array.from({ length: w.rows }, (_, r) => w.inputs[r * w.cols]!); });
  assert.deepEqual(seen.slice(0, 6).sort(), [0, 1, 2, 3, 4, 5]);
  assert.deepEqual(seen.slice(6).sort(), [0, 1, 2, 3, 4, 5]);
  const again = new InstructionBatches(examples, 4, 9, 0);
  assert.deepEqual([...again.batchAt(2).inputs], [...batches.batchAt(2).inputs], 'a fresh source (a resumed run) gives the same batch');
  assert.equal(batches.batchesFor(3), 5, 'ceil(3 epochs x 6 examples / 4)');
});

test('records: JSONL and JSON arrays; every malformed record is named by file, line (or record) and field', async () => {
  const good = parseInstructions('{"instruction": "a", "output": "b"}\n\n{"instruction": "c", "input": "d", "output": "e", "extra": 1}\n', 'f.jsonl');
  assert.deepEqual(good, [{ instruction: 'a', output: 'b' }, { instruction: 'c', input: 'd', output: 'e' }]);
  assert.deepEqual(parseInstructions('[{"instruction": "a", "input": null, "output": "b"}]', 'f.json'), [{ instruction: 'a', output: 'b' }]);
  const cases: [string, RegExp][] = [
    ['', /^f\.jsonl: the file is empty/],
    ['\n  \n', /^f\.jsonl: the file is empty/],
    ['{"instruction": "a", "output": "b"}\n{"instruction": "a"}\n', /^f\.jsonl line 2: field "output" is missing/],
    ['{"instruction": "a", "output": "b"}\n{not json}\n', /^f\.jsonl line 2: not valid JSON/],
    ['{"instruction": 3, "output": "b"}', /^f\.jsonl line 1: field "instruction" must be a string, got number/],
    ['{"instruction": "a", "input": 5, "output": "b"}', /^f\.jsonl line 1: field "input" must be a string/],
    ['{"instruction": "a", "output": ""}', /^f\.jsonl line 1: field "output" is empty/],
    ['["a"]', /^f\.jsonl record 1: a record must be a JSON object, got string/],
    ['[{"instruction": "a", "output": "b"}, {"output": "b"}]', /^f\.jsonl record 2: field "instruction" is missing/],
    ['[]', /^f\.jsonl: holds no records/],
    ['[{"instruction": "a",', /^f\.jsonl: not valid JSON/],
  ];
  for (const [text, re] of cases) assert.throws(() => parseInstructions(text, 'f.jsonl'), (e: Error) => e.name === 'StepError' && re.test(e.message), JSON.stringify(text));
  const dir = mkdtempSync(join(tmpdir(), 'sft-records-'));
  await assert.rejects(readInstructionFile(join(dir, 'missing.jsonl')), /--data .*missing\.jsonl: the file does not exist/);
  await assert.rejects(readInstructionFile(dir), /is a folder/);
  writeFileSync(join(dir, 'a.jsonl'), '{"instruction": "a", "output": "b"}\n');
  const file = await readInstructionFile(join(dir, 'a.jsonl'));
  assert.equal(file.records.length, 1);
  assert.match(file.sha256, /^[0-9a-f]{64}$/);
});
