import type { CpuBackend } from '../engine/cpu/backend.js';
import { empty, zeros } from '../engine/creation.js';
import type { DType } from '../engine/dtype.js';
import { f32ToF16Bits } from '../engine/dtype.js';
import { DTypeError, ShapeError, StepError } from '../engine/errors.js';
import type { Category } from '../engine/memory.js';
import { defineKernel, registerKernel, runKernel } from '../engine/registry.js';
import { formatShape } from '../engine/shape.js';
import type { Tensor } from '../engine/tensor.js';
import { dispatchSortedScatterAdd } from './scatter-add-sort.js';
import { enables, grid1D, LINEAR_INDEX, LINEAR_PARAMS, packUniforms, wgslType } from './wgsl.js';

/** Row ops of embeddings: gather rows of a table by id, and the deterministic scatter-add that is its gradient. */
export interface RowsOptions {
  category?: Category;
  label?: string;
}

function checkIds(op: string, ids: Tensor): void {
  if (ids.dtype !== 'i32') throw new DTypeError(`${op}: ids ${ids.describe()} must be i32, got ${ids.dtype}; cast with clone(ids, { dtype: 'i32' })`);
}

function idError(op: string, id: number, t: number, v: number): StepError {
  return new StepError(`${op}: id ${id} at position ${t} is outside the table's ${v} rows (valid ids: 0..${v - 1})`);
}

/**
 * Where a table sits in a larger one split into row blocks (models/row-blocks.ts): it holds rows
 * [firstRow, firstRow + its rows) of `totalRows`. Ids of other blocks are skipped (their output
 * rows left as they are); ids outside 0..totalRows-1 are an error on cpu, as for a whole table.
 */
export interface RowBlockAttrs {
  firstRow: number;
  totalRows: number;
}

/** The whole table: rows 0..v-1 of v. */
const wholeTable = (v: number): RowBlockAttrs => ({ firstRow: 0, totalRows: v });

// ---------------------------------------------------------------------------------------------
// gatherRows

/** gatherRows: out[t, h] = table[ids[t], h]; ids outside 0..V-1 give a zero row (cpu throws instead). */
function gatherSource(elem: 'u32' | 'f16'): string {
  return `${enables(elem === 'f16' ? 'f16' : 'f32')}
struct U { n: u32, h: u32, v: u32, first: i32, block: u32 }
@group(0) @binding(0) var<storage, read> table: array<${elem}>;
@group(0) @binding(1) var<storage, read> ids: array<i32>;
@group(0) @binding(2) var<storage, read_write> out: array<${elem}>;
@group(0) @binding(3) var<uniform> u: U;
@compute @workgroup_size(64) fn main(${LINEAR_PARAMS}) {
  ${LINEAR_INDEX}
  if (i >= u.n) { return; }
  let id = ids[i / u.h] - u.first;
  if (id < 0 || u32(id) >= u.v) {
    // a row block leaves other blocks' rows alone; a whole table writes zeros
    if (u.block == 0u) { out[i] = ${elem}(0); }
  } else {
    out[i] = table[u32(id) * u.h + i % u.h];
  }
}`;
}

/** out[t, :] = table[ids[t] - firstRow, :] for the ids in the table's rows. */
const gatherRowsKernel = defineKernel<RowBlockAttrs>()('gatherRows', { inputs: ['table', 'ids'], outputs: ['out'] });

registerKernel(gatherRowsKernel, {
  cpu(backend: CpuBackend, { inputs: { table, ids }, outputs, attrs: { firstRow, totalRows } }) {
    const [v, h] = table.shape as [number, number];
    const src = backend.view(table.storage), idv = backend.view(ids.storage), out = backend.view(outputs.out.storage);
    for (let t = 0; t < idv.length; t++) {
      const id = idv[t]!;
      if (id < 0 || id >= totalRows) throw idError('gatherRows', id, t, totalRows);
      const local = id - firstRow;
      if (local >= 0 && local < v) out.set(src.subarray(local * h, local * h + h), t * h);
    }
  },
  webgpu(backend, { inputs: { table, ids }, outputs: { out }, attrs: { firstRow, totalRows } }) {
    const [v, h] = table.shape as [number, number];
    if (out.size === 0) return;
    const block = firstRow !== 0 || totalRows !== v ? 1 : 0;
    backend.dispatch({
      label: 'gatherRows',
      source: gatherSource(table.dtype === 'f16' ? 'f16' : 'u32'),
      buffers: [table.storage, ids.storage, out.storage],
      uniforms: packUniforms([['u32', out.size], ['u32', h], ['u32', v], ['i32', firstRow], ['u32', block]]),
      workgroups: grid1D(out.size),
    });
  },
});

/**
 * Embedding lookup: rows of `table` [V, H] picked by `ids` (i32, any shape) -> [...ids.shape, H].
 * An id outside 0..V-1 is an error on the cpu backend; on WebGPU (which cannot throw) it yields
 * a row of zeros.
 */
export function gatherRows(table: Tensor, ids: Tensor, options: RowsOptions = {}): Tensor {
  table.use('gatherRows'); ids.use('gatherRows');
  if (table.rank !== 2) throw new ShapeError(`gatherRows: table ${table.describe()} must be 2-D [rows, hidden]`);
  checkIds('gatherRows', ids);
  const out = empty([...ids.shape, table.shape[1]!], { dtype: table.dtype, device: table.backend, category: options.category, label: options.label }, 'gatherRows');
  if (ids.size > 0) runKernel(gatherRowsKernel, { inputs: { table, ids }, outputs: { out }, attrs: wholeTable(table.shape[0]!) });
  return out;
}

/**
 * The rows of one row block of a larger table (see RowBlockAttrs), written in place into `out`
 * [...ids.shape, H]: out[t, :] = block[ids[t] - firstRow, :] where ids[t] falls in the block;
 * other rows of `out` keep their values. Gathering every block into one zeroed `out` is the
 * lookup in the whole table.
 */
export function gatherRowBlockInto(out: Tensor, block: Tensor, ids: Tensor, where: RowBlockAttrs): void {
  out.use('gatherRowBlockInto'); block.use('gatherRowBlockInto'); ids.use('gatherRowBlockInto');
  checkIds('gatherRowBlockInto', ids);
  if (block.rank !== 2 || out.dtype !== block.dtype || formatShape(out.shape) !== formatShape([...ids.shape, block.shape[1]!])) {
    throw new ShapeError(`gatherRowBlockInto: out ${out.describe()} must be ${block.dtype} [...ids.shape, H] = ${formatShape([...ids.shape, block.shape[1]!])} for block ${block.describe()}`);
  }
  checkBlock('gatherRowBlockInto', block.shape[0]!, where);
  if (ids.size > 0) runKernel(gatherRowsKernel, { inputs: { table: block, ids }, outputs: { out }, attrs: where });
}

function checkBlock(op: string, rows: number, { firstRow, totalRows }: RowBlockAttrs): void {
  if (!Number.isSafeInteger(firstRow) || !Number.isSafeInteger(totalRows) || firstRow < 0 || firstRow + rows > totalRows || totalRows > 2 ** 31 - 1) {
    throw new ShapeError(`${op}: a block of ${rows} rows cannot start at row ${firstRow} of ${totalRows}`);
  }
}

// ---------------------------------------------------------------------------------------------
// scatterAddRows

/**
 * Pass 1 (one invocation per position t): links[t] = the next position with the same id (T if
 * none), and clears links[T + t], the "has an earlier occurrence" flag pass 2 sets.
 */
const LINKS_SOURCE = `struct U { t: u32 }
@group(0) @binding(0) var<storage, read> ids: array<i32>;
@group(0) @binding(1) var<storage, read_write> links: array<u32>;
@group(0) @binding(2) var<uniform> u: U;
@compute @workgroup_size(64) fn main(${LINEAR_PARAMS}) {
  ${LINEAR_INDEX}
  if (i >= u.t) { return; }
  let id = ids[i];
  var next = u.t;
  for (var k = i + 1u; k < u.t; k++) {
    if (ids[k] == id) { next = k; break; }
  }
  links[i] = next;
  links[u.t + i] = 0u;
}`;

/** Pass 2: marks every position that some earlier position links to (each is linked to at most once: no race). */
const MARK_SOURCE = `struct U { t: u32 }
@group(0) @binding(0) var<storage, read_write> links: array<u32>;
@group(0) @binding(1) var<uniform> u: U;
@compute @workgroup_size(64) fn main(${LINEAR_PARAMS}) {
  ${LINEAR_INDEX}
  if (i >= u.t) { return; }
  let next = links[i];
  if (next < u.t) { links[u.t + next] = 1u; }
}`;

/**
 * Pass 3 (one invocation per (position, column)): at the first occurrence of each valid id, walk
 * its chain of positions in order and add their gradients into out[id, column], in f32.
 */
function accumulateSource(grad: string, out: string): string {
  return `${enables(grad === 'f16' || out === 'f16' ? 'f16' : 'f32')}
struct U { n: u32, h: u32, t: u32, v: u32, first: i32 }
@group(0) @binding(0) var<storage, read> grad: array<${grad}>;
@group(0) @binding(1) var<storage, read> ids: array<i32>;
@group(0) @binding(2) var<storage, read> links: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<${out}>;
@group(0) @binding(4) var<uniform> u: U;
@compute @workgroup_size(64) fn main(${LINEAR_PARAMS}) {
  ${LINEAR_INDEX}
  if (i >= u.n) { return; }
  let t = i / u.h;
  let id = ids[t] - u.first;
  if (links[u.t + t] != 0u || id < 0 || u32(id) >= u.v) { return; }
  let col = i % u.h;
  let o = u32(id) * u.h + col;
  var acc = f32(out[o]);
  var s = t;
  loop {
    acc += f32(grad[s * u.h + col]);
    s = links[s];
    if (s >= u.t) { break; }
  }
  out[o] = ${out}(acc);
}`;
}

/** How WebGPU finds each id's positions; both add them in position order, so results are bit-for-bit equal. */
export type ScatterAddMethod = 'auto' | 'links' | 'sort';

/**
 * From this many positions on, 'auto' sorts: the link scan's O(T^2) comparisons (about 2M at
 * 2048 tokens) then cost more than the sort's ~7 extra dispatches.
 */
export const SORT_FROM_TOKENS = 1024;

/** out[ids[t], :] += grad[t, :], in place, in position order. */
const scatterAddRowsKernel = defineKernel<RowBlockAttrs & { method: ScatterAddMethod }>()('scatterAddRows', { inputs: ['grad', 'ids'], outputs: ['out'] });

registerKernel(scatterAddRowsKernel, {
  cpu(backend: CpuBackend, { inputs: { grad, ids }, outputs: { out }, attrs: { firstRow, totalRows } }) {
    const [v, h] = out.shape as [number, number];
    const g = backend.values(grad.storage), idv = backend.view(ids.storage);
    for (let t = 0; t < idv.length; t++) {
      if (idv[t]! < 0 || idv[t]! >= totalRows) throw idError('scatterAddRows', idv[t]!, t, totalRows);
    }
    const acc = Float64Array.from(backend.values(out.storage));
    for (let t = 0; t < idv.length; t++) {
      const local = idv[t]! - firstRow;
      if (local < 0 || local >= v) continue; // another block's row
      const row = local * h;
      for (let c = 0; c < h; c++) acc[row + c]! += g[t * h + c]!;
    }
    const view = backend.view(out.storage);
    for (let k = 0; k < acc.length; k++) view[k] = out.dtype === 'f16' ? f32ToF16Bits(acc[k]!) : acc[k]!;
  },
  webgpu(backend, { inputs: { grad, ids }, outputs: { out }, attrs: { firstRow, method } }) {
    const [v, h] = out.shape as [number, number];
    const t = ids.size;
    if (t * h === 0 || v === 0) return;
    if (method === 'sort' || (method === 'auto' && t >= SORT_FROM_TOKENS)) {
      dispatchSortedScatterAdd(backend, grad.storage, ids.storage, out.storage, { t, h, v, firstRow }, wgslType(grad.dtype), wgslType(out.dtype));
      return;
    }
    // backend scratch, counted as `staging` like readback buffers (tensor bytes stay equal across backends)
    const links = backend.allocate('i32', 2 * t, 'staging', 'scatterAddRows links');
    try {
      backend.dispatch({ label: 'scatterAddRows links', source: LINKS_SOURCE, buffers: [ids.storage, links], uniforms: packUniforms([['u32', t]]), workgroups: grid1D(t) });
      backend.dispatch({ label: 'scatterAddRows mark', source: MARK_SOURCE, buffers: [links], uniforms: packUniforms([['u32', t]]), workgroups: grid1D(t) });
      backend.dispatch({
        label: 'scatterAddRows',
        source: accumulateSource(wgslType(grad.dtype), wgslType(out.dtype)),
        buffers: [grad.storage, ids.storage, links, out.storage],
        uniforms: packUniforms([['u32', t * h], ['u32', h], ['u32', t], ['u32', v], ['i32', firstRow]]),
        workgroups: grid1D(t * h),
      });
    } finally {
      backend.free(links); // safe at once: any later user of this buffer is recorded after these dispatches
    }
  },
});

/** Options of scatterAddRows: the output dtype (default: the gradient's), category and label. */
export interface ScatterAddRowsOptions extends RowsOptions {
  dtype?: DType;
  /** WebGPU's way of grouping positions by id (default 'auto'); every method gives the same bits. */
  method?: ScatterAddMethod;
  /** The output is this row block of a larger table: only ids in it add, others are skipped (see RowBlockAttrs). */
  rowBlock?: RowBlockAttrs;
}

/**
 * The gradient of gatherRows: out[v, :] = sum of grad[t, :] over the positions t with ids[t] = v,
 * for `grad` [...ids.shape, H] -> [V, H]. Deterministic, without float atomics: each row's
 * gradients are added in position order, in f32 (f64 on cpu, rounded once).
 *
 * Cost on WebGPU, linear in tokens from SORT_FROM_TOKENS on: a stable radix sort of the positions
 * by id (kernels/scatter-add-sort.ts: 3 dispatches per 8 bits of V, O(T) each) then O(T*H)
 * gradient reads. Below it, 'links': each position linked to the next one with the same id by a
 * forward scan, O(T^2/2) id comparisons at worst, in three dispatches.
 * Ids outside 0..V-1 are an error on the cpu backend and are skipped on WebGPU.
 */
export function scatterAddRows(grad: Tensor, ids: Tensor, numRows: number, options: ScatterAddRowsOptions = {}): Tensor {
  grad.use('scatterAddRows'); ids.use('scatterAddRows');
  checkIds('scatterAddRows', ids);
  if (!Number.isSafeInteger(numRows) || numRows < 0) throw new ShapeError(`scatterAddRows: numRows must be an integer >= 0, got ${numRows}`);
  const lead = grad.shape.slice(0, -1);
  if (grad.rank !== ids.rank + 1 || lead.some((d, k) => d !== ids.shape[k])) {
    throw new ShapeError(`scatterAddRows: grad ${grad.describe()} must be [...ids.shape, H] for ids ${formatShape(ids.shape)}`);
  }
  const dtype = options.dtype ?? grad.dtype;
  if (grad.dtype === 'i32' || dtype === 'i32') {
    throw new DTypeError(`scatterAddRows: gradients and output must be float, got ${grad.dtype} -> ${dtype}`);
  }
  const h = grad.shape[grad.rank - 1]!;
  const out = zeros([numRows, h], { dtype, device: grad.backend, category: options.category, label: options.label });
  const method = options.method ?? 'auto';
  if (!['auto', 'links', 'sort'].includes(method)) throw new StepError(`scatterAddRows: method must be 'auto', 'links' or 'sort', got ${JSON.stringify(method)}`);
  const where = options.rowBlock ?? wholeTable(numRows);
  checkBlock('scatterAddRows', numRows, where);
  if (ids.size > 0) runKernel(scatterAddRowsKernel, { inputs: { grad, ids }, outputs: { out }, attrs: { ...where, method } });
  return out;
}
