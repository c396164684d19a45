/** `step generate` warns on stderr when the prompt is longer than the model's context (the first tokens are dropped). */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { CpuBackend } from '../../index.js';
import { presetConfig } from '../../models/config-presets.js';
import { generate } from '../../models/generate.js';
import { initLlama } from '../../models/llama.js';
import { generateCommand } from '../../step/commands/generate.js';
import { DEFAULT_TRAIN_OPTIONS } from '../../step/train/options.js';
import { train } from '../../step/train/trainer.js';
import { tinyCorpus } from '../helpers/corpus.js';

const DATA = tinyCorpus({ documents: 12, seed: 5 });
after(() => rmSync(DATA, { recursive: true, force: true }));

const CONFIG = presetConfig('tiny', { vocab_size: 300, hidden_size: 16, intermediate_size: 32, num_hidden_layers: 1, num_attention_heads: 2, max_position_embeddings: 8 });

test('generate: onPromptTruncated reports the dropped prompt tokens, once, and only when the prompt is too long', async () => {
  const model = initLlama(CONFIG, { device: new CpuBackend(), seed: 1 });
  try {
    const calls: [number, number][] = [];
    const onPromptTruncated = (dropped: number, context: number) => calls.push([dropped, context]);
    await generate(model, [...Array(13).keys()], { maxNewTokens: 3, temperature: 0, maxContext: 8, onPromptTruncated });
    assert.deepEqual(calls, [[5, 8]]);
    await generate(model, [...Array(8).keys()], { maxNewTokens: 3, temperature: 0, maxContext: 8, onPromptTruncated });
    assert.deepEqual(calls, [[5, 8]], 'a prompt that fits is not reported, even when the generated tokens slide the window');
  } finally {
    model.dispose();
  }
});

test('step generate: a prompt longer than max_position_embeddings gives a warning naming the dropped tokens', async () => {
  const runsDir = join(DATA, 'runs');
  const r = await train({
    ...DEFAULT_TRAIN_OPTIONS, name: 'ctx8', runsDir, data: DATA, vocabSize: 300, seqLen: 8, batchSize: 2, steps: 2, warmupSteps: 0,
    evalEvery: 2, evalBatches: 1, checkpointEvery: 2, device: 'cpu',
    configOverrides: { hidden_size: 16, intermediate_size: 32, num_hidden_layers: 1, num_attention_heads: 2, max_position_embeddings: 8 },
  });
  let out = '', warnings = '';
  const args = ['--checkpoint', r.runDir, '--device', 'cpu', '--max-new-tokens', '2', '--temperature', '0'];
  const long = 'the cat sat on a mat and the dog ran to the big red house under the blue sky .';
  assert.equal(await generateCommand([...args, '--prompt', long, '--json'], (t) => { out += t; }, (t) => { warnings += t; }), 0);
  const prompt = (JSON.parse(out) as { promptTokens: number[] }).promptTokens.length;
  assert.ok(prompt > 8, `the prompt has ${prompt} tokens`);
  assert.equal(warnings, `step generate: warning: the prompt has ${prompt} tokens but the model's context is 8 (max_position_embeddings); its first ${prompt - 8} tokens are dropped and only the last 8 are seen\n`);
  warnings = '';
  await generateCommand([...args, '--prompt', 'the cat'], () => {}, (t) => { warnings += t; });
  assert.equal(warnings, '', 'no warning when the prompt fits');
});
