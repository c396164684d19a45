/**
 * The embedding gradient for many tokens per step, linear in tokens: a stable LSD radix sort of
 * the positions by id, then one segment sum per (id, column) in position order. Deterministic
 * without float atomics, and bit-for-bit equal to the link method of layout-rows.ts (both add a
 * row's gradients in position order, in f32), which is quadratic in tokens in the worst case.
 *
 * Each radix pass (8 bits of the key; 2 passes for a vocabulary up to 65,535) is 3 dispatches:
 *   histogram   one invocation per block of 256 positions: counts of each digit in the block;
 *   scan        one invocation per digit: exclusive prefix over the blocks (in place), and the digit's total;
 *   scatter     one invocation per block: the digit starts (prefix of the totals) plus the block's
 *               offsets, then the block's positions written in order (stable).
 * Work: O(T + 256 * T / 256) per pass, O(T * H) for the sums; scratch: 2T + 256 * (T/256 + 1) u32.
 * Ids outside 0..V-1 get the key V (sorted last) and are skipped, as the link method skips them.
 * Then one pass marks segment heads, and one invocation per (sorted index, column) sums a head's segment.
 */
import type { Storage } from '../engine/backend.js';
import type { WebGPUBackend } from '../engine/webgpu/backend.js';
import { enables, grid1D, LINEAR_INDEX, LINEAR_PARAMS, packUniforms } from './wgsl.js';

const BLOCK = 256;
const BINS = 256;

/** The key of position p: its id (less row0, the first row of a row block), or V when out of range. */
const KEY_FN = `fn keyOf(p: u32) -> u32 {
  let id = ids[p] - u.row0;
  if (id < 0 || u32(id) >= u.v) { return u.v; }
  return u32(id);
}`;

/** Position at sorted index i of the previous pass (the identity before the first pass). */
const POS_FN = `fn posAt(i: u32) -> u32 {
  if (u.first != 0u) { return i; }
  return perm_in[i];
}`;

const UNIFORMS = 'struct U { t: u32, v: u32, shift: u32, first: u32, blocks: u32, row0: i32 }';

const HISTOGRAM_SOURCE = `${UNIFORMS}
@group(0) @binding(0) var<storage, read> ids: array<i32>;
@group(0) @binding(1) var<storage, read> perm_in: array<u32>;
@group(0) @binding(2) var<storage, read_write> hist: array<u32>;
@group(0) @binding(3) var<uniform> u: U;
${KEY_FN}
${POS_FN}
@compute @workgroup_size(64) fn main(${LINEAR_PARAMS}) {
  ${LINEAR_INDEX}
  if (i >= u.blocks) { return; }
  var counts: array<u32, ${BINS}>;
  let end = min((i + 1u) * ${BLOCK}u, u.t);
  for (var k = i * ${BLOCK}u; k < end; k++) {
    let d = (keyOf(posAt(k)) >> u.shift) & ${BINS - 1}u;
    counts[d] += 1u;
  }
  for (var b = 0u; b < ${BINS}u; b++) { hist[b * u.blocks + i] = counts[b]; }
}`;

const SCAN_SOURCE = `${UNIFORMS}
@group(0) @binding(0) var<storage, read_write> hist: array<u32>;
@group(0) @binding(1) var<storage, read_write> totals: array<u32>;
@group(0) @binding(2) var<uniform> u: U;
@compute @workgroup_size(64) fn main(${LINEAR_PARAMS}) {
  ${LINEAR_INDEX}
  if (i >= ${BINS}u) { return; }
  var running = 0u;
  for (var blk = 0u; blk < u.blocks; blk++) {
    let c = hist[i * u.blocks + blk];
    hist[i * u.blocks + blk] = running;
    running += c;
  }
  totals[i] = running;
}`;

const SCATTER_SOURCE = `${UNIFORMS}
@group(0) @binding(0) var<storage, read> ids: array<i32>;
@group(0) @binding(1) var<storage, read> perm_in: array<u32>;
@group(0) @binding(2) var<storage, read> hist: array<u32>;
@group(0) @binding(3) var<storage, read> totals: array<u32>;
@group(0) @binding(4) var<storage, read_write> perm_out: array<u32>;
@group(0) @binding(5) var<uniform> u: U;
${KEY_FN}
${POS_FN}
@compute @workgroup_size(64) fn main(${LINEAR_PARAMS}) {
  ${LINEAR_INDEX}
  if (i >= u.blocks) { return; }
  var cursor: array<u32, ${BINS}>;
  var start = 0u;
  for (var b = 0u; b < ${BINS}u; b++) {
    cursor[b] = start + hist[b * u.blocks + i];
    start += totals[b];
  }
  let end = min((i + 1u) * ${BLOCK}u, u.t);
  for (var k = i * ${BLOCK}u; k < end; k++) {
    let p = posAt(k);
    let d = (keyOf(p) >> u.shift) & ${BINS - 1}u;
    perm_out[cursor[d]] = p;
    cursor[d] += 1u;
  }
}`;

/** Marks of the sorted positions: a segment head holds its id; the rest CONTINUE, or STOP for out-of-range ids (sorted last). */
const CONTINUE = 0xffffffff, STOP = 0xfffffffe;

/** One invocation per sorted index: its mark, so the segment sum reads one word instead of two ids. */
const MARK_SOURCE = `struct U { t: u32, v: u32, row0: i32 }
@group(0) @binding(0) var<storage, read> ids: array<i32>;
@group(0) @binding(1) var<storage, read> perm: array<u32>;
@group(0) @binding(2) var<storage, read_write> marks: array<u32>;
@group(0) @binding(3) var<uniform> u: U;
${KEY_FN}
@compute @workgroup_size(64) fn main(${LINEAR_PARAMS}) {
  ${LINEAR_INDEX}
  if (i >= u.t) { return; }
  let key = keyOf(perm[i]);
  if (key >= u.v) { marks[i] = ${STOP}u; }
  else if (i > 0u && keyOf(perm[i - 1u]) == key) { marks[i] = ${CONTINUE}u; }
  else { marks[i] = key; }
}`;

/** One invocation per (sorted index, column): segment heads sum their segment in position order. */
function segmentSumSource(grad: string, out: string): string {
  return `${enables(grad === 'f16' || out === 'f16' ? 'f16' : 'f32')}
struct U { n: u32, h: u32, t: u32 }
@group(0) @binding(0) var<storage, read> grad: array<${grad}>;
@group(0) @binding(1) var<storage, read> marks: array<u32>;
@group(0) @binding(2) var<storage, read> perm: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<${out}>;
@group(0) @binding(4) var<uniform> u: U;
@compute @workgroup_size(64) fn main(${LINEAR_PARAMS}) {
  ${LINEAR_INDEX}
  if (i >= u.n) { return; }
  let s = i / u.h;
  let key = marks[s];
  if (key >= ${STOP}u) { return; }
  let col = i % u.h;
  let o = key * u.h + col;
  var acc = f32(out[o]);
  var j = s;
  loop {
    acc += f32(grad[perm[j] * u.h + col]);
    j += 1u;
    if (j >= u.t || marks[j] != ${CONTINUE}u) { break; }
  }
  out[o] = ${out}(acc);
}`;
}

/** Radix passes of 8 bits that cover the keys 0..v (v is the out-of-range key). */
export function radixPasses(v: number): number {
  return Math.max(1, Math.ceil(Math.log2(v + 1) / 8));
}

/**
 * out[ids[t] - firstRow, :] += grad[t, :] for T positions of H columns, through the radix sort
 * above (`firstRow`: the first row of a row block, 0 for a whole table; other ids are skipped).
 * `gradType`/`outType` are the WGSL element types.
 */
export function dispatchSortedScatterAdd(backend: WebGPUBackend, grad: Storage, ids: Storage, out: Storage, dims: { t: number; h: number; v: number; firstRow?: number }, gradType: string, outType: string): void {
  const { t, h, v } = dims;
  const row0 = dims.firstRow ?? 0;
  const blocks = Math.ceil(t / BLOCK);
  const scratch = [
    backend.allocate('i32', t, 'staging', 'scatterAddRows sort permutation A'),
    backend.allocate('i32', t, 'staging', 'scatterAddRows sort permutation B'),
  ];
  const hist = backend.allocate('i32', BINS * blocks, 'staging', 'scatterAddRows sort histogram');
  const totals = backend.allocate('i32', BINS, 'staging', 'scatterAddRows sort totals');
  try {
    const passes = radixPasses(v);
    let read = scratch[1]!, write = scratch[0]!; // the first pass reads the identity, not `read`
    for (let p = 0; p < passes; p++) {
      const uniforms = packUniforms([['u32', t], ['u32', v], ['u32', 8 * p], ['u32', p === 0 ? 1 : 0], ['u32', blocks], ['i32', row0]]);
      backend.dispatch({ label: 'scatterAddRows sort histogram', source: HISTOGRAM_SOURCE, buffers: [ids, read, hist], uniforms, workgroups: grid1D(blocks) });
      backend.dispatch({ label: 'scatterAddRows sort scan', source: SCAN_SOURCE, buffers: [hist, totals], uniforms, workgroups: grid1D(BINS) });
      backend.dispatch({ label: 'scatterAddRows sort scatter', source: SCATTER_SOURCE, buffers: [ids, read, hist, totals, write], uniforms, workgroups: grid1D(blocks) });
      [read, write] = [write, read];
    }
    const marks = write; // the spare permutation buffer
    backend.dispatch({ label: 'scatterAddRows segment marks', source: MARK_SOURCE, buffers: [ids, read, marks], uniforms: packUniforms([['u32', t], ['u32', v], ['i32', row0]]), workgroups: grid1D(t) });
    backend.dispatch({
      label: 'scatterAddRows segment sum',
      source: segmentSumSource(gradType, outType),
      buffers: [grad, marks, read, out],
      uniforms: packUniforms([['u32', t * h], ['u32', h], ['u32', t]]),
      workgroups: grid1D(t * h),
    });
  } finally {
    // safe at once: any later user of these buffers is recorded after these dispatches
    for (const s of [...scratch, hist, totals]) backend.free(s);
  }
}
