import type { Tensor } from '../../engine/tensor.js';
import * as L from '../../kernels/layout.js';
import type { LayoutOptions, SliceSpec } from '../../kernels/layout.js';
import { isGradEnabled } from '../grad-mode.js';
import { markRecomputable } from '../saved.js';
import { needsGrad, record } from '../tape.js';

/** A view with another shape (no copy); the gradient is reshaped back. */
export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  return x.reshape(shape); // Tensor.reshape records through the autograd hook when x requires grad
}

export function permute(x: Tensor, dims: readonly number[], options: LayoutOptions = {}): Tensor {
  const out = L.permute(x, dims, options);
  if (!needsGrad(x)) return out;
  const inverse = new Array<number>(dims.length);
  dims.forEach((d, i) => { inverse[(d + dims.length) % dims.length] = i; });
  return record('permute', out, [x], [], (g) => [L.permute(g, inverse)]);
}

export function transpose(x: Tensor, dim0: number, dim1: number, options: LayoutOptions = {}): Tensor {
  const out = L.transpose(x, dim0, dim1, options);
  if (!needsGrad(x)) return out;
  return record('transpose', out, [x], [], (g) => [L.transpose(g, dim0, dim1)]);
}

/** Slice in either form of kernels/layout slice(); the gradient writes g back where the slice read. */
export function slice(x: Tensor, spec: SliceSpec | readonly SliceSpec[], options?: LayoutOptions): Tensor;
export function slice(x: Tensor, begin: readonly number[], size: readonly number[], options?: LayoutOptions): Tensor;
export function slice(x: Tensor, a: SliceSpec | readonly SliceSpec[] | readonly number[], b?: readonly number[] | LayoutOptions, c?: LayoutOptions): Tensor {
  const out = L.slice(x, a as never, b as never, c);
  if (!needsGrad(x)) return out;
  const { starts, steps } = L.resolveSlice(x, a, b, c);
  return record('slice', out, [x], [], (g) => [L.sliceGradient(g, x.shape, starts, steps)]);
}

export function concat(tensors: readonly Tensor[], axis: number, options: LayoutOptions = {}): Tensor {
  const out = L.concat(tensors, axis, options);
  if (!needsGrad(...tensors)) return out;
  const ax = axis < 0 ? axis + out.rank : axis;
  return record('concat', out, tensors, [], (g) => {
    let at = 0;
    return tensors.map((t) => {
      const n = t.shape[ax]!;
      const piece = t.requiresGrad ? L.slice(g, { axis: ax, start: at, end: at + n }) : null;
      at += n;
      return piece;
    });
  });
}

/**
 * Embedding lookup: rows of `table` [V, H] at `ids`; the gradient scatter-adds back (deterministic).
 * The rows are recomputable from the table and the ids: an op that reads them in backward (the
 * first block's norm) keeps no [tokens, H] copy.
 */
export function gatherRows(table: Tensor, ids: Tensor, options: LayoutOptions = {}): Tensor {
  const out = L.gatherRows(table, ids, options);
  if (isGradEnabled()) markRecomputable(out, [table, ids], ([t, i]) => L.gatherRows(t!, i!));
  if (!needsGrad(table)) return out;
  return record('gatherRows', out, [table, ids], [ids], (g, [sids]) => [L.scatterAddRows(g, sids!, table.shape[0]!), null]);
}
