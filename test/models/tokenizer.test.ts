import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import fc from 'fast-check';
import { BpeTokenizer, countPieces, learnMerges, mergeLong, mergeShort, pretokenize, TokenizerFormatError } from '../../models/tokenizer/index.js';
import { loadBrownCorpus } from '../../models/data/brown.js';

const dir = mkdtempSync(join(tmpdir(), 'tokenizer-test-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const SAMPLE = [
  'The quick brown fox jumps over the lazy dog. The dog sleeps; the fox runs!',
  "It's 2024 and we've got 1,234 tokens -- isn't that nice? I'll say they're fine.",
  '日本語のテキスト、中文文本。Emoji: 😀👍🏽 🇯🇵 and accents: café, naïve, Ünïcödé.',
  '    indented\n\n\tlines\r\n  with   spaces   ',
].join('\n');
const small = BpeTokenizer.train(SAMPLE.repeat(3), { vocabSize: 400, specialTokens: ['<|endoftext|>'] });

const anyText = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 80 }),
  fc.string({ unit: 'grapheme', maxLength: 40 }),
  fc.string({ maxLength: 80 }),
  fc.constantFrom(...SAMPLE.split(/(?<=\s)/)),
);

test('pretokenize: pieces concatenate back to the input and never cross a letter/space boundary', () => {
  assert.deepEqual(pretokenize("Hello world!  I've 123 cats\n\n  ok"), ['Hello', ' world', '!', ' ', ' I', "'ve", ' 123', ' cats', '\n\n ', ' ok']);
  assert.deepEqual(pretokenize(''), []);
  fc.assert(fc.property(anyText, (s) => {
    const pieces = pretokenize(s);
    assert.equal(pieces.join(''), s);
    for (const p of pieces) assert.ok(!/\p{L}\s|\S\s+\S/u.test(p), `piece ${JSON.stringify(p)} spans a word boundary`);
  }), { numRuns: 300 });
});

test('round trip: decode(encode(s)) === s for any well-formed string (ASCII, full Unicode, graphemes, emoji, CJK, empty)', () => {
  for (const s of ['', ' ', 'a', '😀', '日本語', '\u0000', '\uFFFF', '\u{10FFFF}', 'e\u0301', '<|endoftext|>', SAMPLE]) {
    assert.equal(small.decode(small.encode(s)), s, JSON.stringify(s));
  }
  fc.assert(fc.property(anyText, (s) => {
    assert.equal(small.decode(small.encode(s)), s);
    assert.equal(small.decode(small.encode(s, { allowSpecial: true })), s);
  }), { numRuns: 500 });
});

test('round trip holds for a tokenizer trained on arbitrary text, and training is deterministic', () => {
  fc.assert(fc.property(fc.array(anyText, { maxLength: 6 }), anyText, fc.integer({ min: 256, max: 330 }), (docs, probe, vocabSize) => {
    const a = BpeTokenizer.train(docs, { vocabSize, minFrequency: 1 });
    const b = BpeTokenizer.train(docs, { vocabSize, minFrequency: 1 });
    assert.deepEqual(a.merges, b.merges);
    assert.ok(a.vocabSize <= vocabSize);
    for (const s of [...docs, probe]) assert.equal(a.decode(a.encode(s)), s);
  }), { numRuns: 150 });
});

test('lone surrogates cannot be UTF-8 encoded: they decode as U+FFFD, like TextEncoder', () => {
  assert.equal(small.decode(small.encode('a\uD800b')), 'a\uFFFDb');
  assert.equal(small.decode(small.encode('\uDC00')), new TextDecoder().decode(new TextEncoder().encode('\uDC00')));
});

/** The textbook algorithm (recount every pair before each merge), to check the incremental one. */
function naiveMerges(texts: string[], numMerges: number, minFrequency: number): [number, number][] {
  const K = 256 + numMerges;
  const words = [...countPieces(texts)].map(([p, c]) => ({ sym: [...new TextEncoder().encode(p)], c }));
  const merges: [number, number][] = [];
  while (merges.length < numMerges) {
    const counts = new Map<number, number>();
    for (const { sym, c } of words) for (let i = 0; i + 1 < sym.length; i++) counts.set(sym[i]! * K + sym[i + 1]!, (counts.get(sym[i]! * K + sym[i + 1]!) ?? 0) + c);
    let best = -1, bestCount = 0;
    for (const [k, c] of counts) if (c > bestCount || (c === bestCount && k < best)) [best, bestCount] = [k, c];
    if (best < 0 || bestCount < minFrequency) break;
    const a = Math.floor(best / K), b = best % K, z = 256 + merges.length;
    merges.push([a, b]);
    for (const w of words) {
      const out: number[] = [];
      for (let i = 0; i < w.sym.length;) {
        if (i + 1 < w.sym.length && w.sym[i] === a && w.sym[i + 1] === b) { out.push(z); i += 2; } else out.push(w.sym[i++]!);
      }
      w.sym = out;
    }
  }
  return merges;
}

test('incremental training learns exactly the merges of the recount-everything algorithm', () => {
  // Few letters and long texts, so pieces are long, pairs repeat and ties are common.
  const smallAlphabet = fc.string({ unit: fc.constantFrom('a', 'b', 'a', 'b', 'c', ' ', 'é', '\n', '1', '1'), minLength: 10, maxLength: 300 });
  let learned = 0;
  fc.assert(fc.property(fc.array(smallAlphabet, { maxLength: 5 }), fc.integer({ min: 0, max: 60 }), fc.integer({ min: 1, max: 3 }), (docs, n, minFrequency) => {
    const merges = learnMerges(countPieces(docs), { numMerges: n, minFrequency });
    assert.deepEqual(merges, naiveMerges(docs, n, minFrequency));
    learned += merges.length;
  }), { numRuns: 200 });
  assert.ok(learned > 600, `the cases exercise merges (${learned} in all)`);
  const brownish = SAMPLE.repeat(2);
  assert.deepEqual(learnMerges(countPieces([brownish]), { numMerges: 120 }), naiveMerges([brownish], 120, 2));
});

test('training: first merge is the most frequent pair; specials get the last ids; minFrequency stops early', () => {
  const t = BpeTokenizer.train('ab ab ab ab cd cd <|endoftext|> <|endoftext|>', { vocabSize: 300, specialTokens: ['<|endoftext|>'] });
  assert.deepEqual(t.merges[0], [97, 98], '"ab" occurs 4 times, " a" 3 times, " c" and "cd" twice');
  const tie = BpeTokenizer.train('cd.cd.ab.ab', { vocabSize: 300 });
  assert.deepEqual(tie.merges, [[97, 98], [99, 100]], 'a tie goes to the smaller pair, whatever the text order');
  assert.equal(t.vocabSize, 256 + t.merges.length + 1, 'stops when no pair occurs twice');
  assert.equal(t.specialId('<|endoftext|>'), t.vocabSize - 1);
  assert.ok(!t.merges.some(([a, b]) => new TextDecoder().decode(Uint8Array.from([...t.tokenBytes(a), ...t.tokenBytes(b)])).includes('endof')), 'special text is cut out of training');
  assert.deepEqual(t.encode('x<|endoftext|>', { allowSpecial: true }).slice(-1), [t.vocabSize - 1]);
  assert.ok(!t.encode('x<|endoftext|>').includes(t.vocabSize - 1), 'without allowSpecial it is plain text');
  assert.throws(() => t.specialId('<|pad|>'), /no special token "<\|pad\|>"/);
  assert.throws(() => BpeTokenizer.train('x', { vocabSize: 200 }), /vocabSize must be an integer >= 256/);
});

test('merging a piece: the heap path (long pieces) equals the plain scan', () => {
  const t = BpeTokenizer.train(['aaaa abab ba bb aab '.repeat(4), '    \n\n  !!!?? ...'], { vocabSize: 300, minFrequency: 1 });
  const ranks = new Map(t.merges.map(([a, b], r) => [`${a},${b}`, r]));
  const rankOf = (a: number, b: number) => ranks.get(`${a},${b}`) ?? -1;
  fc.assert(fc.property(fc.array(fc.constantFrom(97, 98, 32, 10, 33, 46, 63), { maxLength: 200 }), (bytes) => {
    assert.deepEqual(mergeLong(bytes, rankOf), mergeShort(bytes, rankOf));
  }), { numRuns: 300 });
  const longRun = ' '.repeat(1000) + 'a';
  assert.equal(t.decode(t.encode(longRun)), longRun);
});

test('decode: ids outside the vocabulary throw; decodeBytes is exact when a token cuts a character', () => {
  assert.throws(() => small.decode([small.vocabSize]), /token id 400 is outside the vocabulary \[0, 400\)/);
  assert.throws(() => small.decode([-1]), /outside the vocabulary/);
  assert.deepEqual([...small.decodeBytes([0xe6])], [0xe6]);
  assert.equal(small.decode([0xe6]), '\uFFFD');
});

test('save/load: tokenizer.json round trip gives the same tokenizer; the file is atomic and documented', async () => {
  const path = join(dir, 'tokenizer.json');
  await small.save(path);
  const json = JSON.parse(readFileSync(path, 'utf8'));
  assert.equal(json.format, 'step-bpe-tokenizer');
  assert.equal(json.version, 1);
  assert.equal(json.vocabSize, 400);
  assert.deepEqual(json.specialTokens, [{ token: '<|endoftext|>', id: 399 }]);
  assert.equal(json.merges.length, 143);
  const loaded = await BpeTokenizer.load(path);
  assert.deepEqual(loaded.toJSON(), small.toJSON());
  assert.deepEqual(loaded.encode(SAMPLE, { allowSpecial: true }), small.encode(SAMPLE, { allowSpecial: true }));
  assert.deepEqual(readdirSync(dir), ['tokenizer.json'], 'no temp file left behind');
});

test('load: a missing, corrupt or incompatible tokenizer.json gives an error naming the file and field', async () => {
  const good = small.toJSON();
  const cases: [string, unknown, RegExp][] = [
    ['not-json', '{"format": "step-bpe-tok', /not valid JSON/],
    ['array', [], /expected a JSON object, got \[\]/],
    ['format', { ...good, format: 'hf-tokenizers' }, /field "format" must be "step-bpe-tokenizer", got "hf-tokenizers"/],
    ['version', { ...good, version: 2 }, /field "version" is 2, but this build reads version 1 only/],
    ['no-version', { ...good, version: undefined }, /field "version" is nothing \(the field is missing\)/],
    ['pretok', { ...good, pretokenizer: 'bert' }, /field "pretokenizer" must be "gpt2-regex-v1"/],
    ['forward-merge', { ...good, merges: [[97, 98], [256, 257]] }, /field "merges\[1\]" must be two token ids below 257/],
    ['bad-merge', { ...good, merges: [[97]] }, /field "merges\[0\]"/],
    ['dup-merge', { ...good, merges: [[97, 98], [97, 98]] }, /field "merges\[1\]" repeats the pair \[97,98\]/],
    ['special-id', { ...good, specialTokens: [{ token: '<|endoftext|>', id: 5 }] }, /field "specialTokens\[0\].id" must be 399/],
    ['special-empty', { ...good, specialTokens: [{ token: '', id: 399 }] }, /field "specialTokens\[0\]" must be/],
    ['vocab', { ...good, vocabSize: 512 }, /field "vocabSize" is 512, but 256 bytes \+ 143 merges \+ 1 special tokens = 400/],
  ];
  for (const [name, content, pattern] of cases) {
    const path = join(dir, `${name}.json`);
    writeFileSync(path, typeof content === 'string' ? content : JSON.stringify(content));
    await assert.rejects(BpeTokenizer.load(path), (e: unknown) => {
      assert.ok(e instanceof TokenizerFormatError, `${name}: ${String(e)}`);
      assert.match(e.message, pattern, name);
      assert.ok(e.message.includes(path), `${name}: the message names the file`);
      return true;
    });
  }
  await assert.rejects(BpeTokenizer.load(join(dir, 'missing.json')), /missing\.json: cannot read it/);
  assert.ok(!existsSync(join(dir, 'missing.json')));
});

test('Brown corpus: train on the training documents, encode/decode the validation documents exactly', async (t) => {
  const brown = await loadBrownCorpus();
  const trainText = brown.trainText.slice(0, 2_000_000);
  const tok = BpeTokenizer.train(trainText, { vocabSize: 4096, specialTokens: ['<|endoftext|>'] });
  assert.equal(tok.vocabSize, 4096);
  const ids = tok.encode(brown.validationText);
  assert.equal(tok.decode(ids), brown.validationText);
  const bytesPerToken = Buffer.byteLength(brown.validationText) / ids.length;
  t.diagnostic(`Brown validation: ${ids.length} tokens, ${bytesPerToken.toFixed(3)} bytes/token (vocab 4096, trained on 2 MB)`);
  // Byte-level BPE with ~4k merges on English gives ~3.5 bytes/token (GPT-2's 50k vocab: ~4.5);
  // far less means merges are not applied, far more means they cross word boundaries.
  assert.ok(bytesPerToken > 3 && bytesPerToken < 4.5, `bytes/token ${bytesPerToken}`);
  const common = tok.encode(' the');
  assert.equal(common.length, 1, '" the" is a single token');
});
