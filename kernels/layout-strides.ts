import { ShapeError } from '../engine/errors.js';
import type { Shape } from '../engine/shape.js';
import { formatShape } from '../engine/shape.js';

/**
 * Shared index math of the layout and reduction kernels: a strided walk is a list of dims
 * (size plus one stride per operand), stored innermost first, after dropping size-1 dims and
 * merging neighbours that are contiguous for every operand. Shapes travel in uniforms as
 * `array<vec4u, 2>` (8 dims), so a rank-8 tensor always fits and higher ranks fit when merging
 * brings them down to 8.
 */
export const MAX_DIMS = 8;

/** One dim of a strided walk: its size and the element stride of each operand along it. */
export interface WalkDim {
  size: number;
  strides: number[];
}

/** Normalises a possibly negative axis against `rank`, or throws naming the op and shape. */
export function normalizeAxis(axis: number, rank: number, op: string, shape: Shape): number {
  if (!Number.isInteger(axis) || axis < -Math.max(rank, 1) || axis >= Math.max(rank, 1)) {
    throw new ShapeError(`${op}: axis ${axis} is out of range for shape ${formatShape(shape)} (rank ${rank}); use -${rank}..${rank - 1}`);
  }
  return axis < 0 ? axis + rank : axis;
}

/**
 * Simplifies a walk given outermost first: drops size-1 dims, merges a dim into its inner
 * neighbour when every operand's stride continues the inner one, and returns it innermost first.
 * Zero-size dims are kept (callers skip empty walks before dispatching).
 */
export function simplifyWalk(dims: readonly WalkDim[]): WalkDim[] {
  const kept = dims.filter((d) => d.size !== 1);
  const out: WalkDim[] = [];
  for (let k = kept.length - 1; k >= 0; k--) {
    const d = kept[k]!;
    const inner = out[out.length - 1];
    if (inner && d.strides.every((s, j) => s === inner.strides[j]! * inner.size)) {
      inner.size *= d.size;
    } else {
      out.push({ size: d.size, strides: [...d.strides] });
    }
  }
  return out;
}

/** Throws when a simplified walk still has more dims than the uniforms hold. */
export function checkWalkRank(walk: readonly WalkDim[], op: string, shape: Shape): void {
  if (walk.length > MAX_DIMS) {
    throw new ShapeError(`${op}: shape ${formatShape(shape)} needs ${walk.length} strided dims after merging, more than the ${MAX_DIMS} the kernels take; reshape to fewer dims first`);
  }
}

/** Sizes and the operand's strides of a walk, each padded to MAX_DIMS entries, for the uniforms. */
export function walkFields(walk: readonly WalkDim[], operands: readonly number[]): ['u32', number][] {
  const pad = (xs: number[]): ['u32', number][] =>
    [...xs, ...new Array<number>(MAX_DIMS - xs.length).fill(0)].map((v) => ['u32', v] as ['u32', number]);
  const fields = pad(walk.map((d) => d.size));
  for (const j of operands) fields.push(...pad(walk.map((d) => d.strides[j]!)));
  return fields;
}

/** WGSL: element `d` (a u32 expression) of a uniform `array<vec4u, 2>` field. */
export function dimAt(field: string, d: string): string {
  return `u.${field}[${d} >> 2u][${d} & 3u]`;
}

/** Row-major strides of `shape` in elements. */
export function contiguousStrides(shape: Shape): number[] {
  const out = new Array<number>(shape.length);
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    out[i] = s;
    s *= shape[i]!;
  }
  return out;
}

/** CPU twin of the WGSL decode: adds each operand's offset of linear index `i` in `walk` to `base`. */
export function walkOffsets(i: number, walk: readonly WalkDim[], base: readonly number[], out: number[]): void {
  for (let j = 0; j < base.length; j++) out[j] = base[j]!;
  let rest = i;
  for (const d of walk) {
    const c = rest % d.size;
    rest = (rest - c) / d.size;
    for (let j = 0; j < out.length; j++) out[j]! += c * d.strides[j]!;
  }
}
