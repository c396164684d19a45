import assert from 'node:assert/strict';
import { fromArray, Generator, rand, scope } from '../../index.js';
import * as A from '../../autograd/index.js';
import { initLlama } from '../../models/llama.js';
import type { LlamaDims, LlamaModel } from '../../models/llama.js';
import { padBatch } from '../../step/sft/examples.js';
import { IGNORE_INDEX } from '../../step/train/data.js';
import { testBothBackends } from '../helpers/backends.js';

const config: LlamaDims = {
  vocab_size: 29, hidden_size: 16, intermediate_size: 24, num_hidden_layers: 2, num_attention_heads: 2,
  rms_norm_eps: 1e-5, rope_theta: 10000, tie_word_embeddings: false, initializer_range: 0.3,
};

// two examples of different lengths: prompts of 3 and 2 tokens, then the responses
const examples = [
  { tokens: Int32Array.from([5, 6, 7, 8, 9, 10, 11]), promptLength: 3 },
  { tokens: Int32Array.from([12, 13, 14, 15]), promptLength: 2 },
];

async function lossOf(model: LlamaModel, inputs: Int32Array, targets: Int32Array, rows: number, cols: number): Promise<number> {
  const device = model.embed.backend;
  return scope(async () => A.noGrad(() => model.loss(fromArray(inputs, [rows, cols], { dtype: 'i32', device }), fromArray(targets, [rows, cols], { dtype: 'i32', device }))).item());
}

testBothBackends('sft: the response-only loss equals -mean log softmax of the logits at the response positions, by hand', async (device) => {
  const model = initLlama(config, { device, seed: 3 });
  try {
    const b = padBatch(examples, 0);
    const loss = await lossOf(model, b.inputs, b.targets, b.rows, b.cols);
    const logits = await scope(async () => A.noGrad(() => model.forward(fromArray(b.inputs, [b.rows, b.cols], { dtype: 'i32', device }))).toArray());
    const V = config.vocab_size;
    const nll = (row: number, t: number, target: number) => {
      const at = (row * b.cols + t) * V;
      let max = -Infinity;
      for (let v = 0; v < V; v++) max = Math.max(max, logits[at + v]!);
      let sum = 0;
      for (let v = 0; v < V; v++) sum += Math.exp(logits[at + v]! - max);
      return Math.log(sum) + max - logits[at + target]!;
    };
    // response positions: target index t + 1 >= promptLength, i.e. t >= promptLength - 1
    let response = 0, all = 0, nResponse = 0, nAll = 0;
    examples.forEach((e, row) => {
      for (let t = 0; t < e.tokens.length - 1; t++) {
        const l = nll(row, t, e.tokens[t + 1]!);
        all += l; nAll++;
        if (t >= e.promptLength - 1) { response += l; nResponse++; }
      }
    });
    assert.equal(nResponse, 4 + 2);
    const expected = response / nResponse;
    assert.ok(Math.abs(loss - expected) < 1e-5 * Math.max(1, expected), `loss ${loss} vs hand ${expected}`);
    assert.ok(Math.abs(loss - all / nAll) > 1e-3, 'the prompt positions would change the mean: the test tells the masks apart');
  } finally {
    model.dispose();
  }
});

testBothBackends('sft: masked prompt and padding rows get exactly zero gradient from the fused loss (LlamaModel.loss\'s op)', async (device) => {
  await scope(async () => {
    const b = padBatch(examples, 0);
    const n = b.rows * b.cols;
    const g = new Generator(4);
    const h = rand([n, config.hidden_size], { generator: g, low: -1, high: 1, device });
    const w = rand([config.vocab_size, config.hidden_size], { generator: g, low: -1, high: 1, device });
    h.requiresGrad = true; w.requiresGrad = true;
    const loss = A.linearCrossEntropy(h, w, fromArray(b.targets, [n], { dtype: 'i32', device }), { chunkRows: 3 });
    const [dh] = A.grad(loss, [h]);
    const grad = await dh!.toArray();
    for (let r = 0; r < n; r++) {
      const row = Array.from(grad.slice(r * config.hidden_size, (r + 1) * config.hidden_size) as Float32Array);
      const counted = b.targets[r] !== IGNORE_INDEX;
      if (counted) assert.ok(row.some((x) => x !== 0), `response row ${r} has a gradient`);
      else assert.ok(row.every((x) => x === 0), `masked row ${r} has exactly zero gradient, got ${row.slice(0, 3).join(', ')}...`);
    }
  });
});

testBothBackends('sft: right padding is invisible: other pad ids give the same loss and the same gradients', async (device) => {
  const model = initLlama(config, { device, seed: 5 });
  try {
    const run = async (padId: number) => scope(async () => {
      const b = padBatch(examples, padId);
      const loss = model.loss(fromArray(b.inputs, [b.rows, b.cols], { dtype: 'i32', device }), fromArray(b.targets, [b.rows, b.cols], { dtype: 'i32', device }));
      const params = model.parameters();
      const grads = A.grad(loss, params);
      return { loss: await loss.item(), grads: await Promise.all(grads.map(async (x) => Array.from(await x!.toArray()))) };
    });
    const a = await run(0), c = await run(27);
    assert.equal(a.loss, c.loss);
    a.grads.forEach((x, i) => assert.deepEqual(x, c.grads[i], `gradient ${i}`));
  } finally {
    model.dispose();
  }
});
