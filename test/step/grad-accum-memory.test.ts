import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getDevice } from '../../index.js';
import { DEFAULT_TRAIN_OPTIONS } from '../../step/train/options.js';
import { train } from '../../step/train/trainer.js';
import { tinyCorpus } from '../helpers/corpus.js';

const DATA = tinyCorpus({ documents: 12 });

/** The whole run's peak (never reset) of a short training run with `gradAccum` micro-batches per step. */
async function peakOf(gradAccum: number) {
  await train({
    ...DEFAULT_TRAIN_OPTIONS, runsDir: mkdtempSync(join(tmpdir(), 'step-accum-')), name: 'r', data: DATA, vocabSize: 300,
    seqLen: 16, batchSize: 2, gradAccum, steps: 3, warmupSteps: 1, evalEvery: 0, evalBatches: 1, checkpointEvery: 0, device: 'cpu',
    configOverrides: { hidden_size: 32, intermediate_size: 48, num_hidden_layers: 2, num_attention_heads: 2, num_key_value_heads: 2, max_position_embeddings: 64 },
  });
  return getDevice().memory();
}

test('gradient accumulation holds the whole-run peak flat in the number of micro-batches', async () => {
  const one = await peakOf(1);
  const two = await peakOf(2);
  const four = await peakOf(4);
  const sixteen = await peakOf(16);
  for (const [accum, m] of [[2, two], [4, four], [16, sixteen]] as const) {
    assert.equal(m.peakByCategory.activation, one.peakByCategory.activation, `activation peak at --grad-accum ${accum}`);
  }
  // the step drops its gradients before the first forward (set-to-none), so only a second
  // micro-batch runs its forward beside the gradients: --grad-accum 1 peaks lower, by at most them
  assert.ok(one.peak.total <= two.peak.total && two.peak.total - one.peak.total <= two.peakByCategory.gradient, `whole-run peak: ${two.peak.total} bytes at --grad-accum 2 vs ${one.peak.total} at 1`);
  // accumulating adds a few 4-byte scalars (the running loss sum), and nothing grows with the count
  assert.ok(four.peak.total - two.peak.total <= 64, `whole-run peak: ${four.peak.total} bytes at --grad-accum 4 vs ${two.peak.total} at 2`);
  assert.equal(sixteen.peak.total, four.peak.total, 'whole-run peak at --grad-accum 16 equals the one at 4');
});
