import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import fc from 'fast-check';
import {
  brownFileToText, brownParagraphs, countSequentialWindows, DataError, detokenize, encodeDocuments, loadBrownCorpus, loadTextFiles,
  readTokenShard, readTokenShardHeader, sequentialWindows, splitEveryNth, splitTag, stripTag, WindowSampler, windowStarts, writeTokenShard,
  type TokenArray,
} from '../../models/data/index.js';
import { BpeTokenizer } from '../../models/tokenizer/index.js';
import { fromArray, scope } from '../../index.js';
import { testBothBackends } from '../helpers/backends.js';

const dir = mkdtempSync(join(tmpdir(), 'data-test-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('Brown tags: a token is cut at its last slash', () => {
  const cases: [string, string, string][] = [
    ['The/at', 'The', 'at'], [',/,', ',', ','], ['--/--', '--', '--'], ["''/''", "''", "''"], ['``/``', '``', '``'],
    ["Atlanta's/np$", "Atlanta's", 'np$'], ['term-end/nn', 'term-end', 'nn'], ['Mayor-nominate/nn-tl', 'Mayor-nominate', 'nn-tl'],
    ['//in', '/', 'in'], ['and/or/cc', 'and/or', 'cc'], ['1/2/cd', '1/2', 'cd'], ["didn't/dod*", "didn't", 'dod*'], ['./.-hl', '.', '.-hl'],
    ['untagged', 'untagged', ''],
  ];
  for (const [token, word, tag] of cases) {
    assert.deepEqual(splitTag(token), { word, tag }, token);
    assert.equal(stripTag(token), word);
  }
});

test('Brown text: paragraphs kept, quotes joined, no space before punctuation, doubled marks undone', () => {
  const raw = [
    '', '',
    "\t``/`` Only/rb a/at relative/jj handful/nn ''/'' ,/, the/at jury/nn said/vbd ,/, ``/`` considering/in Atlanta's/np$ city/nn ''/'' ./.",
    '', '',
    '\tHe/pps was/bedz won/vbn by/in Ivan/np Allen/np Jr./np ./.',
    'Why/wrb ?/. ?/.',
    'The/at 1/2/cd inch/nn and/or/cc //in more/ap (/( see/vb below/rb )/) ;/. ;/. he/pps said/vbd --/-- \'/\' hello/uh \'/\' ./.',
    '',
  ].join('\n');
  const expected = [
    '"Only a relative handful", the jury said, "considering Atlanta\'s city".',
    "He was won by Ivan Allen Jr. Why? The 1/2 inch and/or / more (see below); he said -- 'hello'.",
  ].join('\n\n');
  assert.equal(brownFileToText(raw), expected);
  assert.equal(brownParagraphs(raw).length, 2);
  assert.equal(brownParagraphs(raw, { raw: true })[1]!.length, brownParagraphs(raw)[1]!.length + 3, 'raw mode keeps "?" "; " and the period after Jr.');
  assert.equal(detokenize([]), '');
  assert.equal(detokenize(['(', 'a', ')', '[', 'b', ']', ':', 'c', '!']), '(a) [b]: c!');
});

test('Brown corpus: 500 documents, ~1.16M words, no tag left, a fixed disjoint split by document', async (t) => {
  const brown = await loadBrownCorpus();
  const ids = brown.documents.map((d) => d.id);
  assert.equal(ids.length, 500);
  assert.deepEqual(ids, [...ids].sort());
  assert.equal(ids[0], 'ca01');
  assert.equal(ids[499], 'cr09');
  assert.equal(new Set(brown.documents.map((d) => d.category)).size, 15, '15 genres');
  assert.equal(brown.documents[0]!.category, 'news');

  // Split: every 10th document (documented); disjoint, complete and the same on every load.
  assert.equal(brown.train.length, 450);
  assert.equal(brown.validation.length, 50);
  const val = brown.validation.map((d) => d.id);
  assert.deepEqual(val.slice(0, 5), ['ca10', 'ca20', 'ca30', 'ca40', 'cb06']);
  assert.deepEqual(val, ids.filter((_, i) => i % 10 === 9));
  const trainIds = new Set(brown.train.map((d) => d.id));
  assert.ok(val.every((id) => !trainIds.has(id)), 'disjoint');
  assert.equal(trainIds.size + val.length, 500, 'complete');
  const again = await loadBrownCorpus();
  assert.deepEqual(again.validation.map((d) => d.id), val);
  assert.equal(again.trainText, brown.trainText);
  assert.equal(brown.trainText, brown.train.map((d) => d.text).join('\n\n'));

  // Word counts from the tagged files: every whitespace-separated token is one word/tag.
  let rawTokens = 0, words = 0, slashWords = 0;
  for (const d of brown.documents) {
    const raw = await readFile(join(brown.dir, d.id), 'utf8');
    rawTokens += brownParagraphs(raw, { raw: true }).flat().length;
    const docWords = brownParagraphs(raw).flat();
    words += docWords.length;
    // No tag left: the text has exactly the slashes of its words (and/or, 1/2, //in), none of the
    // ~1.16M tag separators.
    const wordSlashes = docWords.join('').split('/').length - 1;
    slashWords += wordSlashes;
    assert.equal(d.text.split('/').length - 1, wordSlashes, `${d.id}: a /tag is left in the text`);
    assert.ok(!/\/(?:at|nn|in|vbd|np|jj)\b/.test(d.text.replace(/\S*\/\S*\/\S*/g, '')), `${d.id}: a common tag is left`);
    assert.ok(!/``|(?<!\d)''/.test(d.text), `${d.id}: quote marks are rebuilt ('' stays only as the inch mark in 1/2'')`);
  }
  t.diagnostic(`Brown: ${rawTokens} tagged tokens, ${words} words after undoing doubled marks, ${slashWords} slashes inside words, ${brown.trainText.length + brown.validationText.length} characters of text`);
  assert.ok(rawTokens > 1_000_000 && rawTokens < 1_200_000, `${rawTokens} tokens`);
  assert.ok(words < rawTokens && words > rawTokens - 10_000, `${words} words`);
  assert.ok(slashWords < 1000, `${slashWords} slashes inside words`);
});

test('text folder: recursive, sorted by relative path, UTF-8 (BOM dropped), extension filter, split, clear errors', async () => {
  const root = join(dir, 'texts');
  mkdirSync(join(root, 'a', 'b'), { recursive: true });
  const files: Record<string, string | Uint8Array> = {
    'b.txt': 'bee', 'a/z.txt': 'zed 😀', 'a/b/c.txt': '日本語\n', 'A.txt': 'upper', 'é.txt': 'accent', 'notes.md': '# md',
    'bom.txt': Uint8Array.from([0xef, 0xbb, 0xbf, 0x68, 0x69]),
  };
  for (const [name, content] of Object.entries(files)) writeFileSync(join(root, ...name.split('/')), content);
  const corpus = await loadTextFiles(root, { validationEvery: 3 });
  assert.deepEqual(corpus.documents.map((d) => d.id), ['A.txt', 'a/b/c.txt', 'a/z.txt', 'b.txt', 'bom.txt', 'é.txt']);
  assert.deepEqual(corpus.documents.map((d) => d.text), ['upper', '日本語\n', 'zed 😀', 'bee', 'hi', 'accent']);
  assert.deepEqual(corpus.validation.map((d) => d.id), ['a/z.txt', 'é.txt']);
  assert.equal(corpus.train.length, 4);
  assert.deepEqual((await loadTextFiles(root, { extensions: ['.md'] })).documents, [{ id: 'notes.md', text: '# md' }]);
  const single = await loadTextFiles(join(root, 'a', 'z.txt'));
  assert.deepEqual(single.documents, [{ id: 'z.txt', text: 'zed 😀' }]);
  assert.deepEqual(single.validation, [], 'one document: nothing for validation with every = 10');

  await assert.rejects(loadTextFiles(join(dir, 'nope')), (e: unknown) => e instanceof DataError && /cannot read .*nope/.test(e.message));
  mkdirSync(join(dir, 'empty'));
  await assert.rejects(loadTextFiles(join(dir, 'empty')), /no \.txt files under .*empty/);
  writeFileSync(join(root, 'bad.txt'), Uint8Array.from([0x61, 0xc3, 0x28]));
  await assert.rejects(loadTextFiles(root), /bad\.txt is not valid UTF-8/);
  assert.throws(() => splitEveryNth([], 1), /every must be an integer >= 2/);
});

test('shards: write/read round trip in llm.c layout (header 256 x int32, then uint16 tokens)', async () => {
  for (const tokens of [[], [0], [1, 2, 3, 65535, 0, 50256], Array.from({ length: 10001 }, (_, i) => (i * 7919) % 65536)]) {
    const path = join(dir, `round-${tokens.length}.bin`);
    await writeTokenShard(path, tokens);
    const bytes = readFileSync(path);
    assert.equal(bytes.length, 1024 + 2 * tokens.length);
    const header = new DataView(bytes.buffer, bytes.byteOffset, 1024);
    assert.deepEqual([header.getInt32(0, true), header.getInt32(4, true), header.getInt32(8, true)], [20240520, 1, tokens.length]);
    for (let i = 3; i < 256; i++) assert.equal(header.getInt32(4 * i, true), 0);
    if (tokens.length > 3) assert.equal(bytes.readUInt16LE(1024 + 6), tokens[3], 'little-endian uint16 body');
    const back = await readTokenShard(path);
    assert.ok(back instanceof Uint16Array);
    assert.deepEqual([...back], tokens);
    assert.deepEqual(await readTokenShardHeader(path), { magic: 20240520, version: 1, tokenCount: tokens.length });
  }
  await writeTokenShard(join(dir, 'typed.bin'), Uint32Array.of(5, 6));
  assert.deepEqual([...await readTokenShard(join(dir, 'typed.bin'))], [5, 6]);
});

test('shards: each corrupt header field gives an error naming the file and the field', async () => {
  const good = join(dir, 'good.bin');
  await writeTokenShard(good, [1, 2, 3, 4]);
  const goodBytes = readFileSync(good);
  const variant = (name: string, edit: (b: Buffer) => Buffer): string => {
    const path = join(dir, name);
    writeFileSync(path, edit(Buffer.from(goodBytes)));
    return path;
  };
  const cases: [string, RegExp][] = [
    [variant('short.bin', (b) => b.subarray(0, 100)), /short\.bin: header truncated: the file has 100 bytes, a header needs 1024/],
    [variant('magic.bin', (b) => (b.writeInt32LE(1234, 0), b)), /magic\.bin: header\[0\] \(magic\) is 1234, expected 20240520; the file is corrupt/],
    [variant('llama3.bin', (b) => (b.writeInt32LE(20240801, 0), b)), /header\[0\] \(magic\) is 20240801.*llama-3 shard/],
    [variant('version.bin', (b) => (b.writeInt32LE(7, 4), b)), /version\.bin: header\[1\] \(version\) is 7, expected 1/],
    [variant('negative.bin', (b) => (b.writeInt32LE(-5, 8), b)), /negative\.bin: header\[2\] \(token count\) is -5, which is negative/],
    [variant('count.bin', (b) => (b.writeInt32LE(9, 8), b)), /count\.bin: header\[2\] \(token count\) is 9, so the file should have 1042 bytes, but it has 1032/],
    [variant('truncated.bin', (b) => b.subarray(0, 1027)), /truncated\.bin: header\[2\] \(token count\) is 4, so the file should have 1032 bytes, but it has 1027/],
  ];
  for (const [path, pattern] of cases) {
    await assert.rejects(readTokenShard(path), (e: unknown) => e instanceof DataError && pattern.test(e.message), path);
    await assert.rejects(readTokenShardHeader(path), pattern, `header-only read of ${path}`);
  }
  await assert.rejects(readTokenShard(join(dir, 'absent.bin')), /absent\.bin: cannot read it/);
});

test('shards: out-of-range tokens are refused and the old file stays whole (atomic write)', async () => {
  const sub = join(dir, 'atomic');
  mkdirSync(sub);
  const path = join(sub, 'keep.bin');
  await writeTokenShard(path, [7, 8, 9]);
  for (const bad of [65536, -1, 1.5, NaN]) {
    await assert.rejects(writeTokenShard(path, [1, bad]), new RegExp(`token 1 is ${bad}, but shards store uint16 ids`));
  }
  assert.deepEqual([...await readTokenShard(path)], [7, 8, 9]);
  assert.deepEqual(readdirSync(sub), ['keep.bin'], 'no temp file left');
});

const tokenArrays = (n: number): TokenArray[] => {
  const plain = Array.from({ length: n }, (_, i) => (i * 2654435761) % 65521);
  return [Uint16Array.from(plain), Uint32Array.from(plain), Int32Array.from(plain), plain];
};

test('window sampler: same (seed, step) gives the same windows on every token array type; a resumed run continues exactly', () => {
  const [u16, u32, i32, plain] = tokenArrays(5000);
  const a = new WindowSampler(u16!, { batch: 4, seqLen: 16, seed: 42 });
  const b = new WindowSampler(plain!, { batch: 4, seqLen: 16, seed: 42 });
  const run = Array.from({ length: 6 }, () => a.next());
  assert.deepEqual(a.getState(), { seed: 42, step: 6 });
  for (let s = 0; s < 6; s++) {
    assert.deepEqual(b.next(), run[s]);
    assert.deepEqual(a.batchAt(s), run[s]);
    assert.deepEqual(new WindowSampler(u32!, { batch: 4, seqLen: 16, seed: 42, step: s }).next(), run[s]);
    assert.deepEqual(new WindowSampler(i32!, { batch: 4, seqLen: 16, seed: 42 }).batchAt(s), run[s]);
  }
  const resumed = new WindowSampler(u16!, { batch: 4, seqLen: 16, seed: 0 });
  resumed.setState({ seed: 42, step: 3 });
  assert.deepEqual([resumed.next(), resumed.next(), resumed.next()], run.slice(3));
  assert.notDeepEqual(run[0]!.starts, run[1]!.starts, 'different steps give different windows');
  assert.notDeepEqual(new WindowSampler(u16!, { batch: 4, seqLen: 16, seed: 43 }).next().starts, run[0]!.starts, 'different seeds differ');
  assert.deepEqual(windowStarts(42, 0, 4, 5000 - 16), run[0]!.starts);
});

test('window sampler: windows in range, targets are the inputs shifted by one (property)', () => {
  fc.assert(fc.property(
    fc.integer({ min: 2, max: 400 }), fc.integer({ min: 1, max: 8 }), fc.integer({ min: 0, max: 2 ** 53 - 1 }), fc.integer({ min: 0, max: 2 ** 40 }),
    fc.integer({ min: 1, max: 64 }),
    (n, batch, seed, step, seqLenWish) => {
      const seqLen = Math.min(seqLenWish, n - 1);
      const tokens = Int32Array.from({ length: n }, (_, i) => i * 3 + 1); // token i identifies its position
      const w = new WindowSampler(tokens, { batch, seqLen, seed, step }).next();
      assert.equal(w.inputs.length, batch * seqLen);
      assert.equal(w.targets.length, batch * seqLen);
      for (let b = 0; b < batch; b++) {
        const s = w.starts[b]!;
        assert.ok(Number.isInteger(s) && s >= 0 && s + seqLen + 1 <= n, `start ${s}`);
        for (let t = 0; t < seqLen; t++) {
          assert.equal(w.inputs[b * seqLen + t], tokens[s + t]);
          assert.equal(w.targets[b * seqLen + t], tokens[s + t + 1]);
          if (t + 1 < seqLen) assert.equal(w.inputs[b * seqLen + t + 1], w.targets[b * seqLen + t]);
        }
      }
    },
  ), { numRuns: 300 });
});

test('window sampler: every start position is drawn about equally often; bad shapes are clear errors', () => {
  const counts = new Array(7).fill(0);
  const sampler = new WindowSampler(new Uint16Array(10), { batch: 50, seqLen: 3, seed: 7 }); // 7 positions
  for (let s = 0; s < 140; s++) for (const st of sampler.next().starts) counts[st] += 1;
  for (const c of counts) assert.ok(c > 800 && c < 1200, `counts ${counts}`); // 7000 draws, expect 1000 each (sd ~ 29)
  assert.throws(() => new WindowSampler(new Uint16Array(8), { batch: 1, seqLen: 8, seed: 0 }), /needs 9 tokens, but the data has 8/);
  assert.throws(() => new WindowSampler(new Uint16Array(8), { batch: 0, seqLen: 2, seed: 0 }), /batch must be a positive integer/);
  assert.throws(() => new WindowSampler(new Uint16Array(8), { batch: 1, seqLen: 2, seed: -1 }), /seed must be an integer/);
  assert.throws(() => sampler.setState({ seed: 1, step: 1.5 }), /step must be a non-negative integer/);
});

testBothBackends('window batches upload as [B, T] i32 tensors', async () => {
  await scope(async () => {
    const w = new WindowSampler(Uint16Array.from({ length: 300 }, (_, i) => 65535 - i), { batch: 3, seqLen: 8, seed: 5 }).next();
    const inputs = fromArray(w.inputs, [w.batch, w.seqLen], { dtype: 'i32' });
    const targets = fromArray(w.targets, [w.batch, w.seqLen], { dtype: 'i32' });
    assert.deepEqual(inputs.shape, [3, 8]);
    assert.equal(targets.dtype, 'i32');
    assert.deepEqual([...await inputs.toArray()], [...w.inputs]);
    assert.deepEqual([...await targets.toArray()], [...w.targets]);
  });
});

test('sequential windows: non-overlapping, in order, each target once, last batch smaller', () => {
  const tokens = Uint16Array.from({ length: 103 }, (_, i) => i);
  const batches = [...sequentialWindows(tokens, { batch: 4, seqLen: 10 })];
  assert.equal(countSequentialWindows(103, 10), 10);
  assert.deepEqual(batches.map((b) => b.batch), [4, 4, 2]);
  assert.deepEqual(batches.flatMap((b) => b.starts), [0, 10, 20, 30, 40, 50, 60, 70, 80, 90]);
  const targets = batches.flatMap((b) => [...b.targets]);
  assert.deepEqual(targets, Array.from({ length: 100 }, (_, i) => i + 1));
  assert.deepEqual([...batches[0]!.inputs.slice(0, 10)], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.equal([...sequentialWindows(Uint16Array.from({ length: 11 }), { batch: 2, seqLen: 10 })].length, 1, 'exactly one window fits');
  assert.equal(countSequentialWindows(10, 10), 0);
});

test('encodeDocuments: <|endoftext|> before each document; the stream survives a shard round trip', async () => {
  const docs = [{ id: 'a', text: 'hello world' }, { id: 'b', text: 'second doc, ünïcode 😀' }];
  const tok = BpeTokenizer.train(docs.map((d) => d.text), { vocabSize: 280, specialTokens: ['<|endoftext|>'] });
  const eot = tok.specialId('<|endoftext|>');
  const ids = encodeDocuments(tok, docs);
  assert.deepEqual([...ids], [eot, ...tok.encode(docs[0]!.text), eot, ...tok.encode(docs[1]!.text)]);
  assert.equal(tok.decode(ids), docs.map((d) => `<|endoftext|>${d.text}`).join(''));
  const path = join(dir, 'docs.bin');
  await writeTokenShard(path, ids);
  assert.deepEqual([...await readTokenShard(path)], [...ids]);
  assert.throws(() => encodeDocuments(tok, docs, { eot: '<|pad|>' }), /no special token "<\|pad\|>"/);
});
