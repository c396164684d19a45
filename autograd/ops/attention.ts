/**
 * Causal (or full) scaled dot-product attention with grouped KV heads, on the fused
 * FlashAttention-2 kernels (kernels/attention.ts):
 *
 *   out = softmax(q k^T * scale [causal mask]) v      q [B, H, Tq, D], k, v [B, Hkv, Tk, D] -> [B, H, Tq, D]
 *
 * Query head h reads KV head floor(h / (H / Hkv)) (Hugging Face repeat_kv order, no copies).
 * The forward walks the keys with an online softmax (no scores in memory, masked key tiles
 * skipped) and saves q, k, v, out and the per-row log-sum-exp lse [B, H, Tq] (f32): backward
 * recomputes the probabilities from lse. attention-composed.ts keeps the composed path
 * (matmul + softmax over row chunks) as the tests' reference.
 */
import { zeros } from '../../engine/creation.js';
import type { Tensor } from '../../engine/tensor.js';
import type { FlashAttentionOptions } from '../../kernels/attention.js';
import { attentionAttrs, flashAttention, flashAttentionBackward } from '../../kernels/attention.js';
import { needsGrad, record } from '../tape.js';

export interface AttentionOptions {
  /**
   * 'bhtd' (default): q [B, H, Tq, D], k, v [B, Hkv, Tk, D]; 'bthd': q [B, Tq, H, D], k, v
   * [B, Tk, Hkv, D], as a projection's output reshaped (no permute copies, forward or backward).
   * The output is in q's layout.
   */
  layout?: 'bhtd' | 'bthd';
  /** Mask key j for query row i when j > i + positionOffset (default true). */
  causal?: boolean;
  /** Multiplier of q k^T (default 1 / sqrt(D)). */
  scale?: number;
  /** Position of the first query row among the keys (causal only; default 0; Tk - Tq for a KV cache). */
  positionOffset?: number;
  /**
   * Save only q, k and v, and rerun the forward kernel in backward for the output and row
   * log-sum-exp that FlashAttention-2's backward reads (default false: save them). Trades one
   * attention forward per backward for one [B, H, Tq, D] tensor of memory; LLaMA uses it.
   */
  recomputeOutput?: boolean;
}

/**
 * softmax(q k^T * scale, causal) v for q [B, H, Tq, D] and k, v [B, Hkv, Tk, D] -> [B, H, Tq, D];
 * query head h reads KV head floor(h / (H / Hkv)) (grouped KV heads, never repeated in memory).
 * One fused kernel with an online softmax: no [Tq, Tk] scores are ever in memory, forward or
 * backward. Saves q, k, v, the output and its per-row log-sum-exp ([B, H, Tq] f32) for backward
 * (only q, k, v with `recomputeOutput`).
 */
export function attention(q: Tensor, k: Tensor, v: Tensor, options: AttentionOptions = {}): Tensor {
  const op = 'attention';
  const opts: FlashAttentionOptions = { causal: options.causal, scale: options.scale, positionOffset: options.positionOffset, layout: options.layout };
  const { B, H, Tq, Tk, D } = attentionAttrs(op, q, k, v, opts, { allowEmpty: true });
  if (Tq === 0 || Tk === 0 || B * H * D === 0) {
    // nothing to attend to: a zero output (and zero gradients) without a kernel
    const out = zeros(q.shape, { dtype: q.dtype, device: q.backend });
    if (!needsGrad(q, k, v)) return out;
    return record(op, out, [q, k, v], [], () => [q, k, v].map((t) => (t.requiresGrad ? zeros(t.shape, { dtype: t.dtype, device: t.backend }) : null)));
  }
  const { out, lse } = flashAttention(q, k, v, opts);
  if (!needsGrad(q, k, v)) {
    lse.dispose();
    return out;
  }
  const recompute = options.recomputeOutput === true;
  const node = record(op, out, [q, k, v], recompute ? [q, k, v] : [q, k, v, out, lse], (g, saved) => {
    const [sq, sk, sv] = saved;
    // recomputed: the same kernel on the same inputs gives the very output and lse of the forward
    const rerun = recompute ? flashAttention(sq!, sk!, sv!, opts) : null;
    const { dq, dk, dv } = flashAttentionBackward(sq!, sk!, sv!, rerun ? rerun.out : saved[3]!, rerun ? rerun.lse : saved[4]!, g, opts);
    if (rerun) { rerun.out.dispose(); rerun.lse.dispose(); }
    const grads: (Tensor | null)[] = [dq, dk, dv];
    [q, k, v].forEach((t, i) => {
      if (!t.requiresGrad) { grads[i]!.dispose(); grads[i] = null; }
    });
    return grads;
  });
  lse.dispose(); // the graph keeps its own view
  return node;
}
