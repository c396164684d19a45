import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Tensor } from '../../index.js';
import { fromArray } from '../../index.js';
import * as A from '../../autograd/index.js';
import { Linear } from '../../models/linear.js';
import { LlamaLayer, LlamaModel } from '../../models/llama.js';
import type { LlamaDims } from '../../models/llama.js';

const config: LlamaDims = {
  vocab_size: 5, hidden_size: 4, intermediate_size: 6, num_hidden_layers: 1, num_attention_heads: 2, num_key_value_heads: 1,
  rms_norm_eps: 1e-5, rope_theta: 10000, tie_word_embeddings: false,
};
const SHAPES: [string, number[]][] = [
  ['embed', [5, 4]], ['in_norm', [4]], ['q', [4, 4]], ['k', [2, 4]], ['v', [2, 4]], ['o', [4, 4]],
  ['post_norm', [4]], ['gate', [6, 4]], ['up', [6, 4]], ['down', [4, 6]], ['norm', [4]], ['head', [5, 4]],
];
const rnd = (n: number, seed: number, norm: boolean) => Array.from({ length: n }, (_, i) => (norm ? 1 : 0) + 0.5 * Math.sin(seed * 31 + i * 1.7));

test('gradcheck: a whole LLaMA (embedding, GQA attention with RoPE, SwiGLU block, norms, head, cross-entropy) in f64', async () => {
  const inputs = SHAPES.map(([name, shape], k) => ({ values: rnd(shape.reduce((a, b) => a * b, 1), k + 1, name.includes('norm')), shape }));
  const r = await A.gradcheck((...w: Tensor[]) => {
    const [embed, inNorm, q, k, v, o, postNorm, gate, up, down, norm, head] = w as [Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor];
    const p = 'model.layers.0';
    const layer = new LlamaLayer(0, inNorm, new Linear(`${p}.self_attn.q_proj`, q), new Linear(`${p}.self_attn.k_proj`, k),
      new Linear(`${p}.self_attn.v_proj`, v), new Linear(`${p}.self_attn.o_proj`, o), postNorm,
      new Linear(`${p}.mlp.gate_proj`, gate), new Linear(`${p}.mlp.up_proj`, up), new Linear(`${p}.mlp.down_proj`, down));
    const model = new LlamaModel(config, embed, [layer], norm, head);
    const ids = fromArray([[1, 4, 2], [0, 3, 3]], [2, 3], { dtype: 'i32', device: embed.backend });
    const targets = fromArray([[4, 2, -100], [3, 3, 1]], [2, 3], { dtype: 'i32', device: embed.backend });
    return model.loss(ids, targets);
  }, inputs, { rtol: 1e-4, atol: 1e-7 });
  assert.ok(r.ok, `worst relative error ${r.maxRelError} at ${JSON.stringify(r.worst)} (input ${SHAPES[r.worst?.input ?? 0]?.[0]})`);
});
