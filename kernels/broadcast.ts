import type { Shape } from '../engine/shape.js';

/** Largest rank the strided kernels take (shapes and strides travel in uniforms). */
export const MAX_RANK = 8;

/**
 * Element strides of `shape` read as if broadcast to `out` (right-aligned, NumPy rules):
 * 0 along dimensions the input repeats.
 */
export function broadcastStrides(shape: Shape, out: Shape): number[] {
  const strides = new Array<number>(out.length).fill(0);
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    const o = out.length - shape.length + i;
    strides[o] = shape[i] === 1 && out[o] !== 1 ? 0 : s;
    s *= shape[i]!;
  }
  return strides;
}

/** Pads a list to MAX_RANK entries (uniform arrays of 2 vec4u). */
export function padRank(xs: readonly number[], fill = 0): number[] {
  return [...xs, ...new Array<number>(MAX_RANK - xs.length).fill(fill)];
}

/** WGSL: offset of output element `i` in an input with strides `st` (dims in `u.shape`, rank `u.rank`). */
export function stridedOffsetFn(name: string, strides: string): string {
  return `fn ${name}(i: u32) -> u32 {
  var rest = i;
  var off = 0u;
  for (var d = i32(u.rank) - 1; d >= 0; d--) {
    let dim = u.shape[d / 4][d % 4];
    off += (rest % dim) * u.${strides}[d / 4][d % 4];
    rest /= dim;
  }
  return off;
}`;
}

/** CPU twin of stridedOffsetFn: maps an output index to input offsets for several inputs at once. */
export function stridedOffsets(i: number, shape: Shape, strides: readonly (readonly number[])[], out: number[]): void {
  out.fill(0);
  let rest = i;
  for (let d = shape.length - 1; d >= 0; d--) {
    const dim = shape[d]!;
    const c = rest % dim;
    rest = (rest - c) / dim;
    for (let k = 0; k < strides.length; k++) out[k]! += c * strides[k]![d]!;
  }
}
