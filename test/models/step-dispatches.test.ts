/**
 * The dispatch budget of one training step of the `tiny` preset on WebGPU (forward, backward,
 * clipping, AdamW, set-to-none gradients, as `step train` takes it): per-step overheads (dispatch,
 * submit) dominate small models on llvmpipe, so work that is not the model's math must not creep
 * back in: no strided copies (attention reads [B, T, heads, D]), no gradient fills or adds into
 * zeros, the optimizer in a few multi-tensor dispatches, one submit or so per step.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AdamW, backward, fromArray, scope, setDevice } from '../../index.js';
import { presetConfig } from '../../models/config-presets.js';
import { initLlama } from '../../models/llama.js';
import { freshWebGPU } from '../helpers/backends.js';

/**
 * One step at 2 x 32 tokens took 427 dispatches and 2 submits before these went, 247 and 1 after;
 * the bound leaves a little room for kernel changes elsewhere. Products of 64 rows or more read B
 * through a texture (kernels/matmul-texture.ts), packed by one more dispatch each (88 here): they
 * have their own bound, and the rest keeps the old one.
 */
const MAX_DISPATCHES = 260;
const MAX_TEXTURE_PACKS = 90;

test('a training step of the tiny preset stays within its dispatch budget: no strided copies, no gradient fills, few optimizer dispatches', async (t) => {
  const b = await freshWebGPU(t);
  if (!b) return;
  try {
    setDevice(b);
    const config = presetConfig('tiny');
    const model = initLlama(config, { device: b, seed: 1 });
    const params = model.parameters();
    const opt = new AdamW(params, { lr: 1e-3, maxGradNorm: 1 });
    const B = 2, T = 32;
    const ids = Array.from({ length: B * T }, (_, i) => (i * 7919) % config.vocab_size);
    const step = () => scope(async () => {
      opt.zeroGrad({ setToNone: true });
      const loss = model.loss(fromArray(ids, [B, T], { dtype: 'i32' }), fromArray(ids.map((x) => (x + 1) % config.vocab_size), [B, T], { dtype: 'i32' }));
      backward(loss);
      opt.step();
      return loss.item();
    });
    await step(); // builds the pipelines
    const before = { ...b.stats };
    await step();
    const dispatches = b.stats.dispatches - before.dispatches, submits = b.stats.submits - before.submits;
    assert.ok(dispatches <= MAX_DISPATCHES + MAX_TEXTURE_PACKS, `one step made ${dispatches} dispatches, more than the budget of ${MAX_DISPATCHES} + ${MAX_TEXTURE_PACKS} texture packs`);
    assert.ok(submits <= 2, `one step made ${submits} submits`);
    assert.equal(b.stats.readbacks - before.readbacks, 1, 'the loss is the one value read back');
    // The pool hands out the same buffers in the same roles every step, so the bind groups are
    // cached ones (half of a step's dispatches created new ones, ~60 us each, when a size class
    // gave out its last freed buffer first and each step met the previous one's free order).
    await step();
    const created = b.bindGroupsCreated;
    await step();
    assert.equal(b.bindGroupsCreated - created, 0, 'a steady step creates no bind groups');
    if (!b.hasFeature('timestamp-query')) return;
    const { report } = await b.profile(step);
    const family = (name: string) => report.kernels.filter((k) => k.label.split(/[ (]/)[0] === name).reduce((s, k) => s + k.dispatches, 0);
    const packs = report.kernels.filter((k) => k.label.startsWith('matmul pack')).reduce((s, k) => s + k.dispatches, 0);
    const all = report.kernels.reduce((s, k) => s + k.dispatches, 0);
    assert.ok(packs <= MAX_TEXTURE_PACKS, `${packs} texture packs`);
    assert.ok(all - packs <= MAX_DISPATCHES, `${all - packs} dispatches besides the texture packs, more than ${MAX_DISPATCHES}`);
    assert.equal(family('stridedCopy'), 0, 'no strided copy: q, k, v stay [B, T, heads, D]; a single loss chunk is not sliced');
    assert.ok(family('fill') <= 2, `${family('fill')} fills: gradients are moved into .grad, never filled`);
    assert.equal(family('adamw') + family('grad_sq_partials'), 0, 'no per-parameter optimizer kernel');
    assert.ok(family('adamw_multi') <= Math.ceil(params.length / 3), `${family('adamw_multi')} AdamW dispatches for ${params.length} parameters`);
    opt.dispose();
    model.dispose();
  } finally {
    b.destroy();
  }
});
