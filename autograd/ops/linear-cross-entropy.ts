/**
 * The LM head and the loss fused over row chunks: the [N, V] logits are never materialised, in
 * forward or backward (the idea of Cut Cross-Entropy, arXiv 2411.09009, and of Liger's fused linear
 * cross-entropy; written from the math, not their code).
 *
 *   logits = h W^T                    h [N, H], W [V, H]
 *   loss   = (1 / count) * sum_{i: t_i != ignore} (lse(logits_i) - logits_{i, t_i})
 *
 * Without gradients (noGrad, or no input requires grad), per chunk of rows c: logits_c = h_c W^T,
 * s_c = summed cross-entropy of the chunk; loss = (sum_c s_c) / max(count, 1), all on the device (no
 * readback). The chunk's logits die before the next chunk's are made.
 * With gradients (f32 and f64), the loss is the end of the graph, so its gradients are computed in the same pass
 * (as Liger's fused linear cross-entropy does) instead of recomputing every chunk's logits in
 * backward, which cost a quarter of the LM head's products: per chunk, from the same logits_c,
 *   dlogits_c = (1 / count) (softmax - onehot)      dh_c = dlogits_c W        dW += dlogits_c^T h_c
 * and the node saves dh and dW (not h and W). Backward multiplies them by the upstream gradient in
 * place (a second backward with retainGraph gets scaled copies instead). The peak is unchanged: the
 * chunk's logits or dlogits plus dW, at the end of forward instead of the start of backward, with
 * all activations alive either way. A forward that is never backpropagated costs the products it
 * did not need (evaluate under noGrad) and frees dh and dW when its loss is disposed.
 * f16 (mixed precision) keeps the recompute: dlogits must carry the loss scale, which only backward
 * knows (unscaled, (softmax - onehot) / count underflows in f16), so it saves h, W and the targets
 * and recomputes each chunk's logits in backward.
 * dh and dW are computed only for the inputs that require grad (a frozen head skips dW and saves
 * nothing extra; a tied head, W = the embedding, accumulates into the same leaf as gatherRows).
 *
 * W may be a list of row blocks W_0, W_1, ... (a vocabulary too large for one storage binding,
 * engine/row-blocks.ts): then logits_c = [h_c W_0^T | h_c W_1^T | ...] (the chunk's rows are few
 * enough for [rows, V] to fit one buffer), dh_c = sum_b dlogits_c[:, V_b] W_b and
 * dW_b += dlogits_c[:, V_b]^T h_c. No block is ever joined with another.
 */
import { zeros } from '../../engine/creation.js';
import { bytesPerElement } from '../../engine/dtype.js';
import { DTypeError, ShapeError, StepError } from '../../engine/errors.js';
import { scopeSync } from '../../engine/scope.js';
import type { Tensor } from '../../engine/tensor.js';
import * as CE from '../../kernels/cross-entropy.js';
import { addScaledInPlace, div, maximum, mul, notEqual } from '../../kernels/elementwise.js';
import { scaleInPlace } from '../../kernels/scale-in-place.js';
import { concat, slice } from '../../kernels/layout.js';
import * as M from '../../kernels/matmul.js';
import { sum } from '../../kernels/reduce.js';
import { cast, rdiv } from '../../kernels/unary.js';
import { needsGrad, record } from '../tape.js';

/** A chunk's logits stay under this many bytes by default (and under the device's binding limit). */
export const DEFAULT_CHUNK_LOGITS_BYTES = 32 * 2 ** 20;

export interface LinearCrossEntropyOptions {
  /** Targets equal to this are skipped (default -100, as in PyTorch). */
  ignoreIndex?: number;
  /**
   * Rows of logits computed at once (default: as many as keep one chunk's logits under 32 MiB and
   * under the device's largest buffer). Memory above the saved tensors is about 2 * chunkRows * V
   * elements in backward.
   */
  chunkRows?: number;
}

/** The default rows per chunk for a vocabulary of `v` classes in `dtype`, on a device whose largest buffer is `maxBufferBytes`. */
export function defaultChunkRows(v: number, dtype: Tensor['dtype'], maxBufferBytes: number): number {
  const rowBytes = Math.max(1, v) * bytesPerElement(dtype);
  return Math.max(1, Math.floor(Math.min(DEFAULT_CHUNK_LOGITS_BYTES, maxBufferBytes) / rowBytes));
}

function checkInputs(h: Tensor, blocks: readonly Tensor[], targets: Tensor, options: LinearCrossEntropyOptions): number {
  const op = 'linearCrossEntropy';
  for (const t of [h, ...blocks, targets]) t.use(op);
  if (blocks.length === 0) throw new ShapeError(`${op}: the weight is an empty list of row blocks`);
  for (const weight of blocks) {
    if (h.rank !== 2 || weight.rank !== 2) {
      throw new ShapeError(`${op}: h must be [N, H] and weight [V, H], got h ${h.describe()} and weight ${weight.describe()}; reshape [B, T, H] to [B*T, H] (a free view)`);
    }
    if (h.shape[1] !== weight.shape[1]) {
      throw new ShapeError(`${op}: h ${h.describe()} and weight ${weight.describe()} must share the hidden size H (the last dim)`);
    }
    if (h.dtype !== weight.dtype) throw new DTypeError(`${op}: h is ${h.dtype} but weight is ${weight.dtype}; cast one first`);
  }
  if (targets.dtype !== 'i32' || targets.rank !== 1 || targets.shape[0] !== h.shape[0]) {
    throw new ShapeError(`${op}: targets ${targets.describe()} must be i32 [N] = [${h.shape[0]}] for h ${h.describe()}`);
  }
  const v = blocks.reduce((n, w) => n + w.shape[0]!, 0);
  const rows = options.chunkRows ?? defaultChunkRows(v, h.dtype, h.backend.maxBufferBytes);
  if (!Number.isSafeInteger(rows) || rows < 1) throw new StepError(`${op}: chunkRows must be a positive integer, got ${String(rows)}`);
  return rows;
}

/** The chunks' row ranges [start, rows]. */
function chunks(n: number, rows: number): [number, number][] {
  const out: [number, number][] = [];
  for (let r = 0; r < n; r += rows) out.push([r, Math.min(rows, n - r)]);
  return out;
}

/** max(count of non-ignored targets, 1) as a scalar in the loss dtype: the loss is 0 when every target is ignored. */
function targetCount(targets: Tensor, ignoreIndex: number, dtype: Tensor['dtype']): Tensor {
  return scopeSync(() => maximum(cast(sum(notEqual(targets, ignoreIndex)), dtype), 1));
}

// a chunk of all rows is the tensor itself: no copy (one chunk is the common case below ~32 MiB of logits)
const whole = (t: Tensor, [start, rows]: [number, number]): boolean => start === 0 && rows === t.shape[0];
const rowsOf = (t: Tensor, range: [number, number]): Tensor => (whole(t, range) ? t : slice(t, [range[0], 0], [range[1], t.shape[1]!]));
const targetsOf = (t: Tensor, range: [number, number]): Tensor => (whole(t, range) ? t : slice(t, [range[0]], [range[1]]));

/** One chunk's logits h_c W^T [rows, V], the blocks' products side by side. */
function chunkLogits(hc: Tensor, blocks: readonly Tensor[]): Tensor {
  const label = 'linearCrossEntropy logits chunk';
  if (blocks.length === 1) return M.matmul(hc, blocks[0]!, { transB: true, label });
  return scopeSync(() => concat(blocks.map((w) => M.matmul(hc, w, { transB: true })), 1, { label }));
}

/** The columns of block k's rows in a chunk's [rows, V] logits gradient. */
function blockColumns(dlogits: Tensor, blocks: readonly Tensor[], k: number): Tensor {
  if (blocks.length === 1) return dlogits;
  let start = 0;
  for (let j = 0; j < k; j++) start += blocks[j]!.shape[0]!;
  return slice(dlogits, { axis: 1, start, end: start + blocks[k]!.shape[0]! });
}

interface ChunkPass {
  ignoreIndex: number;
  /** Multiplies dlogits: the mean's 1 / count (times the upstream gradient when known). */
  scale: Tensor;
  needH: boolean;
  needW: boolean[];
  /** Also sum the chunks' losses (the forward of the eager path). */
  withLoss: boolean;
}

/**
 * Per chunk: logits_c, the loss part (withLoss), dlogits_c = scale (softmax - onehot), then dh_c and
 * dW += dlogits_c^T h_c for what needs them. Returns the summed loss (null without withLoss or rows),
 * dh (all chunks, or null) and each block's dW (null where not needed; zeros for N = 0).
 */
function chunkPass(h: Tensor, blocks: readonly Tensor[], targets: Tensor, ranges: [number, number][], o: ChunkPass) {
  let total: Tensor | null = null;
  const parts: Tensor[] = [];
  const dW: (Tensor | null)[] = blocks.map(() => null);
  for (const range of ranges) {
    const { part, dh, dw } = scopeSync(() => {
      const hc = rowsOf(h, range), tc = targetsOf(targets, range);
      const logits = chunkLogits(hc, blocks);
      const part = o.withLoss ? CE.crossEntropy(logits, tc, { ignoreIndex: o.ignoreIndex, reduction: 'sum' }) : null;
      const dlogits = CE.crossEntropyBackward(logits, tc, { ignoreIndex: o.ignoreIndex, reduction: 'sum', gradScale: o.scale });
      logits.dispose(); // before the products: the chunk's peak is logits or dlogits, plus what they make
      let dhc: Tensor | null = null;
      const dwc = blocks.map((w, k) => {
        if (!o.needH && !o.needW[k]) return null;
        const cols = blockColumns(dlogits, blocks, k);
        if (o.needH) {
          const p = M.matmul(cols, w);
          if (dhc) { addScaledInPlace(dhc, p); p.dispose(); } else dhc = p;
        }
        return o.needW[k] ? M.matmul(cols, hc, { transA: true }) : null;
      });
      return { part, dh: dhc, dw: dwc };
    });
    if (part) { if (total) { addScaledInPlace(total, part); part.dispose(); } else total = part; }
    if (dh) parts.push(dh);
    dw.forEach((d, k) => {
      if (!d) return;
      const acc = dW[k];
      if (acc) { addScaledInPlace(acc, d); d.dispose(); } else dW[k] = d;
    });
  }
  const zerosLike = (t: Tensor) => zeros(t.shape, { dtype: t.dtype, device: t.backend }); // N = 0
  let dH: Tensor | null = null;
  if (o.needH) {
    if (parts.length === 1) dH = parts[0]!;
    else {
      dH = parts.length === 0 ? zerosLike(h) : concat(parts, 0);
      for (const p of parts) p.dispose();
    }
  }
  return { total, dH, dW: blocks.map((w, k) => (o.needW[k] ? dW[k] ?? zerosLike(w) : null)) };
}

/**
 * Mean cross-entropy of the logits h W^T (h [N, H], weight [V, H]) against i32 targets [N],
 * computed over row chunks so the [N, V] logits never exist: same value and gradients as
 * `crossEntropy(matmul(h, weight, { transB: true }), targets)`. A scalar (f32; f64 for f64 inputs).
 */
export function linearCrossEntropy(h: Tensor, weight: Tensor | readonly Tensor[], targets: Tensor, options: LinearCrossEntropyOptions = {}): Tensor {
  const blocks: readonly Tensor[] = Array.isArray(weight) ? weight : [weight as Tensor];
  const chunkRows = checkInputs(h, blocks, targets, options);
  const ignoreIndex = options.ignoreIndex ?? -100;
  const ranges = chunks(h.shape[0]!, chunkRows);
  const lossDtype = h.dtype === 'f64' ? 'f64' : 'f32';
  const inputs = [h, ...blocks, targets];
  const needH = h.requiresGrad, needW = blocks.map((w) => w.requiresGrad);
  if (needsGrad(h, ...blocks) && h.dtype !== 'f16') {
    // Eager: the gradients in the forward pass (file comment), scaled by the upstream gradient in backward.
    const [loss, ...grads] = scopeSync(() => {
      const count = targetCount(targets, ignoreIndex, lossDtype);
      const scale = rdiv(count, 1); // 1 / count, without a fill
      const r = chunkPass(h, blocks, targets, ranges, { ignoreIndex, scale, needH, needW, withLoss: true });
      return [div(r.total ?? zeros([], { dtype: lossDtype, device: h.backend }), count), r.dH, ...r.dW];
    });
    const held = grads.filter((t): t is Tensor => t !== null);
    const out = record('linearCrossEntropy', loss!, inputs, held, (g, saved, final) => {
      // final: the graph is released after this backward, so the saved gradients are scaled in place
      // (no second weight-sized buffer); with retainGraph they stay as they are for the next backward.
      let next = 0;
      return [...grads.map((t) => {
        if (!t) return null;
        const s = saved[next++]!;
        return final ? scaleInPlace(s, g).reshape(s.shape as number[]) : mul(s, cast(g, s.dtype));
      }), null];
      // kept as temporaries, as when backward computed them: neither activations (what saved views
      // count as) nor model state (the planner's gradients are those in .grad)
    }, { keepCategory: true });
    for (const t of held) t.dispose(); // the node holds its own views
    return out;
  }
  const loss = scopeSync(() => {
    let total: Tensor | null = null;
    for (const range of ranges) {
      const part = scopeSync(() => CE.crossEntropy(chunkLogits(rowsOf(h, range), blocks), targetsOf(targets, range), { ignoreIndex, reduction: 'sum' }));
      if (total) { addScaledInPlace(total, part); part.dispose(); } else total = part;
    }
    total ??= zeros([], { dtype: lossDtype, device: h.backend }); // N = 0: an empty sum
    return div(total, targetCount(targets, ignoreIndex, lossDtype));
  });
  if (!needsGrad(h, ...blocks)) return loss;
  // f16: dlogits must carry the loss scale, known only in backward (scaled after the f16 products,
  // (softmax - onehot) / count would underflow), so backward recomputes each chunk's logits.
  return record('linearCrossEntropy', loss, inputs, inputs, (g, saved) => {
    const sh = saved[0]!, sw = saved.slice(1, 1 + blocks.length) as Tensor[], st = saved[1 + blocks.length]!;
    const scale = div(g, targetCount(st, ignoreIndex, g.dtype)); // the mean's 1 / count, times the upstream gradient
    const r = chunkPass(sh, sw, st, ranges, { ignoreIndex, scale, needH, needW, withLoss: false });
    return [r.dH, ...r.dW, null];
  });
}
