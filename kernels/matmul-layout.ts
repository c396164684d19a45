/**
 * Shape logic of matmul shared by the op and both kernels: the problem sizes and how each output
 * batch entry maps to offsets in A and B (broadcasting included).
 */
import { ShapeError } from '../engine/errors.js';
import type { KernelCallOf } from '../engine/registry.js';
import { defineKernel } from '../engine/registry.js';
import type { Shape } from '../engine/shape.js';
import { broadcastShapes, formatShape } from '../engine/shape.js';

/** Batch dims the kernels decode per workgroup; more are merged when contiguous, else rejected. */
export const MAX_BATCH_DIMS = 4;

export interface MatmulLayout {
  M: number;
  N: number;
  K: number;
  transA: boolean;
  transB: boolean;
  /** Output shape: [...batch, M, N]. */
  outShape: Shape;
  /** Number of output matrices. */
  batch: number;
  /** Merged output batch dims, outermost first, padded in front with 1s to MAX_BATCH_DIMS. */
  dims: number[];
  /** Element stride of A (and B) per entry of `dims`; 0 where that operand is broadcast. */
  stridesA: number[];
  stridesB: number[];
}

/** out = a · b as `layout` lays them out (transposes and batch broadcasting included). */
export const matmulKernel = defineKernel<{ layout: MatmulLayout }>()('matmul', { inputs: ['a', 'b'], outputs: ['out'] });
export type MatmulCall = KernelCallOf<typeof matmulKernel>;

/** Validates shapes (ranks >= 2, matching inner dims, broadcastable batch dims) and lays out the batch. */
export function matmulLayout(aShape: Shape, bShape: Shape, transA: boolean, transB: boolean, describe: () => string): MatmulLayout {
  if (aShape.length < 2 || bShape.length < 2) {
    throw new ShapeError(`matmul: ${describe()}: both operands need rank >= 2 ([..., rows, cols]); reshape a vector to [1, n] or [n, 1] first`);
  }
  const ra = aShape.length, rb = bShape.length;
  const M = transA ? aShape[ra - 1]! : aShape[ra - 2]!;
  const Ka = transA ? aShape[ra - 2]! : aShape[ra - 1]!;
  const Kb = transB ? bShape[rb - 1]! : bShape[rb - 2]!;
  const N = transB ? bShape[rb - 2]! : bShape[rb - 1]!;
  if (Ka !== Kb) {
    throw new ShapeError(`matmul: ${describe()}: inner dimensions differ: a gives K = ${Ka}${transA ? ' (transA)' : ''}, b gives K = ${Kb}${transB ? ' (transB)' : ''}; check the shapes or the transpose flags`);
  }
  const aBatch = aShape.slice(0, -2), bBatch = bShape.slice(0, -2);
  let batchShape: Shape;
  try {
    batchShape = broadcastShapes(aBatch, bBatch, 'matmul');
  } catch (e) {
    if (e instanceof ShapeError) throw new ShapeError(`matmul: ${describe()}: batch dimensions ${formatShape(aBatch)} and ${formatShape(bBatch)} do not broadcast`);
    throw e;
  }
  const outShape = Object.freeze([...batchShape, M, N]) as Shape;
  const batch = batchShape.reduce((p, d) => p * d, 1);
  // Element strides of each operand's batch dims, aligned to the output's (0 where broadcast).
  const strides = (own: Shape, matrix: number): number[] => {
    const out = new Array<number>(batchShape.length).fill(0);
    let s = matrix;
    for (let i = own.length - 1, o = batchShape.length - 1; i >= 0; i--, o--) {
      out[o] = own[i] === 1 && batchShape[o] !== 1 ? 0 : s;
      s *= own[i]!;
    }
    return out;
  };
  const sa = strides(aBatch, M * Ka), sb = strides(bBatch, Ka * N);
  // Merge adjacent dims where both operands step through them as one (fewer dims to decode).
  const dims: number[] = [], stridesA: number[] = [], stridesB: number[] = [];
  for (let i = 0; i < batchShape.length; i++) {
    const d = batchShape[i]!;
    if (d === 1) continue;
    const last = dims.length - 1;
    if (last >= 0 && stridesA[last] === sa[i]! * d && stridesB[last] === sb[i]! * d) {
      dims[last]! *= d;
      stridesA[last] = sa[i]!;
      stridesB[last] = sb[i]!;
    } else {
      dims.push(d); stridesA.push(sa[i]!); stridesB.push(sb[i]!);
    }
  }
  if (dims.length > MAX_BATCH_DIMS) {
    throw new ShapeError(`matmul: ${describe()}: the broadcast batch ${formatShape(batchShape)} needs ${dims.length} separate dimensions; at most ${MAX_BATCH_DIMS} are supported (make operands contiguous with matching batch dims, or reshape)`);
  }
  while (dims.length < MAX_BATCH_DIMS) { dims.unshift(1); stridesA.unshift(0); stridesB.unshift(0); }
  return { M, N, K: Ka, transA, transB, outShape, batch, dims, stridesA, stridesB };
}

/** Offsets (in elements) of output matrix `z` in A and B. */
export function batchOffsets(l: MatmulLayout, z: number): [number, number] {
  let rem = z, offA = 0, offB = 0;
  for (let d = MAX_BATCH_DIMS - 1; d >= 0; d--) {
    const i = rem % l.dims[d]!;
    rem = Math.floor(rem / l.dims[d]!);
    offA += i * l.stridesA[d]!;
    offB += i * l.stridesB[d]!;
  }
  return [offA, offB];
}
