import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CpuBackend } from '../../index.js';
import { openSafetensors } from '../../engine/safetensors.js';
import { loadCheckpointModel } from '../../step/commands/checkpoint-model.js';
import { DEFAULT_SFT_OPTIONS, parseSftArgs } from '../../step/sft/options.js';
import type { SftOptions } from '../../step/sft/options.js';
import { sft } from '../../step/sft/sft.js';
import { train } from '../../step/train/trainer.js';
import { captureStdout as captureNow, CLI, events, runOptions } from './run-fixtures.js';

const FIXTURE = new URL('../../../test/fixtures/sft/tiny.jsonl', import.meta.url).pathname;
const VAL = new URL('../../../test/fixtures/sft/tiny-val.json', import.meta.url).pathname;
let base = '';

/** The base model: a 2-step run of the tiny model (context 128), trained once (inside the first test, not in a hook: a hook that captures stdout hides the test reports). */
async function ensureBase(): Promise<void> {
  if (base) return;
  const o = runOptions({ steps: 2, checkpointEvery: 2, warmupSteps: 0 });
  o.configOverrides = { ...o.configOverrides, max_position_embeddings: 128 };
  await captureStdout(() => train(o));
  base = join(o.runsDir, 'r', 'checkpoints', 'step-000002');
}

function sftOptions(over: Partial<SftOptions> = {}): SftOptions {
  return {
    ...DEFAULT_SFT_OPTIONS, checkpoint: base, data: FIXTURE, runsDir: mkdtempSync(join(tmpdir(), 'sft-runs-')), name: 's', template: 'compact',
    seqLen: 128, batchSize: 2, steps: 6, checkpointEvery: 2, device: 'cpu', lr: 3e-3, ...over,
  };
}

async function tensors(path: string): Promise<Map<string, Float32Array>> {
  const r = await openSafetensors(path);
  try {
    const out = new Map<string, Float32Array>();
    for (const name of r.names) out.set(name, Float32Array.from(await r.values(name)));
    return out;
  } finally {
    await r.close();
  }
}

/** captureStdout after the test runner has written the previous test's report (it writes it asynchronously, to the same stdout). */
async function captureStdout<T>(fn: () => Promise<T>): Promise<{ value: T; out: string }> {
  await new Promise((resolve) => setTimeout(resolve, 20));
  return captureNow(fn);
}

const quiet = <T>(fn: () => Promise<T>) => captureStdout(fn).then((r) => r.value);
const lossesByStep = (runDir: string) => new Map(events(runDir, 'train').map((e) => [e.step as number, e.loss as number]));

test('sft (full): trains the whole model, logs memory, writes RUN/final, which step eval / generate load as a plain model', async () => {
  await ensureBase();
  const o = sftOptions({ valData: VAL, evalEvery: 3 });
  const { value: r, out } = await captureStdout(() => sft(o));
  assert.equal(r.finalStep, 6);
  assert.equal(r.finalDir, join(o.runsDir, 's', 'final'));
  assert.match(out, /tiny\.jsonl: 14 examples/);
  assert.ok(r.valLoss !== null && Number.isFinite(r.valLoss));
  assert.equal(events(r.runDir, 'eval').length, 2, 'evaluations at steps 3 and 6');
  assert.equal(events(r.runDir, 'memory').length, 1);
  assert.equal(events(r.runDir, 'final').length, 1);
  const before = await tensors(join(base, 'model.safetensors'));
  const after = await tensors(join(r.finalDir!, 'model.safetensors'));
  assert.deepEqual([...after.keys()].sort(), [...before.keys()].sort(), 'the same tensors: a plain LLaMA');
  for (const name of ['model.embed_tokens.weight', 'model.layers.0.self_attn.q_proj.weight', 'lm_head.weight']) {
    assert.notDeepEqual(after.get(name), before.get(name), `${name} was tuned`);
  }
  const last = await tensors(join(r.runDir, 'checkpoints', 'step-000006', 'model.safetensors'));
  for (const [name, t] of after) assert.deepEqual(t, last.get(name), `final ${name} = the last checkpoint's`);
  const loaded = await loadCheckpointModel(r.finalDir!, new CpuBackend());
  assert.equal(loaded.state, null);
  assert.ok(loaded.tokenizer);
  loaded.model.dispose();
});

test('sft --lora-rank: base weights unchanged in every checkpoint; the final model is base + (alpha/r) B A, merged', async () => {
  await ensureBase();
  const o = sftOptions({ loraRank: 4, loraAlpha: 8, lr: 1e-2 });
  const r = await quiet(() => sft(o));
  const baseT = await tensors(join(base, 'model.safetensors'));
  for (const step of ['step-000002', 'step-000006']) {
    const ck = await tensors(join(r.runDir, 'checkpoints', step, 'model.safetensors'));
    for (const [name, t] of baseT) assert.deepEqual(ck.get(name), t, `${step}: ${name} unchanged before the merge`);
    assert.ok([...ck.keys()].some((n) => n.endsWith('lora_A')), 'adapters saved beside the frozen weights');
  }
  const ck = await tensors(join(r.runDir, 'checkpoints', 'step-000006', 'model.safetensors'));
  const final = await tensors(join(r.finalDir!, 'model.safetensors'));
  assert.deepEqual([...final.keys()].sort(), [...baseT.keys()].sort(), 'no adapters left in the final model');
  let changed = 0;
  for (const [name, w] of baseT) {
    const prefix = name.replace(/\.weight$/, '');
    const A = ck.get(`${prefix}.lora_A`), B = ck.get(`${prefix}.lora_B`);
    if (!A || !B) { assert.deepEqual(final.get(name), w, `${name} (no adapter) is the base's`); continue; }
    const rank = 4, inDim = A.length / rank, outDim = B.length / rank;
    const got = final.get(name)!;
    for (let i = 0; i < outDim; i++) {
      for (let j = 0; j < inDim; j++) {
        let ba = 0;
        for (let k = 0; k < rank; k++) ba += B[i * rank + k]! * A[k * inDim + j]!;
        const want = w[i * inDim + j]! + (8 / rank) * ba;
        assert.ok(Math.abs(got[i * inDim + j]! - want) <= 1e-6 + 1e-5 * Math.abs(want), `${name}[${i},${j}]: ${got[i * inDim + j]} vs ${want}`);
      }
    }
    if (got.some((x, i) => x !== w[i])) changed++;
  }
  assert.equal(changed, 2 * 7, 'every linear of both layers moved by its adapter');
});

for (const kind of ['full', 'lora'] as const) {
  test(`sft resume (${kind}) is exact: interrupted + resumed equals uninterrupted, losses and final weights bit for bit`, async () => {
    await ensureBase();
    const over: Partial<SftOptions> = kind === 'lora' ? { loraRank: 2, loraDropout: 0.1, gradAccum: 2 } : { batchSize: 3 };
    const whole = await quiet(() => sft(sftOptions(over)));
    const o = sftOptions({ ...over, stopAfter: 3 });
    const cut = await quiet(() => sft(o));
    assert.equal(cut.stopped, true);
    assert.equal(cut.finalDir, null);
    assert.equal(existsSync(join(cut.runDir, 'final')), false);
    const resumed = await quiet(() => sft({ ...o, stopAfter: null }, 's'));
    assert.equal(resumed.finalStep, 6);
    const a = lossesByStep(whole.runDir), b = lossesByStep(resumed.runDir);
    for (let step = 1; step <= 6; step++) assert.equal(b.get(step), a.get(step), `loss at step ${step}`);
    assert.deepEqual(readFileSync(join(resumed.finalDir!, 'model.safetensors')), readFileSync(join(whole.finalDir!, 'model.safetensors')));
  });
}

test('sft refuses, before creating anything: a missing or non-model checkpoint, bad records, an empty file, prompts beyond the context', async () => {
  await ensureBase();
  const dir = mkdtempSync(join(tmpdir(), 'sft-bad-'));
  const file = (name: string, text: string) => { const p = join(dir, name); writeFileSync(p, text); return p; };
  const cases: [Partial<SftOptions>, RegExp][] = [
    [{ checkpoint: join(dir, 'nope') }, /checkpoint folder .*nope does not exist/],
    [{ checkpoint: dir }, /no config\.json; is this a checkpoint folder\?/],
    [{ data: file('empty.jsonl', '') }, /empty\.jsonl: the file is empty/],
    [{ data: file('bad.jsonl', '{"instruction": "a", "output": "b"}\n{"instruction": "a", "answer": "b"}\n') }, /bad\.jsonl line 2: field "output" is missing/],
    [{ data: join(dir, 'missing.jsonl') }, /--data .*missing\.jsonl: the file does not exist/],
    [{ seqLen: 4 }, /every record of .*tiny\.jsonl has a prompt longer than --seq-len 4 tokens/],
    [{ seqLen: 500 }, /--seq-len 500 is beyond the model's max_position_embeddings 128/],
    [{ loraRank: 64 }, /--lora-rank 64 is above 32/],
  ];
  for (const [over, re] of cases) {
    const o = sftOptions(over);
    await assert.rejects(quiet(() => sft(o)), (e: Error) => e.name === 'StepError' && re.test(e.message), `${JSON.stringify(over)} -> ${re}`);
    assert.equal(existsSync(join(o.runsDir, 's')), false, 'no run folder left behind');
  }
  const noTokenizer = mkdtempSync(join(tmpdir(), 'sft-base-'));
  for (const f of ['config.json', 'model.safetensors']) writeFileSync(join(noTokenizer, f), readFileSync(join(base, f)));
  await assert.rejects(quiet(() => sft(sftOptions({ checkpoint: noTokenizer }))), /tokenizer\.json not found; the records are text/);
});

test('sft says how many examples were cut or skipped to fit --seq-len', async () => {
  await ensureBase();
  const dir = mkdtempSync(join(tmpdir(), 'sft-long-'));
  const data = join(dir, 'long.jsonl');
  const records = [
    { instruction: 'Say it.', output: 'the cat' },
    { instruction: 'Say it.', output: 'the cat sat on the mat and the dog ran to the house '.repeat(8) },
    { instruction: 'the dog ran to the house '.repeat(30), output: 'x' },
  ];
  writeFileSync(data, records.map((r) => JSON.stringify(r)).join('\n') + '\n');
  const { value: r, out } = await captureStdout(() => sft(sftOptions({ data, steps: 2, batchSize: 1 })));
  assert.match(out, /long\.jsonl: 2 examples \(1 with the response cut to fit --seq-len 128, 1 skipped: the prompt alone is longer\)/);
  assert.deepEqual(events(r.runDir, 'start')[0]!.data, { examples: 2, truncated: 1, skipped: 1, validation: null });
});

test('sft --resume: refuses flags it cannot honour, and data that changed since the start; takes --steps', async () => {
  await ensureBase();
  assert.throws(() => parseSftArgs(['--resume', 's', '--lr', '1e-3']), /--lr cannot be given with --resume/);
  assert.throws(() => parseSftArgs(['--checkpoint', 'x', '--data', 'y', '--lora-alpha', '4']), /--lora-alpha only applies to LoRA fine-tuning; add --lora-rank R/);
  assert.throws(() => parseSftArgs(['--checkpoint', 'x', '--data', 'y', '--steps', '4', '--epochs', '2']), /--steps and --epochs both set the run's length/);
  assert.throws(() => parseSftArgs(['--data', 'y']), /--checkpoint DIR is required/);
  assert.throws(() => parseSftArgs(['--checkpoint', 'x', '--data', 'y', '--template', 'chatml']), /--template must be one of alpaca, compact/);
  assert.throws(() => parseSftArgs(['--checkpoint', 'x', '--data', 'y', '--lora-rank', '-1']), /--lora-rank must be an integer >= 0/);
  const dir = mkdtempSync(join(tmpdir(), 'sft-change-'));
  const data = join(dir, 'd.jsonl');
  writeFileSync(data, readFileSync(FIXTURE));
  const o = sftOptions({ data, stopAfter: 2 });
  await quiet(() => sft(o));
  writeFileSync(data, readFileSync(FIXTURE, 'utf8') + '{"instruction": "new", "output": "record"}\n');
  await assert.rejects(quiet(() => sft({ ...o, stopAfter: null }, 's')), /d\.jsonl changed since the run started/);
  writeFileSync(data, readFileSync(FIXTURE));
  const { value: r, out } = await captureStdout(() => sft({ ...o, steps: 8, stopAfter: null }, 's', { given: new Set(['steps']) }));
  assert.equal(r.finalStep, 8);
  assert.match(out, /resume: --steps 6 -> 8/);
  rmSync(dir, { recursive: true, force: true });
});

test('the step sft command: --help, a misspelt flag, a run to the end and a stop that names the resume', async () => {
  await ensureBase();
  const runsDir = mkdtempSync(join(tmpdir(), 'sft-cli-'));
  const cli = (...args: string[]) => spawnSync(process.execPath, [CLI, 'sft', ...args], { encoding: 'utf8', env: { ...process.env, STEP_DEVICE: 'cpu' } });
  for (const help of [cli('--help'), spawnSync(process.execPath, [CLI, 'help', 'sft'], { encoding: 'utf8' })]) {
    assert.equal(help.status, 0);
    assert.match(help.stdout, /^usage: step sft --checkpoint DIR --data FILE/);
  }
  const typo = cli('--lora-rnak', '4');
  assert.equal(typo.status, 2);
  assert.equal(typo.stderr, 'step sft: unknown option --lora-rnak (did you mean --lora-rank?)\n');
  const common = ['--checkpoint', base, '--data', FIXTURE, '--template', 'compact', '--batch-size', '2', '--steps', '3', '--device', 'cpu', '--runs-dir', runsDir];
  const stopped = cli(...common, '--name', 'c', '--stop-after', '1');
  assert.equal(stopped.status, 0, stopped.stderr);
  assert.match(stopped.stdout, new RegExp(`stopped at step 1; continue with: step sft --resume c --runs-dir ${runsDir}`));
  const done = cli('--resume', 'c', '--runs-dir', runsDir);
  assert.equal(done.status, 0, done.stderr);
  assert.match(done.stdout, new RegExp(`tuned model: ${join(runsDir, 'c', 'final')}`));
  const again = cli(...common, '--name', 'c');
  assert.equal(again.status, 1);
  assert.match(again.stderr, /the run folder .* already exists; continue that run with --resume c, or replace it with --overwrite/);
});
