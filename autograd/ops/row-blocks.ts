/**
 * Differentiable ops on a [V, H] table held as consecutive row blocks (engine/row-blocks.ts), for
 * embeddings and LM heads larger than one storage binding. One block takes the plain op's path.
 *
 *   gatherRowBlocks:  out[t] = W[ids[t]]        each block writes the rows whose ids it holds;
 *                     dW_b  = scatter-add of g over the ids in block b (others skipped)
 *   linearRowBlocks:  x W^T = [x W_0^T | x W_1^T | ...]   (concatenated along the last axis)
 */
import { zeros } from '../../engine/creation.js';
import { ShapeError } from '../../engine/errors.js';
import { formatShape } from '../../engine/shape.js';
import type { Tensor } from '../../engine/tensor.js';
import { gatherRowBlockInto, scatterAddRows } from '../../kernels/layout-rows.js';
import { concat, gatherRows } from './layout.js';
import { matmul } from './linalg.js';
import { needsGrad, record } from '../tape.js';

/** The first row of each block, and the total rows; checks the blocks agree on H and dtype. */
export function blockLayout(op: string, blocks: readonly Tensor[]): { firstRows: number[]; totalRows: number } {
  const first = blocks[0];
  if (!first) throw new ShapeError(`${op}: no row blocks given`);
  const firstRows: number[] = [];
  let total = 0;
  for (const b of blocks) {
    b.use(op);
    if (b.rank !== 2 || b.shape[1] !== first.shape[1] || b.dtype !== first.dtype) {
      throw new ShapeError(`${op}: row blocks must be 2-D [rows, H] of one H and dtype, got ${first.describe()} and ${b.describe()}`);
    }
    firstRows.push(total);
    total += b.shape[0]!;
  }
  return { firstRows, totalRows: total };
}

/**
 * Embedding lookup in a table split into row blocks: the same values and gradients as
 * `gatherRows(concat(blocks, 0), ids)`, without ever making the whole table. Each block's
 * gradient is the scatter-add of the ids it holds.
 */
export function gatherRowBlocks(blocks: readonly Tensor[], ids: Tensor): Tensor {
  if (blocks.length === 1) return gatherRows(blocks[0]!, ids);
  const { firstRows, totalRows } = blockLayout('gatherRowBlocks', blocks);
  const h = blocks[0]!.shape[1]!;
  const out = zeros([...ids.shape, h], { dtype: blocks[0]!.dtype, device: ids.backend, label: 'gatherRowBlocks' });
  blocks.forEach((b, k) => gatherRowBlockInto(out, b, ids, { firstRow: firstRows[k]!, totalRows }));
  if (!needsGrad(...blocks)) return out;
  return record('gatherRowBlocks', out, [...blocks, ids], [ids], (g, [sids]) => [
    ...blocks.map((b, k) => b.requiresGrad
      ? scatterAddRows(g, sids!, b.shape[0]!, { rowBlock: { firstRow: firstRows[k]!, totalRows } })
      : null),
    null,
  ]);
}

/**
 * x W^T for W [V, H] split into row blocks: [..., H] -> [..., V], the blocks' products side by
 * side (composed from matmul and concat, so gradients reach x and every block). The result must
 * itself fit in one buffer: training uses linearCrossEntropy, which never makes it whole.
 */
export function linearRowBlocks(x: Tensor, blocks: readonly Tensor[]): Tensor {
  if (blocks.length === 1) return matmul(x, blocks[0]!, { transB: true });
  blockLayout('linearRowBlocks', blocks);
  if (x.shape[x.rank - 1] !== blocks[0]!.shape[1]) {
    throw new ShapeError(`linearRowBlocks: x ${formatShape(x.shape)} must end in H = ${blocks[0]!.shape[1]} (the blocks' row length)`);
  }
  return concat(blocks.map((w) => matmul(x, w, { transB: true })), -1);
}
