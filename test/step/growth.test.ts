import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Tensor } from '../../index.js';
import { CpuBackend, fromArray, scope, setDevice } from '../../index.js';
import { initLlama } from '../../models/llama.js';
import type { LlamaDims, LlamaLayer } from '../../models/llama.js';
import { GROWTH_OPERATORS, growModel, growthGaps, PLACEMENTS } from '../../step/growth.js';

const config: LlamaDims = {
  vocab_size: 29, hidden_size: 16, intermediate_size: 24, num_hidden_layers: 4, num_attention_heads: 4,
  num_key_value_heads: 4, rms_norm_eps: 1e-5, rope_theta: 10000, tie_word_embeddings: false, initializer_range: 0.2,
};

test('growth gaps: upper, lower, intermediate, random, and more layers than gaps', () => {
  assert.deepEqual(growthGaps(5, 2, 'upper'), [3, 2]);
  assert.deepEqual(growthGaps(5, 2, 'lower'), [0, 1]);
  assert.deepEqual(growthGaps(5, 2, 'intermediate'), [1, 2]);
  assert.deepEqual(growthGaps(3, 5, 'upper'), [1, 0, 1, 0, 1]);
  assert.deepEqual(growthGaps(1, 2, 'upper'), [0, 0]);
  const r = growthGaps(8, 7, 'random', 42);
  assert.deepEqual([...r].sort(), [0, 1, 2, 3, 4, 5, 6]);
  assert.deepEqual(growthGaps(8, 7, 'random', 42), r, 'seeded');
  assert.throws(() => growthGaps(3, 1, 'sideways' as never), /unknown placement "sideways"/);
  assert.throws(() => growthGaps(0, 1, 'upper'), /at least one layer/);
});

/** A layer's nine tensors in HF order, without the layer prefix in their names. */
function layerTensors(l: LlamaLayer): [string, Tensor][] {
  const p = `model.layers.${l.index}.`;
  return l.namedTensors().map(([n, t]) => [n.slice(p.length), t]);
}

test('growth operators: old layers kept as they were, each new layer made from its neighbours as the operator says, logits preserved exactly by function-preserving growth', async () => {
  const device = new CpuBackend();
  setDevice(device);
  const ids = fromArray([[1, 5, 7, 2, 9, 11], [3, 3, 8, 0, 28, 4]], [2, 6], { dtype: 'i32' });
  for (const operator of GROWTH_OPERATORS) {
    for (const placement of PLACEMENTS) {
      for (const added of [1, 2]) {
        await scope(async () => {
          const what = `${operator}/${placement}/+${added}`;
          const model = initLlama(config, { device, seed: 3 });
          const old = [...model.layers];
          const before = await model.forward(ids).toArray();
          const { embed, norm, lmHead } = model;
          const { model: grown, origin } = growModel(model, added, { operator, placement, seed: 1 });
          // where the new layers go: after old layer g for each gap g that growthGaps picks
          const gaps = growthGaps(old.length, added, placement, 1);
          assert.deepEqual(origin, old.flatMap((_, i) => [i, ...gaps.filter((g) => g === i).map(() => null)]), `${what}: layer order`);
          assert.deepEqual(grown.layers.map((l) => l.index), origin.map((_, j) => j));
          assert.ok(grown.embed === embed && grown.norm === norm && grown.lmHead === lmHead, `${what}: embeddings, final norm and head are kept`);
          for (const [j, l] of grown.layers.entries()) {
            const names = layerTensors(l).map(([n]) => `model.layers.${j}.${n}`);
            assert.deepEqual(l.namedTensors().map(([n]) => n), names, `${what}: layer ${j} names carry its new index`);
            const from = origin[j];
            if (from !== null && from !== undefined) {
              // an old layer keeps its very tensors (renamed only)
              assert.deepEqual(layerTensors(l).map(([, t]) => t), layerTensors(old[from]!).map(([, t]) => t), `${what}: old layer ${from} at ${j}`);
              continue;
            }
            // a new layer sits after old layer `below`; its upper neighbour is the next old layer (the last one at the top)
            const below = origin.slice(0, j).filter((o) => o !== null).at(-1)!;
            const above = Math.min(below + 1, old.length - 1);
            const lower = layerTensors(old[below]!), upper = layerTensors(old[above]!);
            for (const [k, [name, t]] of layerTensors(l).entries()) {
              assert.ok(t.requiresGrad && t.category === 'parameter', `${what}: ${name} of new layer ${j} is trainable`);
              const [a, b, m] = await Promise.all([lower[k]![1].toArray(), upper[k]![1].toArray(), t.toArray()]);
              const zeroed = operator === 'function-preserving' && (name === 'self_attn.o_proj.weight' || name === 'mlp.down_proj.weight');
              const want = Array.from(a, (x, i) => (zeroed ? 0 : operator === 'stack' ? x : Math.fround(x + b[i]!) * 0.5));
              assert.deepEqual(Array.from(m), want, `${what}: ${name} of new layer ${j} (between old ${below} and ${above})`);
            }
          }
          const after = await grown.forward(ids).toArray();
          if (operator === 'function-preserving') {
            assert.deepEqual(Array.from(after), Array.from(before), `${what}: function-preserving growth changes no logit`);
          }
          grown.dispose();
        });
      }
    }
  }
  assert.equal(device.memory().live.parameter, 0, 'growth and dispose leak nothing');
  ids.dispose();
  assert.equal(device.memory().allocated, 0, 'nor anything else (the RoPE table of the model object growth replaces)');
});
