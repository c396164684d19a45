import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CpuBackend, fromArray } from '../../index.js';
import type { Backend } from '../../index.js';
import { findNonFinite } from '../../engine/finite-check.js';
import { loadSafetensors, saveSafetensors } from '../../engine/safetensors.js';
import { loadCheckpointModel } from '../../step/commands/checkpoint-model.js';
import { train } from '../../step/train/trainer.js';
import { checkDeviceLimits, largestStepBuffers, maxBindingBytes } from '../../step/train/start-checks.js';
import { REQUIRE_WEBGPU, sharedWebGPU, testBothBackends } from '../helpers/backends.js';
import { events, runOptions } from './run-fixtures.js';

testBothBackends('findNonFinite names every tensor holding NaN or Inf, with one read back', async (b: Backend) => {
  const big = new Float32Array(70_000).map((_, i) => Math.sin(i)); // spans many workgroups
  const withNaN = Float32Array.from(big); withNaN[65_123] = NaN;
  const withInf = new Float32Array(5).fill(1); withInf[0] = -Infinity;
  const huge = new Float32Array(10).fill(3e38); // its sum of squares overflows, yet every value is finite
  const values: [string, Float32Array][] = [['ok', big], ['nan', withNaN], ['inf', withInf], ['huge', huge]];
  const named = values.map(([n, v]) => [n, fromArray(v, [v.length], { device: b })] as const);
  const reads = b.stats.readbacks;
  assert.deepEqual(await findNonFinite(named, b), [{ name: 'nan', count: 1 }, { name: 'inf', count: 1 }]);
  assert.equal(b.stats.readbacks - reads, 1, 'one read for all tensors');
  for (const [, t] of named) t.dispose();
});

/** Writes NaN into one element of `tensor` in a checkpoint's model.safetensors. */
async function poison(dir: string, tensor: string): Promise<void> {
  const path = join(dir, 'model.safetensors');
  const cpu = new CpuBackend();
  const { tensors, metadata } = await loadSafetensors(path, { device: cpu });
  const t = tensors.get(tensor)!;
  const values = Float32Array.from(await t.toArray());
  values[3] = NaN;
  tensors.set(tensor, fromArray(values, t.shape, { device: cpu }));
  await saveSafetensors(path, tensors, metadata);
}

test('a checkpoint with NaN weights is refused naming the tensor: on resume and by the eval/generate/grads loader', async () => {
  const o = runOptions({ steps: 8, checkpointEvery: 4, stopAfter: 4 });
  await train(o);
  const dir = join(o.runsDir, 'r', 'checkpoints', 'step-000004');
  await poison(dir, 'model.layers.1.mlp.down_proj.weight');
  const named = /model\.safetensors: model\.layers\.1\.mlp\.down_proj\.weight \(1 non-finite value\); the checkpoint holds NaN\/Inf weights/;
  await assert.rejects(train({ ...o, stopAfter: null }, 'r'), named);
  await assert.rejects(loadCheckpointModel(dir, new CpuBackend()), named);
});

test('a NaN stop names the last checkpoint whose recorded loss is finite, not simply the latest', async () => {
  const o = runOptions({ steps: 12, checkpointEvery: 4, stopAfter: 4 });
  await train(o);
  const ck = join(o.runsDir, 'r', 'checkpoints');
  // a later checkpoint whose recorded loss was not finite (JSON holds NaN/Inf as null)
  cpSync(join(ck, 'step-000004'), join(ck, 'step-000006'), { recursive: true });
  const statePath = join(ck, 'step-000006', 'trainer-state.json');
  const state = JSON.parse(readFileSync(statePath, 'utf8'));
  writeFileSync(statePath, JSON.stringify({ ...state, step: 6, tokens: state.tokens * 1.5, sampler: { ...state.sampler, step: 6 }, lastLoss: null }));
  writeFileSync(join(o.runsDir, 'r', 'latest.json'), JSON.stringify({ checkpoint: 'step-000006', step: 6 }));
  const given = { given: new Set(['lr', 'clip', 'steps', 'checkpointEvery'] as const) };
  await assert.rejects(train({ ...o, lr: 1e12, clip: 0, steps: 60, checkpointEvery: 0, stopAfter: null }, 'r', given),
    new RegExp(`loss is (NaN|Infinity|-Infinity) at step \\d+; training stopped\\. The last good checkpoint is ${ck}/step-000004;`));
  assert.equal(events(join(o.runsDir, 'r'), 'nan').at(-1)!.lastGoodCheckpoint, join(ck, 'step-000004'));
  assert.ok(!existsSync(join(o.runsDir, 'r', 'run.lock')), 'the lock is released when training fails');
});

test('the final checkpoint is written before the final evaluation, and records that evaluation', async () => {
  const o = runOptions({ steps: 6, checkpointEvery: 3, evalEvery: 3 });
  const r = await train(o);
  const last = events(r.runDir).filter((e) => e.step === 6 && (e.event === 'checkpoint' || e.event === 'eval')).map((e) => e.event);
  assert.deepEqual(last, ['checkpoint', 'eval']);
  const state = JSON.parse(readFileSync(join(r.runDir, 'checkpoints', 'step-000006', 'trainer-state.json'), 'utf8'));
  assert.equal(state.lastValLoss, events(r.runDir, 'eval').at(-1)!.loss);
});

test('resume refuses a checkpoint whose context is shorter than the run\'s sequence length', async () => {
  const o = runOptions({ steps: 8, checkpointEvery: 4, stopAfter: 4 });
  await train(o);
  const configPath = join(o.runsDir, 'r', 'checkpoints', 'step-000004', 'config.json');
  writeFileSync(configPath, JSON.stringify({ ...JSON.parse(readFileSync(configPath, 'utf8')), max_position_embeddings: 8 }));
  await assert.rejects(train({ ...o, stopAfter: null }, 'r'), new RegExp(`--resume r \\(${configPath}\\): --seq-len 16 is beyond the model's max_position_embeddings 8`));
});

test('device limits: the largest buffer of a step beyond one binding is refused naming the flag to lower', async () => {
  const config = { hidden_size: 4096, vocab_size: 32000, num_attention_heads: 32, intermediate_size: 11008 } as never;
  const buffers = largestStepBuffers(config, { batchSize: 64, seqLen: 512, precision: 'fp32' });
  assert.equal(buffers.find((b) => b.what.startsWith('the embedding gather'))!.bytes, 64 * 512 * 4096 * 4);
  assert.equal(buffers.find((b) => b.what.startsWith('one row of logits'))!.bytes, 32000 * 4, 'the fused head never needs [B*T, V]');
  assert.throws(() => checkDeviceLimits(buffers, 128 * 2 ** 20, 'webgpu: test'), /step train: the embedding gather \[32768, 4096\] needs 512\.00 MiB, beyond the 128\.00 MiB the device \(webgpu: test\) can hold in one buffer; lower --batch-size or --seq-len/);
  const small = { hidden_size: 512, vocab_size: 32000, num_attention_heads: 8, intermediate_size: 1376 } as never;
  checkDeviceLimits(largestStepBuffers(small, { batchSize: 8, seqLen: 256, precision: 'fp32' }), 128 * 2 ** 20, 'webgpu: test'); // 60m at 8 x 256 fits
  assert.equal(maxBindingBytes(new CpuBackend()), 2 ** 27, 'the cpu backend keeps the common binding limit, so both backends refuse alike');
});

for (const device of ['cpu', 'webgpu'] as const) {
  test(`device limits in train [${device}]: a batch whose embedding gather exceeds one binding is refused before the run folder exists`, async (t) => {
    const backend = device === 'cpu' ? new CpuBackend() : await sharedWebGPU();
    if (typeof backend === 'string') {
      if (REQUIRE_WEBGPU) throw new Error(`STEP_REQUIRE_WEBGPU=1 but WebGPU is unavailable: ${backend}`);
      t.skip(`WebGPU unavailable: ${backend}`);
      return;
    }
    const limit = maxBindingBytes(backend)!;
    const batchSize = Math.ceil(limit / (16 * 32 * 4)) + 1; // the embedding gather [B * 16, 32] beyond one buffer
    const o = runOptions({ device, batchSize, name: 'huge' });
    await assert.rejects(train(o), /the embedding gather \[\d+, 32\] needs .* beyond the .* the device .* can hold in one buffer; lower --batch-size or --seq-len/);
    assert.ok(!existsSync(join(o.runsDir, 'huge')));
  });
}
