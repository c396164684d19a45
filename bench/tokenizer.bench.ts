/**
 * Tokenizer and data pipeline on the whole Brown corpus (500 documents, ~6 MB of text): loading
 * (tag stripping + detokenizing), BPE training (vocab 8192 on the 450 training documents),
 * encoding with a cold and a warm piece cache, decoding, shard write/read, window sampling.
 *
 *   npx tsc -p . && node dist/bench/tokenizer.bench.js [--vocab 8192] [--iterations 3]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Bench } from 'tinybench';
import { encodeDocuments, loadBrownCorpus, readTokenShard, WindowSampler, writeTokenShard } from '../models/data/index.js';
import { BpeTokenizer } from '../models/tokenizer/index.js';

const arg = (name: string, fallback: number): number => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
};
const VOCAB = arg('--vocab', 8192);
const ITERATIONS = arg('--iterations', 3);

const brown = await loadBrownCorpus();
const allText = brown.documents.map((d) => d.text).join('\n\n');
const mb = Buffer.byteLength(allText) / 1e6;
const trainMb = Buffer.byteLength(brown.trainText) / 1e6;
const tokenizer = BpeTokenizer.train(brown.trainText, { vocabSize: VOCAB, specialTokens: ['<|endoftext|>'] });
const json = tokenizer.toJSON();
const ids = tokenizer.encode(allText);
const stream = encodeDocuments(tokenizer, brown.documents);
const valIds = tokenizer.encode(brown.validationText);
const dir = mkdtempSync(join(tmpdir(), 'tokenizer-bench-'));
const shard = join(dir, 'brown.bin');
const sampler = new WindowSampler(stream, { batch: 16, seqLen: 1024, seed: 1 });

const bench = new Bench({ name: 'Brown corpus tokenizer pipeline', time: 0, iterations: ITERATIONS, warmup: false });
bench
  .add('load Brown (strip tags, detokenize, split)', async () => {
    await loadBrownCorpus();
  })
  .add(`train BPE, vocab ${VOCAB}, ${trainMb.toFixed(2)} MB`, () => {
    BpeTokenizer.train(brown.trainText, { vocabSize: VOCAB, specialTokens: ['<|endoftext|>'] });
  })
  .add(`encode ${mb.toFixed(2)} MB, cold cache`, () => {
    BpeTokenizer.fromJSON(json).encode(allText);
  })
  .add(`encode ${mb.toFixed(2)} MB, warm cache`, () => {
    tokenizer.encode(allText);
  })
  .add(`decode ${ids.length} tokens`, () => {
    tokenizer.decode(ids);
  })
  .add(`shard write + read, ${stream.length} tokens`, async () => {
    await writeTokenShard(shard, stream);
    await readTokenShard(shard);
  })
  .add('sample 100 batches of 16 x 1024 windows', () => {
    for (let i = 0; i < 100; i++) sampler.next();
  });
await bench.run();
rmSync(dir, { recursive: true, force: true });

console.log(bench.name);
console.log(`text: ${brown.documents.length} documents, ${mb.toFixed(2)} MB (train ${trainMb.toFixed(2)} MB); vocab ${tokenizer.vocabSize}`);
console.log(`bytes/token: whole corpus ${(mb * 1e6 / ids.length).toFixed(3)} (${ids.length} tokens), held-out validation ${(Buffer.byteLength(brown.validationText) / valIds.length).toFixed(3)} (${valIds.length} tokens)`);
console.table(bench.tasks.map((t) => {
  const r = t.result as { latency?: { mean: number; min: number } };
  return { task: t.name, 'mean ms': (r.latency?.mean ?? NaN).toFixed(1), 'min ms': (r.latency?.min ?? NaN).toFixed(1) };
}));
