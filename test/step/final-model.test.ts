/**
 * The model a STEP or ReLoRA run hands over: runs/NAME/final is a plain LlamaForCausalLM (adapters
 * merged, HF names, no LoRA tensors, the full layer count), `step eval` on the run folder uses it
 * like a vanilla checkpoint, and PyTorch (test/fixtures/check_checkpoint.py) gives the same loss.
 * The run's checkpoints keep their adapters and optimizer state for --resume.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CpuBackend, fromArray, scope } from '../../index.js';
import { openSafetensors } from '../../engine/safetensors.js';
import { loadCheckpointModel } from '../../step/commands/checkpoint-model.js';
import { evalCommand } from '../../step/commands/eval.js';
import { train } from '../../step/train/trainer.js';
import { REQUIRE_WEBGPU } from '../helpers/backends.js';
import { events, runOptions } from './run-fixtures.js';

const PYTHON = '/usr/bin/python3';
const CHECK = new URL('../../../test/fixtures/check_checkpoint.py', import.meta.url).pathname;
const hasTorch = existsSync(PYTHON) && spawnSync(PYTHON, ['-c', 'import torch, numpy'], { encoding: 'utf8' }).status === 0;
const TORCH_SKIP = hasTorch || REQUIRE_WEBGPU ? false : `${PYTHON} with torch not available (install python3-torch for the PyTorch parity checks)`;

const dims = { hidden_size: 32, intermediate_size: 48, num_hidden_layers: 3, num_attention_heads: 2, num_key_value_heads: 1, max_position_embeddings: 64 };
const runs = (async () => {
  const common = { steps: 6, lr: 1e-2, warmupSteps: 1, evalEvery: 6, checkpointEvery: 6, loraRank: 4, loraAlpha: 8, stageWarmupSteps: 1 };
  const step = await train(runOptions({ ...common, name: 'step', method: 'step', split: [2, 1], configOverrides: { ...dims, tie_word_embeddings: true } }));
  const relora = await train(runOptions({ ...common, name: 'relora', method: 'relora', reloraWarmStart: 2, reloraEvery: 2, configOverrides: dims }));
  return { step: step.runDir, relora: relora.runDir };
})();
after(async () => { const r = await runs; for (const d of Object.values(r)) rmSync(join(d, '..'), { recursive: true, force: true }); });

async function names(file: string): Promise<string[]> {
  const r = await openSafetensors(file);
  try { return [...r.names]; } finally { await r.close(); }
}

const ROWS = [[5, 9, 17, 33, 2, 7, 101, 64, 12, 3, 250, 8, 44], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13]];

for (const method of ['step', 'relora'] as const) {
  test(`${method}: final/ is a plain LlamaForCausalLM with merged adapters; step eval on the run folder uses it and gives the run's last validation loss`, async () => {
    const runDir = (await runs)[method];
    const final = join(runDir, 'final');
    const tensors = await names(join(final, 'model.safetensors'));
    assert.ok(!tensors.some((n) => n.includes('lora')), 'no LoRA tensors');
    assert.ok(tensors.includes('model.layers.2.mlp.down_proj.weight') && tensors.includes('model.embed_tokens.weight'));
    const config = JSON.parse(readFileSync(join(final, 'config.json'), 'utf8'));
    assert.equal(config.num_hidden_layers, 3);
    assert.deepEqual(config.architectures, ['LlamaForCausalLM']);
    const marker = JSON.parse(readFileSync(join(final, 'final.json'), 'utf8'));
    assert.equal(marker.step, 6);
    assert.ok(marker.mergedAdapters > 0, 'adapters were merged');
    // the last checkpoint keeps the adapters (and the optimizer state) for --resume
    assert.ok((await names(join(runDir, 'checkpoints', 'step-000006', 'model.safetensors'))).some((n) => n.endsWith('lora_A')));
    assert.ok(existsSync(join(runDir, 'checkpoints', 'step-000006', 'optimizer.safetensors')));
    const { model } = await loadCheckpointModel(final, new CpuBackend());
    assert.ok(model.layers.every((l) => l.linears.every((x) => x.lora === null)), 'loaded as a vanilla model');
    model.dispose();
    let out = '';
    await evalCommand(['--checkpoint', runDir, '--device', 'cpu', '--json'], (t) => { out += t; });
    const report = JSON.parse(out);
    assert.equal(report.checkpoint, final, 'a finished run folder means its final model');
    const logged = events(runDir, 'end')[0]!.valLoss as number;
    assert.ok(Math.abs(report.loss - logged) < 1e-5 * logged, `merged model's loss ${report.loss} vs the run's ${logged}`);
  });

  test(`${method}: final/ loads in the PyTorch reference with the same loss`, { skip: TORCH_SKIP }, async () => {
    const final = join((await runs)[method], 'final');
    const tokens = join(final, '..', 'tokens.json');
    writeFileSync(tokens, JSON.stringify(ROWS));
    const r = spawnSync(PYTHON, [CHECK, final, tokens], { encoding: 'utf8', maxBuffer: 256 << 20 });
    assert.equal(r.status, 0, `check_checkpoint.py failed: ${r.stderr}`);
    const torch = JSON.parse(r.stdout) as { loss: number };
    const device = new CpuBackend();
    const { model } = await loadCheckpointModel(final, device);
    const ours = await scope(async () => {
      const input = ROWS.map((row) => row.slice(0, -1)), target = ROWS.map((row) => row.slice(1));
      const n = input[0]!.length;
      return model.loss(fromArray(input.flat(), [2, n], { dtype: 'i32', device }), fromArray(target.flat(), [2, n], { dtype: 'i32', device })).item();
    });
    model.dispose();
    assert.ok(Math.abs(ours - torch.loss) < 1e-6 * torch.loss, `ours ${ours} vs PyTorch ${torch.loss}`);
  });
}
