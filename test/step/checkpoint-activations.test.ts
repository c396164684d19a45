import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getDevice } from '../../index.js';
import { DEFAULT_TRAIN_OPTIONS, parseTrainArgs } from '../../step/train/options.js';
import { train } from '../../step/train/trainer.js';
import { tinyCorpus } from '../helpers/corpus.js';

const DATA = tinyCorpus({ documents: 12 });

async function run(checkpointActivations: boolean) {
  const r = await train({
    ...DEFAULT_TRAIN_OPTIONS, runsDir: mkdtempSync(join(tmpdir(), 'step-ckpt-')), name: 'r', data: DATA, vocabSize: 300,
    seqLen: 16, batchSize: 2, gradAccum: 2, steps: 4, warmupSteps: 1, evalEvery: 0, evalBatches: 1, checkpointEvery: 0, device: 'cpu',
    method: 'step', split: [1, 1], loraRank: 4, loraDropout: 0.1, checkpointActivations,
    configOverrides: { hidden_size: 32, intermediate_size: 48, num_hidden_layers: 2, num_attention_heads: 2, num_key_value_heads: 2, max_position_embeddings: 64 },
  });
  const losses = readFileSync(join(r.runDir, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((e) => e.event === 'train').map((e) => e.loss as number);
  return { losses, activationPeak: getDevice().memory().peakByCategory.activation };
}

test('step train --checkpoint-activations: the same losses (STEP with LoRA dropout, accumulation), a lower activation peak', async () => {
  const plain = await run(false);
  const ckpt = await run(true);
  assert.equal(ckpt.losses.length, 4);
  ckpt.losses.forEach((l, i) => assert.ok(Math.abs(l - plain.losses[i]!) <= 1e-5 * Math.abs(l), `step ${i + 1}: ${l} vs ${plain.losses[i]}`));
  assert.ok(ckpt.activationPeak < plain.activationPeak, `activation peak ${ckpt.activationPeak} with checkpointing vs ${plain.activationPeak}`);
});

test('--checkpoint-activations is a switch, allowed with --resume', () => {
  assert.equal(parseTrainArgs(['--checkpoint-activations']).options.checkpointActivations, true);
  assert.equal(parseTrainArgs([]).options.checkpointActivations, false);
  assert.ok(parseTrainArgs(['--resume', 'r', '--checkpoint-activations']).given.has('checkpointActivations'));
  assert.throws(() => parseTrainArgs(['--checkpoint-activations=yes']), /--checkpoint-activations/);
});
