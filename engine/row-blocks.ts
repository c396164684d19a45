/**
 * Tensors larger than one storage binding, as consecutive row blocks: a [V, H] table (an
 * embedding, an LM head) too large for the device's largest buffer is held as several [rows, H]
 * tensors, each a plain tensor of its own, so gradients, master weights and optimizer moments
 * follow per block. A block remembers which logical tensor it belongs to; files (model and
 * optimizer safetensors) store the logical tensor, the blocks' rows one after another, so the
 * bytes do not depend on the device that wrote or reads them.
 */
import type { Backend } from './backend.js';
import { StepError } from './errors.js';
import { formatBytes } from './memory.js';
import type { Tensor } from './tensor.js';

/** Where a block sits in its logical tensor. */
export interface RowBlock {
  /** The logical tensor's name (e.g. `model.embed_tokens.weight`). */
  readonly name: string;
  /** First row of the block in the logical tensor. */
  readonly firstRow: number;
  /** Rows of the logical tensor. */
  readonly totalRows: number;
  readonly index: number;
  readonly count: number;
}

const blocks = new WeakMap<Tensor, RowBlock>();

/**
 * Bytes per element that size the blocks: 4 (f32) whatever the weight's dtype, because the
 * f32 master copy and Adam moments of an f16 weight have the block's shape too.
 */
export const BLOCK_BYTES_PER_ELEMENT = 4;

/**
 * The row ranges [first, rows] that split `totalRows` rows of `rowElements` elements each into
 * as few blocks as keep every block's f32 copy within `maxBufferBytes` (equal sizes but the last).
 * Throws when a single row does not fit.
 */
export function rowBlockRanges(totalRows: number, rowElements: number, maxBufferBytes: number, what: string): [number, number][] {
  const rowBytes = rowElements * BLOCK_BYTES_PER_ELEMENT;
  if (rowBytes > maxBufferBytes) {
    throw new StepError(`${what}: one row of ${rowElements} elements needs ${formatBytes(rowBytes)} in f32, beyond the device's largest buffer (${formatBytes(maxBufferBytes)}); a row cannot be split: lower the hidden size or raise the backend's maxBufferBytes`);
  }
  const perBlock = Math.max(1, Math.floor(maxBufferBytes / rowBytes));
  const out: [number, number][] = [];
  for (let r = 0; r < totalRows; r += perBlock) out.push([r, Math.min(perBlock, totalRows - r)]);
  if (out.length === 0) out.push([0, 0]);
  return out;
}

/** The ranges for a [totalRows, rowElements] table on `device`. */
export function rowBlockRangesFor(device: Backend, totalRows: number, rowElements: number, what: string): [number, number][] {
  return rowBlockRanges(totalRows, rowElements, device.maxBufferBytes, what);
}

/** Records that `parts` (in row order) are the row blocks of the logical tensor `name`. */
export function markRowBlocks(name: string, parts: readonly Tensor[]): void {
  const totalRows = parts.reduce((n, t) => n + t.shape[0]!, 0);
  let first = 0;
  parts.forEach((t, index) => {
    blocks.set(t, { name, firstRow: first, totalRows, index, count: parts.length });
    first += t.shape[0]!;
  });
}

/** The block `t` is, or null for a tensor that is whole. */
export function rowBlockOf(t: Tensor): RowBlock | null {
  return blocks.get(t) ?? null;
}

/** The name of row block `[first, first + rows)` of `name`, as `namedTensors()` lists it. */
export function rowBlockName(name: string, first: number, rows: number): string {
  return `${name}[${first}:${first + rows}]`;
}

/** A logical tensor: one whole tensor, or the row blocks that make it, in row order. */
export interface LogicalTensor<T> {
  name: string;
  parts: T[];
}

/**
 * Groups consecutive items whose tensors are the blocks of one logical tensor (all its blocks,
 * in order) under that tensor's name; every other item stands alone under its own name.
 */
export function groupRowBlocks<T>(items: readonly T[], tensorOf: (item: T) => Tensor, nameOf: (item: T) => string): LogicalTensor<T>[] {
  const out: LogicalTensor<T>[] = [];
  for (let k = 0; k < items.length; k++) {
    const item = items[k]!;
    const b = rowBlockOf(tensorOf(item));
    if (!b || b.count === 1) {
      out.push({ name: b ? b.name : nameOf(item), parts: [item] });
      continue;
    }
    const parts = items.slice(k, k + b.count);
    const complete = b.index === 0 && parts.length === b.count && parts.every((p, j) => {
      const pb = rowBlockOf(tensorOf(p));
      return pb !== null && pb.name === b.name && pb.index === j;
    });
    if (!complete) throw new StepError(`${b.name}: its ${b.count} row blocks must be listed together and in order (found block ${b.index} at position ${k}); pass every block of a split tensor`);
    out.push({ name: b.name, parts });
    k += b.count - 1;
  }
  return out;
}
