/**
 * `step eval`, `step grads`, `step generate` on checkpoints of tiny models trained here (cpu), and
 * parity with PyTorch: test/fixtures/check_checkpoint.py loads the same checkpoint folders into a
 * LLaMA with Hugging Face semantics (float64) and must give the same loss, gradients and greedy
 * text; a checkpoint and a gradient file written by PyTorch must load here.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CpuBackend } from '../../index.js';
import { openSafetensors } from '../../engine/safetensors.js';
import { scope } from '../../engine/scope.js';
import { fromArray } from '../../engine/creation.js';
import { backward } from '../../autograd/backward.js';
import { loadCheckpointModel } from '../../step/commands/checkpoint-model.js';
import { evalCommand } from '../../step/commands/eval.js';
import { generateCommand } from '../../step/commands/generate.js';
import { gradsCommand } from '../../step/commands/grads.js';
import { DEFAULT_TRAIN_OPTIONS } from '../../step/train/options.js';
import type { TrainOptions } from '../../step/train/options.js';
import { train } from '../../step/train/trainer.js';
import { BpeTokenizer } from '../../models/tokenizer/bpe.js';
import { freshWebGPU, REQUIRE_WEBGPU } from '../helpers/backends.js';
import { tinyCorpus } from '../helpers/corpus.js';

const PYTHON = '/usr/bin/python3';
const CHECK = new URL('../../../test/fixtures/check_checkpoint.py', import.meta.url).pathname;
const hasTorch = existsSync(PYTHON) && spawnSync(PYTHON, ['-c', 'import torch, numpy'], { encoding: 'utf8' }).status === 0;
// Without torch the parity tests skip, except under STEP_REQUIRE_WEBGPU=1 (CI), where they must run.
const TORCH_SKIP = hasTorch || REQUIRE_WEBGPU ? false : `${PYTHON} with torch not available (install python3-torch for the PyTorch parity checks)`;

// Our f32 against PyTorch's f64 on the same f32 weights: the loss to 1e-6 relative, each gradient to
// 1e-5 of its largest magnitude. Measured: loss 2.2e-8 relative, gradients 4.9e-7 at worst (the
// test prints both), so the bounds leave a factor of 20 or more for other platforms' rounding.
const LOSS_RTOL = 1e-6, GRAD_TOL = 1e-5;


const DATA = tinyCorpus({ documents: 30, seed: 11 });
const TMP = mkdtempSync(join(tmpdir(), 'step-cmd-'));
const TOKENS = join(TMP, 'tokens.json');
after(() => { rmSync(TMP, { recursive: true, force: true }); rmSync(DATA, { recursive: true, force: true }); });

function options(over: Partial<TrainOptions>): TrainOptions {
  return {
    ...DEFAULT_TRAIN_OPTIONS, runsDir: join(TMP, 'runs'), data: DATA, vocabSize: 300, seqLen: 16, batchSize: 4,
    steps: 6, warmupSteps: 1, lr: 1e-2, evalEvery: 6, evalBatches: 2, checkpointEvery: 6, device: 'cpu', ...over,
  };
}

/** Vanilla: GQA (4 heads, 2 KV heads), untied head. STEP: a frozen layer with LoRA (alpha/r = 2), tied embeddings. */
const runs = (async () => {
  const dims = { hidden_size: 32, intermediate_size: 48, num_hidden_layers: 2, max_position_embeddings: 64 };
  const vanilla = await train(options({ name: 'vanilla', configOverrides: { ...dims, num_attention_heads: 4, num_key_value_heads: 2 } }));
  const step = await train(options({ name: 'step', method: 'step', split: [1, 1], loraRank: 4, loraAlpha: 8, stageWarmupSteps: 1,
    configOverrides: { ...dims, num_attention_heads: 2, num_key_value_heads: 1, tie_word_embeddings: true } }));
  const ckpt = { vanilla: join(vanilla.runDir, 'checkpoints', 'step-000006'), step: join(step.runDir, 'checkpoints', 'step-000006'), vanillaRun: vanilla.runDir };
  // the batch for grads: two rows of 13 tokens (12 predictions each): text like the corpus's, and ids spread over the vocabulary
  const text = (await BpeTokenizer.load(join(ckpt.vanilla, 'tokenizer.json'))).encode('the big dog ran to the red house under the blue sky . the cat sat on a small mat .');
  assert.ok(text.length >= 13, `the sentence has ${text.length} tokens`);
  writeFileSync(TOKENS, JSON.stringify([text.slice(0, 13), [298, 3, 77, 150, 151, 152, 9, 10, 200, 45, 46, 280, 1]]));
  return ckpt;
})();

/** Runs a command in-process, collecting what it prints. */
async function run(cmd: (args: string[], print: (s: string) => void) => Promise<number>, args: string[]): Promise<string> {
  let out = '';
  const code = await cmd(args, (s) => { out += s; });
  assert.equal(code, 0);
  return out;
}

/** Runs a command in a child process as the CLI does (errors: "step: message" on stderr, exit 1). */
function child(module: string, fn: string, args: string[]): { code: number | null; stderr: string; stdout: string } {
  const url = new URL(`../../step/commands/${module}.js`, import.meta.url).href;
  const script = `const m = await import(${JSON.stringify(url)});
m.${fn}(process.argv.slice(1)).then((c) => { process.exitCode = c; }, (e) => { process.stderr.write('step: ' + e.message + '\\n'); process.exitCode = 1; });`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script, '--', ...args], { encoding: 'utf8' });
  return { code: r.status, stderr: r.stderr, stdout: r.stdout };
}


async function readGrads(path: string): Promise<{ metadata: Record<string, string>; tensors: Map<string, Float64Array> }> {
  const r = await openSafetensors(path);
  try {
    const tensors = new Map<string, Float64Array>();
    for (const n of r.names) tensors.set(n, Float64Array.from(await r.values(n)));
    return { metadata: r.metadata, tensors };
  } finally {
    await r.close();
  }
}

/** Worst |a - b| over the largest |b| of the array. */
function scaledError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let maxB = 0, worst = 0;
  for (let i = 0; i < b.length; i++) { maxB = Math.max(maxB, Math.abs(b[i]!)); worst = Math.max(worst, Math.abs(a[i]! - b[i]!)); }
  return worst / (maxB || 1);
}

interface TorchResult { loss: number; grads: Record<string, number[]>; greedy: number[] | null }

function torchCheck(ckpt: string, extra: string[] = []): TorchResult {
  const r = spawnSync(PYTHON, [CHECK, ckpt, TOKENS, ...extra], { encoding: 'utf8', maxBuffer: 256 << 20 });
  assert.equal(r.status, 0, `check_checkpoint.py failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as TorchResult;
}

test('step eval: the validation loss of a checkpoint equals the one training logged; --json; unigram baseline', async () => {
  const { vanilla, vanillaRun } = await runs;
  const log = readFileSync(join(vanillaRun, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  const logged = log.find((e) => e.event === 'eval' && e.step === 6);
  const start = log.find((e) => e.event === 'start');
  const report = JSON.parse(await run(evalCommand, ['--checkpoint', vanilla, '--device', 'cpu', '--json']));
  // the run's data, batch size, sequence length and eval batches are the defaults
  assert.equal(report.loss, logged.loss, 'same windows, same weights, same device: the same loss to the bit');
  assert.equal(report.perplexity, Math.exp(report.loss));
  assert.equal(report.unigramPerplexity, start.unigramPerplexity);
  assert.deepEqual([report.step, report.batchSize, report.seqLen, report.batches, report.tokens], [6, 4, 16, 2, 128]);
  // a run folder means its latest checkpoint; other windows give another loss
  const text = await run(evalCommand, ['--checkpoint', vanillaRun, '--device', 'cpu', '--batches', '3', '--seq-len', '8']);
  assert.match(text, /validation: 96 tokens \(3 batches of 4 x 8\)/);
  assert.match(text, /loss \d+\.\d{4} {2}perplexity \d+\.\d\d {2}\(unigram baseline \d+\.\d\d\)/);
});

test('step grads: the file holds our autograd gradients of every trainable tensor under HF names, the loss in its metadata', async () => {
  const { vanilla, step } = await runs;
  for (const ckpt of [vanilla, step]) {
    const out = join(TMP, `grads-${ckpt === vanilla ? 'v' : 's'}.safetensors`);
    const printed = await run(gradsCommand, ['--checkpoint', ckpt, '--tokens', TOKENS, '--out', out, '--device', 'cpu']);
    const file = await readGrads(out);
    const cpu = new CpuBackend();
    const { model } = await loadCheckpointModel(ckpt, cpu);
    const rows = JSON.parse(readFileSync(TOKENS, 'utf8')) as number[][];
    const loss = await scope(async () => {
      const ids = fromArray(rows.flatMap((r) => r.slice(0, -1)), [2, 12], { dtype: 'i32', device: cpu });
      const targets = fromArray(rows.flatMap((r) => r.slice(1)), [2, 12], { dtype: 'i32', device: cpu });
      const l = model.loss(ids, targets);
      backward(l);
      return l.item();
    });
    assert.equal(Number(file.metadata.loss), loss);
    assert.match(printed, new RegExp(`^loss ${String(loss).replace('.', '\\.')}\\n`));
    const trainable = model.namedTensors().filter(([, t]) => t.requiresGrad);
    assert.deepEqual([...file.tensors.keys()], trainable.map(([n]) => n));
    for (const [name, t] of trainable) assert.deepEqual(file.tensors.get(name), Float64Array.from(await t.grad!.toArray()), name);
    if (ckpt === step) {
      assert.ok(file.tensors.has('model.layers.0.self_attn.q_proj.lora_A') && !file.tensors.has('model.layers.0.self_attn.q_proj.weight'), 'frozen layer 0: adapters only');
      assert.ok(file.tensors.has('model.layers.1.mlp.down_proj.weight') && !file.tensors.has('lm_head.weight'), 'new layer 1 trains; tied head');
    }
    model.dispose();
  }
});

test('PyTorch parity: a checkpoint we wrote gives PyTorch the same loss, gradients and greedy text', { skip: TORCH_SKIP }, async (t) => {
  const { vanilla, step } = await runs;
  for (const [label, ckpt] of [['vanilla (GQA, untied head)', vanilla], ['STEP stage 2 (LoRA on the frozen layer, tied embeddings)', step]] as const) {
    const out = join(TMP, `parity-${label.slice(0, 4)}.safetensors`);
    await run(gradsCommand, ['--checkpoint', ckpt, '--tokens', TOKENS, '--out', out, '--device', 'cpu']);
    const ours = await readGrads(out);
    const prompt = JSON.parse(await run(generateCommand, ['--checkpoint', ckpt, '--prompt', 'the big dog', '--temperature', '0', '--max-new-tokens', '8', '--device', 'cpu', '--json']));
    const promptFile = join(TMP, 'prompt.json');
    writeFileSync(promptFile, JSON.stringify(prompt.promptTokens));
    const torch = torchCheck(ckpt, ['--greedy', promptFile, '8']);
    const loss = Number(ours.metadata.loss);
    assert.ok(Math.abs(loss - torch.loss) <= LOSS_RTOL * torch.loss, `${label}: loss ${loss} vs PyTorch ${torch.loss}`);
    assert.deepEqual(Object.keys(torch.grads).sort(), [...ours.tensors.keys()].sort(), `${label}: the same trainable tensors`);
    let worst = 0;
    for (const [name, g] of Object.entries(torch.grads)) {
      const err = scaledError(ours.tensors.get(name)!, g);
      worst = Math.max(worst, err);
      assert.ok(err < GRAD_TOL, `${label}: ${name}: gradient scaled error ${err}`);
    }
    assert.deepEqual(prompt.tokens, torch.greedy, `${label}: greedy continuation`);
    t.diagnostic(`${label}: loss ${loss} vs PyTorch ${torch.loss} (rel ${(Math.abs(loss - torch.loss) / torch.loss).toExponential(2)}); worst gradient scaled error ${worst.toExponential(2)}`);
  }
});

test('PyTorch-written files load here: a checkpoint folder (safetensors by torch, config.json with transformers keys) and a gradient file', { skip: TORCH_SKIP }, async () => {
  const { step } = await runs;
  const torchDir = join(TMP, 'torch-ckpt'), torchGrads = join(TMP, 'torch-grads.safetensors');
  const torch = torchCheck(step, ['--save-checkpoint', torchDir, '--grads-out', torchGrads]);
  const config = JSON.parse(readFileSync(join(torchDir, 'config.json'), 'utf8'));
  assert.equal(config.transformers_version, '4.40.0', 'the folder carries the extra keys transformers writes');
  // the same f32 weights, written by torch in another order: the same loss and gradients to the bit
  const ours = join(TMP, 'g-ours.safetensors'), theirs = join(TMP, 'g-theirs.safetensors');
  await run(gradsCommand, ['--checkpoint', step, '--tokens', TOKENS, '--out', ours, '--device', 'cpu']);
  await run(gradsCommand, ['--checkpoint', torchDir, '--tokens', TOKENS, '--out', theirs, '--device', 'cpu']);
  const a = await readGrads(ours), b = await readGrads(theirs);
  assert.equal(a.metadata.loss, b.metadata.loss);
  assert.deepEqual(a.tensors, b.tensors);
  // the torch-written gradient file (F64) holds exactly what the script printed
  const tg = await readGrads(torchGrads);
  assert.equal(Number(tg.metadata.loss), torch.loss);
  assert.match(tg.metadata.writer!, /^torch /);
  for (const [name, g] of Object.entries(torch.grads)) assert.deepEqual(tg.tensors.get(name), Float64Array.from(g), name);
  const evalOurs = JSON.parse(await run(evalCommand, ['--checkpoint', step, '--data', DATA, '--batch-size', '4', '--seq-len', '16', '--batches', '2', '--device', 'cpu', '--json']));
  const evalTheirs = JSON.parse(await run(evalCommand, ['--checkpoint', torchDir, '--data', DATA, '--batch-size', '4', '--seq-len', '16', '--batches', '2', '--device', 'cpu', '--json']));
  assert.equal(evalTheirs.loss, evalOurs.loss);
});

test('step generate: prints the continuation; a seed repeats the text; greedy stops at max-new-tokens', async () => {
  const { vanilla } = await runs;
  const args = ['--checkpoint', vanilla, '--prompt', 'the cat', '--max-new-tokens', '12', '--top-k', '20', '--top-p', '0.9', '--seed', '7', '--device', 'cpu'];
  const a = await run(generateCommand, args), b = await run(generateCommand, args);
  assert.equal(a, b, 'the same seed gives the same text');
  assert.ok(a.length > 1 && a.endsWith('\n'));
  const g = JSON.parse(await run(generateCommand, ['--checkpoint', vanilla, '--prompt', 'the cat', '--temperature', '0', '--max-new-tokens', '5', '--device', 'cpu', '--json']));
  assert.equal(g.tokens.length, 5);
  assert.equal(g.prompt, 'the cat');
  const none = JSON.parse(await run(generateCommand, ['--checkpoint', vanilla, '--prompt', 'the', '--max-new-tokens', '0', '--device', 'cpu', '--json']));
  assert.deepEqual([none.tokens, none.continuation], [[], '']);
});

test('step eval on WebGPU agrees with the cpu backend', async (t) => {
  const probe = await freshWebGPU(t);
  if (!probe) return;
  probe.destroy();
  const { vanilla } = await runs;
  const cpu = JSON.parse(await run(evalCommand, ['--checkpoint', vanilla, '--device', 'cpu', '--json']));
  const gpu = JSON.parse(await run(evalCommand, ['--checkpoint', vanilla, '--device', 'webgpu', '--json']));
  assert.match(gpu.device, /^webgpu/);
  assert.ok(Math.abs(gpu.loss - cpu.loss) < 1e-5 * cpu.loss, `webgpu ${gpu.loss} vs cpu ${cpu.loss}`);
});

test('errors: broken checkpoints and bad arguments exit non-zero with a message naming the file', async () => {
  const { vanilla } = await runs;
  const copy = (name: string) => { const d = join(TMP, name); cpSync(vanilla, d, { recursive: true }); return d; };
  const noConfig = copy('no-config'); rmSync(join(noConfig, 'config.json'));
  const noModel = copy('no-model'); rmSync(join(noModel, 'model.safetensors'));
  const truncated = copy('truncated'); truncateSync(join(truncated, 'model.safetensors'), Math.floor(statSync(join(truncated, 'model.safetensors')).size / 2));
  const vocab = copy('vocab');
  const cfg = JSON.parse(readFileSync(join(vocab, 'config.json'), 'utf8'));
  writeFileSync(join(vocab, 'config.json'), JSON.stringify({ ...cfg, vocab_size: cfg.vocab_size + 1 }));
  const cases: [string, RegExp][] = [
    [noConfig, /no-config: no config\.json; is this a checkpoint folder\?/],
    [noModel, /no-model: no model\.safetensors; the checkpoint is incomplete/],
    [truncated, /truncated\/model\.safetensors: .*truncated/],
    [vocab, /vocabulary mismatch in .*vocab: tokenizer\.json has 300 tokens but config\.json says vocab_size 301/],
    [join(TMP, 'nowhere'), /checkpoint folder .*nowhere does not exist/],
  ];
  for (const [dir, message] of cases) {
    const r = child('eval', 'evalCommand', ['--checkpoint', dir, '--device', 'cpu']);
    assert.equal(r.code, 1, `${dir}: exit code (stderr: ${r.stderr})`);
    assert.match(r.stderr, message);
    assert.equal(r.stdout, '');
  }
  const noTok = copy('no-tokenizer'); rmSync(join(noTok, 'tokenizer.json'));
  const r = child('generate', 'generateCommand', ['--checkpoint', noTok, '--prompt', 'hi', '--device', 'cpu']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /no-tokenizer has no tokenizer\.json, so the prompt cannot be encoded/);
  await assert.rejects(evalCommand(['--checkpoint', noTok, '--device', 'cpu'], () => {}), /has no tokenizer\.json, so text data .* cannot be tokenized/);

  const bad = (rows: string) => { const f = join(TMP, `bad-${Math.random().toString(36).slice(2)}.json`); writeFileSync(f, rows); return f; };
  const grads = (tokens: string, extra: string[] = []) => gradsCommand(['--checkpoint', vanilla, '--tokens', tokens, '--out', join(TMP, 'never.safetensors'), '--device', 'cpu', ...extra], () => {});
  await assert.rejects(grads(bad('[[1, 2, 3], [4, 5]]')), /row 1 has 2 tokens but row 0 has 3; all rows must have the same length/);
  await assert.rejects(grads(bad('[[1, 2, 300]]')), /row 0, position 2: 300 is not a token id of this model \(integers 0\.\.299\)/);
  await assert.rejects(grads(bad('[[1]]')), /rows need at least 2 tokens/);
  await assert.rejects(grads(bad('[[1, 2')), /is not valid JSON/);
  await assert.rejects(grads(bad('{"ids": [1, 2]}')), /must hold a non-empty JSON array of rows/);
  await assert.rejects(grads(join(TMP, 'missing.json')), /token file .*missing\.json does not exist/);
  assert.ok(!existsSync(join(TMP, 'never.safetensors')), 'no output file after an error');
  await assert.rejects(gradsCommand(['--checkpoint', vanilla, '--tokens', TOKENS], () => {}), /--out FILE\.safetensors is required/);
  await assert.rejects(evalCommand(['--checkpoint', vanilla, '--bogus', '1'], () => {}), /step eval: unknown option --bogus/);
  await assert.rejects(evalCommand(['--device', 'cpu'], () => {}), /--checkpoint DIR is required/);
  await assert.rejects(evalCommand(['--checkpoint', vanilla, '--device', 'tpu'], () => {}), /--device must be one of auto, webgpu, cpu, got "tpu"/);
  await assert.rejects(generateCommand(['--checkpoint', vanilla, '--prompt', 'x', '--top-p', '2'], () => {}), /--top-p must be a number in \(0, 1\], got "2"/);
  await assert.rejects(generateCommand(['--checkpoint', vanilla, '--prompt', 'x', '--max-new-tokens', '1.5'], () => {}), /--max-new-tokens must be an integer >= 0/);
  // a config.json that does not fit the tensors: names the tensor and both shapes
  const shape = copy('shape');
  writeFileSync(join(shape, 'config.json'), JSON.stringify({ ...cfg, intermediate_size: 40 }));
  await assert.rejects(evalCommand(['--checkpoint', shape, '--device', 'cpu'], () => {}), /shape\/model\.safetensors: model\.layers\.0\.mlp\.gate_proj\.weight is \[48, 32\] in the file but \[40, 32\] in the model/);
  copyFileSync(join(vanilla, 'config.json'), join(shape, 'config.json'));
});
