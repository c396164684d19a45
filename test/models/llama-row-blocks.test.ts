/**
 * A vocabulary larger than one buffer: with the backend's maxBufferBytes capped far below the
 * device's, the embedding and LM head of a tiny model split into >= 3 row blocks (the vocabulary
 * not a multiple of the block), and everything matches the same model uncapped: init, loss,
 * gradients, AdamW steps, logits, and the model and optimizer files, byte for byte, both ways.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { TestContext } from 'node:test';
import type { Backend, Tensor, WebGPUBackend } from '../../index.js';
import { AdamW, CpuBackend, createWebGPUBackend, fromArray, saveSafetensors, scope, setDevice } from '../../index.js';
import { backward } from '../../autograd/backward.js';
import { loadOptimizerState, saveOptimizerState } from '../../engine/optim/state-io.js';
import { initLlama } from '../../models/llama.js';
import type { LlamaModel } from '../../models/llama.js';
import { lossAndGrads } from '../../step/commands/grads.js';
import { growModel } from '../../step/growth.js';
import { freezeLayersWithLora } from '../../step/freeze.js';
import { loadModelWeights } from '../../step/train/checkpoint.js';
import { REQUIRE_WEBGPU, sharedWebGPU } from '../helpers/backends.js';

/** 301 rows of 8 f32 = 32 bytes: a 4 KiB cap gives blocks of 128, 128 and 45 rows. */
const CAP = 4096;
const config = {
  vocab_size: 301, hidden_size: 8, intermediate_size: 16, num_hidden_layers: 2, num_attention_heads: 2, num_key_value_heads: 1,
  rms_norm_eps: 1e-6, rope_theta: 10000, tie_word_embeddings: false,
};
const B = 2, T = 6;
const ids = Array.from({ length: B * T }, (_, i) => (i * 97 + 5) % config.vocab_size);
const targets = ids.map((t, i) => (i === 3 ? -100 : (t * 31 + 300) % config.vocab_size)); // rows of every block, one ignored

let cappedGpu: Promise<Backend | string> | null = null;

/** Uncapped and capped backends of one kind, or null after skipping (failing under STEP_REQUIRE_WEBGPU=1). */
async function pair(kind: 'cpu' | 'webgpu', t: TestContext): Promise<{ whole: Backend; split: Backend } | null> {
  if (kind === 'cpu') return { whole: new CpuBackend(), split: new CpuBackend({ maxBufferBytes: CAP }) };
  const whole = await sharedWebGPU();
  cappedGpu ??= createWebGPUBackend({ maxBufferBytes: CAP }).catch((e: Error) => e.message);
  const split = await cappedGpu;
  for (const b of [whole, split]) {
    if (typeof b === 'string') {
      if (REQUIRE_WEBGPU) throw new Error(`STEP_REQUIRE_WEBGPU=1 but WebGPU is unavailable: ${b}`);
      t.skip(`WebGPU skipped: ${b}`);
      return null;
    }
  }
  return { whole: whole as Backend, split: split as Backend };
}

/** Each HF tensor's values, blocks joined. */
async function hfValues(model: LlamaModel, of: (t: Tensor) => Tensor | null = (t) => t): Promise<Map<string, number[]>> {
  const out = new Map<string, number[]>();
  for (const [name, parts] of model.hfTensors()) {
    const values: number[] = [];
    for (const p of parts) {
      const x = of(p);
      if (x) values.push(...await x.toArray());
    }
    if (values.length) out.set(name, values);
  }
  return out;
}

function assertClose(a: Map<string, number[]>, b: Map<string, number[]>, tol: number, what: string): void {
  assert.deepEqual([...a.keys()], [...b.keys()], `${what}: the same tensors`);
  for (const [name, x] of a) {
    const y = b.get(name)!;
    assert.equal(x.length, y.length, `${what} ${name}: length`);
    const scale = Math.max(1e-3, ...y.map(Math.abs));
    const worst = x.reduce((m, v, i) => Math.max(m, Math.abs(v - y[i]!)), 0);
    assert.ok(worst <= tol * scale, `${what} ${name}: differs by ${worst} (scale ${scale})`);
  }
}

async function lossAndBackward(model: LlamaModel, device: Backend): Promise<number> {
  setDevice(device);
  return scope(async () => {
    const loss = model.loss(fromArray(ids, [B, T], { dtype: 'i32', device }), fromArray(targets, [B, T], { dtype: 'i32', device }));
    backward(loss);
    return loss.item();
  });
}

for (const kind of ['cpu', 'webgpu'] as const) {
  for (const tied of [false, true]) {
    test(`row blocks [${kind}${tied ? ', tied' : ''}]: the split model's init, loss, gradients, AdamW steps and logits equal the whole model's`, async (t) => {
      const backends = await pair(kind, t);
      if (!backends) return;
      const c = { ...config, tie_word_embeddings: tied };
      const whole = initLlama(c, { device: backends.whole, seed: 3 });
      const split = initLlama(c, { device: backends.split, seed: 3 });
      try {
        assert.equal(whole.embedBlocks.length, 1);
        assert.deepEqual(split.embedBlocks.map((b) => b.shape[0]), [128, 128, 45]);
        assert.deepEqual(split.headBlocks?.map((b) => b.shape[0]) ?? null, tied ? null : [128, 128, 45]);
        assert.ok(split.namedTensors().some(([n]) => n === 'model.embed_tokens.weight[256:301]'));
        assert.deepEqual(await hfValues(split), await hfValues(whole), 'the same init values, whatever the split');

        const lw = await lossAndBackward(whole, backends.whole), ls = await lossAndBackward(split, backends.split);
        assert.ok(Math.abs(lw - ls) <= 1e-5 * Math.abs(lw), `loss ${ls} vs ${lw}`);
        assertClose(await hfValues(split, (p) => p.grad), await hfValues(whole, (p) => p.grad), 1e-4, 'gradient');

        const steps = async (model: LlamaModel, device: Backend) => {
          const opt = new AdamW(model.parameters(), { lr: 1e-2, weightDecay: 0.1, maxGradNorm: 1 });
          for (let s = 0; s < 3; s++) {
            if (s > 0) await lossAndBackward(model, device);
            opt.step();
            opt.zeroGrad();
          }
          return opt;
        };
        const ow = await steps(whole, backends.whole), os = await steps(split, backends.split);
        assertClose(await hfValues(split), await hfValues(whole), 1e-4, 'weights after 3 AdamW steps');
        ow.dispose(); os.dispose();

        // full logits must fit one buffer ([1, 3, 301] does); the last position's of the whole batch always do
        const logits = async (model: LlamaModel, device: Backend, last: boolean) => scope(async () => (last
          ? model.forward(fromArray(ids, [B, T], { dtype: 'i32', device }), { lastPosition: true })
          : model.forward(fromArray(ids.slice(0, 3), [1, 3], { dtype: 'i32', device }))).toArray());
        for (const last of [false, true]) {
          const a = await logits(split, backends.split, last), b = await logits(whole, backends.whole, last);
          assertClose(new Map([['logits', [...a]]]), new Map([['logits', [...b]]]), 1e-4, `forward (lastPosition ${last})`);
        }
      } finally {
        whole.dispose(); split.dispose();
      }
    });
  }

  test(`row blocks [${kind}]: model and optimizer files are the same bytes split or whole, and load either way`, async (t) => {
    const backends = await pair(kind, t);
    if (!backends) return;
    const dir = mkdtempSync(join(tmpdir(), 'row-blocks-'));
    const models: LlamaModel[] = [], opts: AdamW[] = [];
    try {
      const make = (device: Backend, seed: number) => {
        const m = initLlama(config, { device, seed });
        const o = new AdamW(m.parameters(), { lr: 1e-2 });
        models.push(m); opts.push(o);
        return { m, o };
      };
      const trained = async (device: Backend) => {
        const x = make(device, 5);
        for (let s = 0; s < 2; s++) { await lossAndBackward(x.m, device); x.o.step(); x.o.zeroGrad(); }
        return x;
      };
      const save = async (x: { m: LlamaModel; o: AdamW }, name: string) => {
        mkdirSync(join(dir, name));
        await saveSafetensors(join(dir, name, 'model.safetensors'), new Map(x.m.hfTensors()), { format: 'pt' });
        await saveOptimizerState(x.o, join(dir, name, 'optimizer.safetensors'));
      };
      const load = async (x: { m: LlamaModel; o: AdamW }, name: string) => {
        await loadModelWeights(x.m, join(dir, name));
        await loadOptimizerState(x.o, join(dir, name, 'optimizer.safetensors'));
      };
      const bytes = (name: string) => [readFileSync(join(dir, name, 'model.safetensors')), readFileSync(join(dir, name, 'optimizer.safetensors'))];
      for (const [from, to] of [['whole', 'split'], ['split', 'whole']] as const) {
        const src = await trained(backends[from]);
        await save(src, `${from}-trained`);
        const dst = make(backends[to], 9); // other weights, fresh state: all overwritten by the load
        await load(dst, `${from}-trained`);
        await save(dst, `${from}-into-${to}`);
        const [m0, o0] = bytes(`${from}-trained`), [m1, o1] = bytes(`${from}-into-${to}`);
        assert.ok(m0!.equals(m1!), `model.safetensors saved ${from}, loaded ${to}, saved again: the same bytes`);
        assert.ok(o0!.equals(o1!), `optimizer.safetensors saved ${from}, loaded ${to}, saved again: the same bytes`);
        assert.deepEqual(await hfValues(dst.m), await hfValues(src.m));
        const header = JSON.parse(m0!.subarray(8, 8 + Number(m0!.readBigUInt64LE(0))).toString()) as Record<string, { shape: number[] }>;
        assert.deepEqual(header['model.embed_tokens.weight']!.shape, [301, 8], 'one HF tensor in the file');
        assert.deepEqual(header['lm_head.weight']!.shape, [301, 8]);
      }
    } finally {
      for (const o of opts) o.dispose();
      for (const m of models) m.dispose();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test(`row blocks [${kind}]: mixed precision (f16 blocks, f32 master and moments sized to fit) matches the whole model`, async (t) => {
    const backends = await pair(kind, t);
    if (!backends) return;
    if (kind === 'webgpu' && !(backends.split as WebGPUBackend).hasFeature('shader-f16')) { t.skip('no shader-f16 on this adapter'); return; }
    const run = async (device: Backend) => {
      const model = initLlama(config, { device, seed: 4, dtype: 'f16' });
      const opt = new AdamW(model.parameters(), { lr: 1e-2, precision: 'mixed', lossScaling: true });
      setDevice(device);
      for (let s = 0; s < 2; s++) {
        await scope(async () => {
          const loss = model.loss(fromArray(ids, [B, T], { dtype: 'i32', device }), fromArray(targets, [B, T], { dtype: 'i32', device }));
          backward(opt.lossScaler!.scaleLoss(loss));
        });
        opt.step();
        opt.zeroGrad();
      }
      return { model, opt };
    };
    const whole = await run(backends.whole), split = await run(backends.split);
    try {
      assert.equal(split.model.embedBlocks.length, 3, 'f16 blocks sized by their f32 master rows');
      assert.ok(split.opt.paramStates().every((s) => s.master!.size * 4 <= CAP));
      assertClose(await hfValues(split.model), await hfValues(whole.model), 5e-3, 'f16 weights after 2 mixed-precision steps');
    } finally {
      for (const x of [whole, split]) { x.opt.dispose(); x.model.dispose(); }
    }
  });

  test(`row blocks [${kind}]: step grads writes one gradient per HF tensor, the same file split or whole`, async (t) => {
    const backends = await pair(kind, t);
    if (!backends) return;
    const dir = mkdtempSync(join(tmpdir(), 'row-blocks-grads-'));
    const rows = [ids.slice(0, 7), ids.slice(5, 12)];
    try {
      const files: Buffer[] = [];
      for (const device of [backends.whole, backends.split]) {
        const model = initLlama(config, { device, seed: 6 });
        setDevice(device);
        const { grads } = await lossAndGrads(model, rows, device);
        assert.equal(grads.get('model.embed_tokens.weight')!.length, device === backends.split ? 3 : 1);
        await saveSafetensors(join(dir, 'g.safetensors'), grads);
        files.push(readFileSync(join(dir, 'g.safetensors')));
        for (const parts of grads.values()) for (const g of parts) g.dispose();
        model.dispose();
      }
      const header = (f: Buffer) => f.subarray(0, 8 + Number(f.readBigUInt64LE(0))).toString();
      assert.equal(header(files[1]!), header(files[0]!), 'the same names, shapes and offsets');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test(`row blocks [${kind}]: growth and LoRA freezing keep the blocks; a row larger than the cap is refused`, async (t) => {
    const backends = await pair(kind, t);
    if (!backends) return;
    const model = initLlama(config, { device: backends.split, seed: 1 });
    const blocks = [...model.embedBlocks];
    const { model: grown } = growModel(model, 1);
    try {
      assert.deepEqual(grown.embedBlocks, blocks, 'the grown model shares the embedding blocks');
      freezeLayersWithLora(grown, [0, 1], { rank: 2 });
      assert.ok(grown.parameters().includes(blocks[2]!), 'the embedding blocks still train');
      await lossAndBackward(grown, backends.split);
      assert.ok(blocks.every((b) => b.grad !== null), 'every block gets a gradient');
      assert.throws(() => grown.embed, /model\.embed_tokens\.weight is split into 3 row blocks .*use the model's embedBlocks/);
    } finally {
      grown.dispose();
    }
    assert.throws(() => initLlama({ ...config, hidden_size: 2048 }, { device: backends.split, seed: 1 }),
      /model\.embed_tokens\.weight: one row of 2048 elements needs 8\.00 KiB in f32, beyond the device's largest buffer \(4\.00 KiB\); a row cannot be split/);
  });
}
