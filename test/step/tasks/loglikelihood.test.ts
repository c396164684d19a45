/**
 * Log-likelihood scoring against a hand computation: each request's whole row run alone through the
 * model, log-softmax of every position in f64, the continuation's log-probabilities summed. The
 * scorer batches rows of different lengths (right-padded), splits batches by its logits budget and
 * truncates long rows on the left; none of that may change a score. Both backends.
 */
import assert from 'node:assert/strict';
import { fromArray } from '../../../engine/creation.js';
import { scope } from '../../../engine/scope.js';
import { noGrad } from '../../../autograd/grad-mode.js';
import { initLlama, type LlamaModel } from '../../../models/llama.js';
import { modelScorer, scoreRow, type LogLikelihoodRequest } from '../../../step/tasks/loglikelihood.js';
import { testBothBackends } from '../../helpers/backends.js';
import { test } from 'node:test';

const VOCAB = 23;

/** Sum over the continuation of log-softmax(logits of the position before it), and whether each is the argmax. */
async function byHand(model: LlamaModel, r: LogLikelihoodRequest, maxContext: number): Promise<{ ll: number; greedy: boolean }> {
  const row = [...r.context, ...r.continuation].slice(-(maxContext + 1));
  const input = row.slice(0, -1);
  const logits = await scope(async () => noGrad(async () => model.forward(fromArray(input, [1, input.length], { dtype: 'i32' })).toArray()));
  let ll = 0, greedy = true;
  for (let t = input.length - r.continuation.length; t < input.length; t++) {
    const x = Array.from(logits.subarray(t * VOCAB, (t + 1) * VOCAB), Number);
    const max = Math.max(...x);
    const lse = max + Math.log(x.reduce((s, v) => s + Math.exp(v - max), 0));
    const target = row[t + 1]!;
    ll += x[target]! - lse;
    greedy &&= x.indexOf(max) === target;
  }
  return { ll, greedy };
}

test('scoreRow: log-softmax of the target in f64, argmax with the first index on ties', () => {
  const row = [1, 3, 3, 0];
  const lse = Math.log(Math.exp(1) + 2 * Math.exp(3) + 1);
  assert.ok(Math.abs(scoreRow(row, 0).logProb - (1 - lse)) < 1e-12);
  assert.equal(scoreRow(row, 1).isArgmax, true);
  assert.equal(scoreRow(row, 2).isArgmax, false, 'a tie goes to the first index, as numpy argmax');
});

testBothBackends('modelScorer: batched, padded and truncated scores equal the hand computation', async (device) => {
  const model = initLlama({ vocab_size: VOCAB, hidden_size: 16, intermediate_size: 32, num_hidden_layers: 2, num_attention_heads: 2,
    rms_norm_eps: 1e-5, rope_theta: 10000, tie_word_embeddings: false, initializer_range: 0.5 }, { device, seed: 3 });
  try {
    const maxContext = 12;
    const requests: LogLikelihoodRequest[] = [
      { context: [22, 1, 2, 3], continuation: [4] },
      { context: [22], continuation: [5, 6, 7] },
      { context: [22, 9, 8, 7, 6, 5, 4, 3], continuation: [2, 1] },
      { context: [22, ...Array.from({ length: 15 }, (_, i) => i % VOCAB)], continuation: [7, 7, 7] }, // 19 tokens: keeps its last 13
      { context: [22, 1, 2, 3], continuation: [4] }, // a repeat scores the same
    ];
    // two budgets: everything in one forward, and one row per forward
    for (const maxLogitBytes of [1 << 20, 1]) {
      const scores = await modelScorer(model, { maxContext, maxLogitBytes })(requests);
      for (let i = 0; i < requests.length; i++) {
        const want = await byHand(model, requests[i]!, maxContext);
        assert.ok(Math.abs(scores[i]!.logLikelihood - want.ll) < 1e-4, `request ${i}, budget ${maxLogitBytes}: ${scores[i]!.logLikelihood} vs ${want.ll}`);
        assert.equal(scores[i]!.isGreedy, want.greedy, `request ${i} greediness`);
      }
      assert.equal(scores[0]!.logLikelihood, scores[4]!.logLikelihood);
    }
    // a greedy continuation is recognised as such: take the model's own argmax continuation
    const first = await byHand(model, { context: [22, 1], continuation: [0] }, maxContext);
    const row = await scope(async () => noGrad(async () => model.forward(fromArray([22, 1], [1, 2], { dtype: 'i32' })).toArray()));
    const last = Array.from(row.subarray(VOCAB, 2 * VOCAB), Number);
    const best = last.indexOf(Math.max(...last));
    const [s] = await modelScorer(model, { maxContext })([{ context: [22, 1], continuation: [best] }]);
    assert.equal(s!.isGreedy, true);
    assert.ok(s!.logLikelihood >= first.ll);
    await assert.rejects(modelScorer(model, { maxContext })([{ context: [], continuation: [1] }]), /request 0 has an empty context/);
    await assert.rejects(modelScorer(model, { maxContext })([{ context: [1], continuation: [] }]), /empty continuation/);
    await assert.rejects(modelScorer(model, { maxContext })([{ context: [1], continuation: Array(13).fill(1) }]), /continuation of 13 tokens, more than the model's context of 12/);
  } finally {
    model.dispose();
  }
});
