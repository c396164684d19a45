/**
 * The LM head and the loss fused over row chunks: the [N, V] logits are never materialised, in
 * forward or backward (the idea of Cut Cross-Entropy, arXiv 2411.09009, and of Liger's fused linear
 * cross-entropy; written from the math, not their code).
 *
 *   logits = h W^T                    h [N, H], W [V, H]
 *   loss   = (1 / count) * sum_{i: t_i != ignore} (lse(logits_i) - logits_{i, t_i})
 *
 * Forward, per chunk of rows c: logits_c = h_c W^T, s_c = summed cross-entropy of the chunk;
 * loss = (sum_c s_c) / max(count, 1), all on the device (no readback). The chunk's logits die
 * before the next chunk's are made. Saved: h, W, targets only.
 * Backward, per chunk: recompute logits_c, dlogits_c = (g / count) (softmax - onehot) (the CE
 * backward kernel with reduction 'sum' and that scale as a tensor), then
 *   dh_c = dlogits_c W        dW += dlogits_c^T h_c
 * so the peak above the saved tensors is two chunks of logits (logits_c and dlogits_c) plus dW.
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
import { addScaledInPlace, div, maximum, notEqual } from '../../kernels/elementwise.js';
import { concat, slice } from '../../kernels/layout.js';
import * as M from '../../kernels/matmul.js';
import { sum } from '../../kernels/reduce.js';
import { cast } from '../../kernels/unary.js';
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
  const loss = scopeSync(() => {
    let total: Tensor | null = null;
    for (const range of ranges) {
      const part = scopeSync(() => {
        const logits = chunkLogits(rowsOf(h, range), blocks);
        return CE.crossEntropy(logits, targetsOf(targets, range), { ignoreIndex, reduction: 'sum' });
      });
      if (total) addScaledInPlace(total, part); else total = part;
    }
    total ??= zeros([], { dtype: lossDtype, device: h.backend }); // N = 0: an empty sum
    return div(total, targetCount(targets, ignoreIndex, lossDtype));
  });
  if (!needsGrad(h, ...blocks)) return loss;
  const needH = h.requiresGrad, needW = blocks.map((w) => w.requiresGrad);
  return record('linearCrossEntropy', loss, [h, ...blocks, targets], [h, ...blocks, targets], (g, saved) => {
    const sh = saved[0]!, sw = saved.slice(1, 1 + blocks.length) as Tensor[], st = saved[1 + blocks.length]!;
    const parts: Tensor[] = [];
    const dW: (Tensor | null)[] = blocks.map(() => null);
    scopeSync(() => {
      const scale = div(g, targetCount(st, ignoreIndex, g.dtype)); // the mean's 1 / count, times the upstream gradient
      for (const range of ranges) {
        const { dh, dw } = scopeSync(() => {
          const hc = rowsOf(sh, range);
          const logits = chunkLogits(hc, sw);
          const dlogits = CE.crossEntropyBackward(logits, targetsOf(st, range), { ignoreIndex, reduction: 'sum', gradScale: scale });
          logits.dispose(); // before the products: the chunk's peak is logits or dlogits, plus what they make
          let dhc: Tensor | null = null;
          const dwc = sw.map((w, k) => {
            if (!needH && !needW[k]) return null;
            const cols = blockColumns(dlogits, sw, k);
            if (needH) {
              const part = M.matmul(cols, w);
              if (dhc) { addScaledInPlace(dhc, part); part.dispose(); } else dhc = part;
            }
            return needW[k] ? M.matmul(cols, hc, { transA: true }) : null;
          });
          return { dh: dhc, dw: dwc };
        });
        if (dh) parts.push(dh);
        dw.forEach((d, k) => {
          if (!d) return;
          const acc = dW[k];
          if (acc) { addScaledInPlace(acc, d); d.dispose(); } else dW[k] = d;
        });
      }
      return [...parts, ...dW.filter((d): d is Tensor => d !== null)];
    });
    const zerosLike = (t: Tensor) => zeros(t.shape, { dtype: t.dtype, device: t.backend }); // N = 0
    let dH: Tensor | null = null;
    if (needH) {
      if (parts.length === 1) dH = parts[0]!;
      else {
        dH = parts.length === 0 ? zerosLike(sh) : concat(parts, 0);
        for (const p of parts) p.dispose();
      }
    }
    return [dH, ...sw.map((w, k) => (needW[k] ? dW[k] ?? zerosLike(w) : null)), null];
  });
}
