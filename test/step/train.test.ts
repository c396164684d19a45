import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_TRAIN_OPTIONS, parseTrainArgs } from '../../step/train/options.js';
import type { TrainOptions } from '../../step/train/options.js';
import { train } from '../../step/train/trainer.js';
import { loadModelWeights, readCheckpointConfig } from '../../step/train/checkpoint.js';
import { initLlama } from '../../models/llama.js';
import { CpuBackend } from '../../index.js';
import { tinyCorpus } from '../helpers/corpus.js';

const CLI = new URL('../../step/cli.js', import.meta.url).pathname;


const DATA = tinyCorpus();

function options(over: Partial<TrainOptions>): TrainOptions {
  return {
    ...DEFAULT_TRAIN_OPTIONS, runsDir: mkdtempSync(join(tmpdir(), 'step-runs-')), data: DATA, vocabSize: 300, seqLen: 16, batchSize: 4,
    steps: 12, warmupSteps: 2, evalEvery: 6, evalBatches: 2, checkpointEvery: 4, device: 'cpu', name: 'r',
    configOverrides: { hidden_size: 32, intermediate_size: 48, num_hidden_layers: 2, num_attention_heads: 2, num_key_value_heads: 2, max_position_embeddings: 64 },
    ...over,
  };
}

const events = (runDir: string, kind: string) => readFileSync(join(runDir, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((e) => e.event === kind);
const losses = (runDir: string) => new Map(events(runDir, 'train').map((e) => [e.step as number, e.loss as number]));

test('train: loss falls, checkpoints are complete, resume after an interruption reproduces the losses exactly', async () => {
  const a = options({});
  const full = await train(a);
  assert.equal(full.finalStep, 12);
  const la = losses(full.runDir);
  assert.ok(la.get(12)! < la.get(1)!, `loss should fall: ${la.get(1)} -> ${la.get(12)}`);
  for (const f of ['model.safetensors', 'config.json', 'tokenizer.json', 'optimizer.safetensors', 'trainer-state.json']) {
    assert.ok(existsSync(join(full.runDir, 'checkpoints', 'step-000012', f)), f);
  }
  const b = options({ stopAfter: 6 });
  const first = await train(b);
  assert.equal(first.stopped, true);
  assert.equal(first.finalStep, 6);
  const resumed = await train({ ...b, stopAfter: null }, 'r'); // resumes from the step-4 checkpoint
  assert.equal(resumed.finalStep, 12);
  const lb = new Map(events(resumed.runDir, 'train').filter((e, i, all) => i >= all.findIndex((x) => x.step === 5) && e.step >= 5).map((e) => [e.step as number, e.loss as number]));
  for (let s = 5; s <= 12; s++) assert.equal(lb.get(s), la.get(s), `step ${s} after resume`);
});

test('train: a process killed mid-run resumes from its last checkpoint with the same losses', async () => {
  const o = options({ name: 'k' });
  const ref = await train({ ...o, runsDir: mkdtempSync(join(tmpdir(), 'step-ref-')) });
  const args = [CLI, 'train', '--name', 'k', '--runs-dir', o.runsDir, '--data', DATA, '--vocab-size', '300', '--seq-len', '16', '--batch-size', '4',
    '--steps', '12', '--warmup', '2', '--eval-every', '6', '--eval-batches', '2', '--checkpoint-every', '4', '--device', 'cpu',
    ...Object.entries(o.configOverrides).flatMap(([k, v]) => ['--set', `${k}=${v}`])];
  await new Promise<void>((resolve, reject) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (/step\s+7\/12/.test(out)) child.kill('SIGKILL'); // somewhere inside step 8
    });
    child.on('exit', (code, signal) => (signal === 'SIGKILL' ? resolve() : reject(new Error(`child ended with ${code}: ${out}`))));
  });
  const r = await train({ ...o, stopAfter: null }, 'k');
  assert.equal(r.finalStep, 12);
  const lr = losses(ref.runDir);
  const after = events(r.runDir, 'train').slice(-8);
  assert.equal(after[0].step, 5, 'resumed from the step-4 checkpoint');
  for (const e of after) assert.equal(e.loss, lr.get(e.step), `step ${e.step}`);
});

test('train: NaN loss stops the run, names the step and keeps the last good checkpoint', async () => {
  const o = options({ lr: 1e12, clip: 0, warmupSteps: 0, steps: 40, checkpointEvery: 1, evalEvery: 0 });
  await assert.rejects(train(o), (e: unknown) => /loss is (NaN|Infinity|-Infinity) at step \d+; training stopped\. The last good checkpoint is .*step-0000\d\d/.test((e as Error).message));
  const nan = events(join(o.runsDir, 'r'), 'nan');
  assert.equal(nan.length, 1);
  const latest = JSON.parse(readFileSync(join(o.runsDir, 'r', 'latest.json'), 'utf8'));
  assert.equal(latest.step, nan[0].step, 'the last checkpoint is the step before the bad one');
});

test('train options: bad input is refused with clear errors', async () => {
  assert.throws(() => parseTrainArgs(['--bogus', '1']), /unknown option --bogus/);
  assert.throws(() => parseTrainArgs(['--steps', 'ten']), /--steps must be an integer/);
  assert.throws(() => parseTrainArgs(['--method', 'magic']), /--method must be one of vanilla, step, relora, galore, got "magic"/);
  assert.throws(() => parseTrainArgs(['--split', '2,x']), /--split must be positive integers/);
  assert.throws(() => parseTrainArgs(['--warmup', '700']), /--warmup \(700\) must be below --steps/);
  await assert.rejects(train(options({ preset: 'huge' })), /--preset must be one of tiny, small, .*, got "huge"/);
  await assert.rejects(train(options({ configOverrides: { hidden_sise: 3 } })), /hidden_sise/);
  await assert.rejects(train(options({ data: '/nonexistent/corpus' })), /does not exist/);
  await assert.rejects(train(options({ method: 'step', split: [1, 2] })), /--split 1,2 sums to 3 layers but the model has 2 \(num_hidden_layers\)/);
  await assert.rejects(train(options({}), 'no-such-run'), /--resume no-such-run: .*train-config\.json not found; is .* a run folder\?/);
});

test('STEP training: measured model-state bytes equal the planner prediction in every stage', async () => {
  const o = options({ method: 'step', split: [1, 1], steps: 8, checkpointEvery: 0, evalEvery: 0, loraRank: 4 });
  const r = await train(o);
  const mem = events(r.runDir, 'memory');
  assert.equal(mem.length, 2, 'one measurement per stage');
  for (const m of mem) assert.equal(m.match, true, `stage ${m.stage}: measured ${JSON.stringify(m.measured)} predicted ${JSON.stringify(m.predicted)}`);
  assert.ok(mem[1].measured.frozen > 0, 'stage 2 has frozen layers');
  const stage = events(r.runDir, 'stage');
  assert.deepEqual(stage.map((s) => s.layers), [2]);
  // a checkpoint of a LoRA stage does not load into a model of another structure
  const dir = join(r.runDir, 'checkpoints', 'step-000008');
  const config = await readCheckpointConfig(dir);
  const vanilla = initLlama(config, { device: new CpuBackend() });
  await assert.rejects(loadModelWeights(vanilla, dir), /does not fit this model \(another method, stage or config\?\): unexpected model\.layers\.\d\.self_attn\.q_proj\.lora_A/);
  vanilla.dispose();
});

test('ReLoRA training: warm start, LoRA, restart; a resume between restarts reproduces the losses exactly', async () => {
  const o = options({ method: 'relora', steps: 10, reloraWarmStart: 3, reloraEvery: 3, stageWarmupSteps: 1, loraRank: 4, checkpointEvery: 5, evalEvery: 0 });
  const r = await train(o);
  assert.equal(events(r.runDir, 'relora-start').length, 1);
  assert.deepEqual(events(r.runDir, 'relora-restart').map((e) => e.step), [6, 9]);
  const l = losses(r.runDir);
  assert.ok(Number.isFinite(l.get(10)!));
  // interrupted after step 7, resumed from the step-5 checkpoint: both restarts' adapters are redrawn alike
  const b = { ...o, runsDir: mkdtempSync(join(tmpdir(), 'step-runs-')), stopAfter: 7 };
  await train(b);
  const resumed = await train({ ...b, stopAfter: null }, 'r');
  assert.equal(resumed.finalStep, 10);
  const all = events(resumed.runDir, 'train');
  const lb = new Map(all.filter((e, i) => i >= all.findIndex((x) => x.step === 6) && e.step >= 6).map((e) => [e.step as number, e.loss as number]));
  for (let s = 6; s <= 10; s++) assert.equal(lb.get(s), l.get(s), `step ${s} after resume`);
});

test('train --precision mixed: f16 parameters and gradients, f32 master + Adam state (2 + 2 + 12 bytes per parameter)', async () => {
  const r = await train(options({ precision: 'mixed', steps: 6, checkpointEvery: 0, evalEvery: 0, lr: 1e-2 }));
  const [m] = events(r.runDir, 'memory');
  const n = m.measured.parameter / 2;
  assert.ok(Number.isInteger(n) && n > 0);
  assert.deepEqual(m.measured, { parameter: 2 * n, frozen: 0, gradient: 2 * n, optimizer: 12 * n });
  const l = losses(r.runDir);
  assert.ok(Number.isFinite(l.get(6)!) && l.get(6)! < l.get(1)!, `mixed-precision loss should fall: ${l.get(1)} -> ${l.get(6)}`);
});

test('STEP: stage lengths by tokens, and ReLoRA restarts of the adapters inside a LoRA stage', async () => {
  // 64 tokens per step: stage 1 = 3 steps (192 tokens), stage 2 = 6 steps (384 tokens)
  const o = options({ method: 'step', split: [1, 1], stageTokens: [192, 384], stageReloraEvery: 2, checkpointEvery: 0, evalEvery: 0, loraRank: 4, warmupSteps: 1 });
  const parsed = parseTrainArgs(['--method', 'step', '--set', 'num_hidden_layers=2', '--split', '1,1', '--stage-tokens', '192,384', '--batch-size', '4', '--seq-len', '16', '--warmup', '1']).options;
  assert.equal(parsed.steps, 9, 'the run length follows the stage tokens');
  const r = await train({ ...o, steps: 9 });
  const stage = events(r.runDir, 'stage');
  assert.deepEqual(stage.map((s) => s.step), [3]);
  assert.deepEqual(events(r.runDir, 'relora-restart').map((e) => e.step), [5, 7], 'restarts every 2 steps inside stage 2');
  const mem = events(r.runDir, 'memory');
  assert.ok(mem.every((m) => m.match === true), 'restarts do not change the model-state bytes');
  assert.throws(() => parseTrainArgs(['--method', 'step', '--set', 'num_hidden_layers=2', '--split', '1,1', '--stage-tokens', '1024,1024,1024']), /--stage-tokens gives 3 stages but --split gives 2/);
});
