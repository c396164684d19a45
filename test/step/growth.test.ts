import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CpuBackend, fromArray, scope, setDevice } from '../../index.js';
import { initLlama } from '../../models/llama.js';
import type { LlamaDims } from '../../models/llama.js';
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

test('growth operators: the change in logits on a fixed batch (function-preserving changes nothing)', async () => {
  const device = new CpuBackend();
  setDevice(device);
  const ids = fromArray([[1, 5, 7, 2, 9, 11], [3, 3, 8, 0, 28, 4]], [2, 6], { dtype: 'i32' });
  const report: Record<string, number> = {};
  for (const operator of GROWTH_OPERATORS) {
    for (const placement of PLACEMENTS) {
      await scope(async () => {
        const model = initLlama(config, { device, seed: 3 });
        const before = await model.forward(ids).toArray();
        const { model: grown, origin } = growModel(model, 1, { operator, placement, seed: 1 });
        assert.equal(grown.layers.length, 5);
        assert.equal(origin.filter((o) => o === null).length, 1);
        assert.deepEqual(grown.layers.map((l) => l.index), [0, 1, 2, 3, 4]);
        assert.equal(grown.layers[4]!.q.name, 'model.layers.4.self_attn.q_proj');
        const after = await grown.forward(ids).toArray();
        let change = 0;
        for (let i = 0; i < before.length; i++) change = Math.max(change, Math.abs(after[i]! - before[i]!));
        report[`${operator}/${placement}`] = change;
        if (operator === 'function-preserving') assert.equal(change, 0, `${placement}: function-preserving growth changed the logits by ${change}`);
        else assert.ok(change > 0, `${operator}/${placement} should change the logits`);
        // interpolation-mean: a new layer is exactly the mean of its neighbours
        if (operator === 'interpolation-mean' && placement === 'upper') {
          const newIdx = origin.indexOf(null);
          const below = grown.layers[newIdx - 1]!, above = grown.layers[newIdx + 1]!, mid = grown.layers[newIdx]!;
          const [a, b, m] = await Promise.all([below.q.weight.toArray(), above.q.weight.toArray(), mid.q.weight.toArray()]);
          for (let i = 0; i < m.length; i++) assert.equal(m[i], Math.fround((a[i]! + b[i]!) * 0.5));
        }
        grown.dispose();
      });
    }
  }
  console.log('max |change in logits| by operator/placement:', JSON.stringify(report));
  assert.equal(device.memory().live.parameter, 0, 'growth and dispose leak nothing');
});
