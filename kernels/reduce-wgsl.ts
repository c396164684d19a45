import { dimAt } from './layout-strides.js';
import { enables, LINEAR_INDEX, LINEAR_PARAMS } from './wgsl.js';

/** What a reduction combines: plain sum, running max, or a sum of squares (first pass only). */
export type ReduceKind = 'sum' | 'max' | 'sumsq';

/**
 * How a pass reads its input:
 * - `scalar`: any walk, one element per load;
 * - `rows4`: the reduced elements of each output are contiguous and 4-aligned: each invocation
 *   loads vec4s of its (contiguous) chunk, then combines the 4 lanes and a scalar tail;
 * - `cols4`: the kept innermost dim is contiguous with a size divisible by 4: each invocation
 *   owns 4 neighbouring outputs and accumulates a vec4 per reduced element.
 * On llvmpipe a vec4 load costs about what a scalar one does, so the vec4 modes read 3-4x faster.
 */
export type PassMode = 'scalar' | 'rows4' | 'cols4';

/** Uniforms shared by every mode (one packing routine): 12 scalars, then 4 dim arrays. */
const UNIFORMS = `struct U {
  n: u32, chunks: u32, chunk: u32, total: u32, nk: u32, nr: u32, out_off: u32, scale: f32, init: u32, outer: u32, o_fast: u32, groups: u32,
  kshape: array<vec4u, 2>, kst: array<vec4u, 2>, rshape: array<vec4u, 2>, rst: array<vec4u, 2>,
}`;

/** WGSL: `base` = the input offset of output `o` through the kept walk. */
const KEPT_BASE = `var rest = o;
  var base = 0u;
  for (var d = 0u; d < u.nk; d++) {
    let size = ${dimAt('kshape', 'd')};
    base += (rest % size) * ${dimAt('kst', 'd')};
    rest = rest / size;
  }`;

/**
 * WGSL: walks reduced indices [r, r1) row by row of the innermost reduced dim (one div/mod
 * decode per row), calling `step(off)` with each element's offset from `base`.
 */
function reducedRange(step: string): string {
  return `let s0 = u.rshape[0].x;
    let st0 = u.rst[0].x;
    while (r < r1) {
      let j = r % s0;
      var q = r / s0;
      var off = base + j * st0;
      for (var d = 1u; d < u.nr; d++) {
        let size = ${dimAt('rshape', 'd')};
        off += (q % size) * ${dimAt('rst', 'd')};
        q = q / size;
      }
      let end = min(r + s0 - j, r1);
      for (; r < end; r++) { ${step} off += st0; }
    }`;
}

interface Parts { acc: 'f32' | 'i32'; head: string; store: (v: string) => string }

/** Scalar and vec4 helpers common to every mode: NaN-aware max (through the bits, since WGSL lets compilers assume NaN never occurs). */
function parts(kind: ReduceKind, inT: string, outT: string): Parts {
  const acc = inT === 'i32' ? 'i32' : 'f32';
  const sq = kind === 'sumsq';
  const combine = kind !== 'max' ? 'return a + b;'
    : acc === 'i32' ? 'return max(a, b);'
    : 'if (is_nan(a)) { return a; } if (is_nan(b)) { return b; } return max(a, b);';
  const combine4 = kind !== 'max' || acc === 'i32' ? combine
    : 'return select(select(max(a, b), b, is_nan4(b)), a, is_nan4(a));';
  const head = `${enables(inT === 'f16' || outT === 'f16' ? 'f16' : 'f32')}
${UNIFORMS}
fn is_nan(x: f32) -> bool { return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u; }
fn is_nan4(x: vec4f) -> vec4<bool> { return (bitcast<vec4u>(x) & vec4u(0x7fffffffu)) > vec4u(0x7f800000u); }
fn combine(a: ${acc}, b: ${acc}) -> ${acc} { ${combine} }
fn combine4(a: vec4<${acc}>, b: vec4<${acc}>) -> vec4<${acc}> { ${combine4} }
fn sq(v: ${acc}) -> ${acc} { return ${sq ? 'v * v' : 'v'}; }
fn sq4(v: vec4<${acc}>) -> vec4<${acc}> { return ${sq ? 'v * v' : 'v'}; }`;
  return { acc, head, store: (v) => (acc === 'i32' ? `${outT}(${v})` : `${outT}(${v} * u.scale)`) };
}

/**
 * scalar mode: invocation i combines chunk c of output o's row, in order, into dst[out_off + i]:
 * i = o * chunks + c ([outer, chunks] partials) or, when `o_fast` (the kept dims are the
 * contiguous ones, e.g. a sum over axis 0), i = c * outer + o ([chunks, outer] partials), so that
 * neighbouring invocations read neighbouring elements. With one reduced dim, chunk c takes
 * r = c, c + chunks, ...; with several, the contiguous range [c * chunk, (c + 1) * chunk).
 * The accumulator starts from the bits `u.init` (0, or -inf / i32 min for max).
 */
export function scalarSource(kind: ReduceKind, inT: string, outT: string): string {
  const p = parts(kind, inT, outT);
  return `${p.head}
@group(0) @binding(0) var<storage, read> src: array<${inT}>;
@group(0) @binding(1) var<storage, read_write> dst: array<${outT}>;
@group(0) @binding(2) var<uniform> u: U;
fn load(k: u32) -> ${p.acc} { return sq(${p.acc}(src[k])); }
@compute @workgroup_size(64) fn main(${LINEAR_PARAMS}) {
  ${LINEAR_INDEX}
  if (i >= u.n) { return; }
  var o = i / u.chunks;
  var c = i - o * u.chunks;
  if (u.o_fast != 0u) {
    c = i / u.outer;
    o = i - c * u.outer;
  }
  ${KEPT_BASE}
  var acc = bitcast<${p.acc}>(u.init);
  if (u.nr <= 1u) {
    let st = select(0u, u.rst[0].x, u.nr == 1u);
    for (var r = c; r < u.total; r += u.chunks) { acc = combine(acc, load(base + r * st)); }
  } else {
    let r1 = min((c + 1u) * u.chunk, u.total);
    var r = c * u.chunk;
    ${reducedRange('acc = combine(acc, load(off));')}
  }
  dst[u.out_off + i] = ${p.store('acc')};
}`;
}

/**
 * rows4 mode: i = o * chunks + c; chunk c of row o is [c * chunk, min((c + 1) * chunk, total)),
 * chunk a multiple of 4 and every row 4-aligned, read as vec4s through `src4` and the last
 * (total % 4) elements through `src` (the same buffer bound twice, both read-only).
 */
export function rows4Source(kind: ReduceKind, inT: string, outT: string): string {
  const p = parts(kind, inT, outT);
  return `${p.head}
@group(0) @binding(0) var<storage, read> src4: array<vec4<${inT}>>;
@group(0) @binding(1) var<storage, read> src: array<${inT}>;
@group(0) @binding(2) var<storage, read_write> dst: array<${outT}>;
@group(0) @binding(3) var<uniform> u: U;
@compute @workgroup_size(64) fn main(${LINEAR_PARAMS}) {
  ${LINEAR_INDEX}
  if (i >= u.n) { return; }
  let o = i / u.chunks;
  let c = i - o * u.chunks;
  ${KEPT_BASE}
  let r0 = c * u.chunk;
  let r1 = min(r0 + u.chunk, u.total);
  let full = r0 + ((r1 - r0) & ~3u);
  var acc4 = vec4<${p.acc}>(bitcast<${p.acc}>(u.init));
  let k1 = (base + full) / 4u;
  for (var k = (base + r0) / 4u; k < k1; k++) { acc4 = combine4(acc4, sq4(vec4<${p.acc}>(src4[k]))); }
  var acc = combine(combine(acc4.x, acc4.y), combine(acc4.z, acc4.w));
  for (var r = full; r < r1; r++) { acc = combine(acc, sq(${p.acc}(src[base + r]))); }
  dst[u.out_off + i] = ${p.store('acc')};
}`;
}

/**
 * cols4 mode: i = c * groups + g; outputs 4g..4g+3 are neighbours in memory (the kept innermost
 * dim has stride 1 and a size divisible by 4, so every other stride is a multiple of 4). Chunk c
 * is the contiguous reduced range [c * chunk, (c + 1) * chunk); partials are [chunks, outer].
 */
export function cols4Source(kind: ReduceKind, inT: string, outT: string): string {
  const p = parts(kind, inT, outT);
  return `${p.head}
@group(0) @binding(0) var<storage, read> src4: array<vec4<${inT}>>;
@group(0) @binding(1) var<storage, read_write> dst: array<${outT}>;
@group(0) @binding(2) var<uniform> u: U;
@compute @workgroup_size(64) fn main(${LINEAR_PARAMS}) {
  ${LINEAR_INDEX}
  if (i >= u.n) { return; }
  let c = i / u.groups;
  let o = (i - c * u.groups) * 4u;
  ${KEPT_BASE}
  var acc4 = vec4<${p.acc}>(bitcast<${p.acc}>(u.init));
  let r1 = min((c + 1u) * u.chunk, u.total);
  var r = c * u.chunk;
  ${reducedRange('acc4 = combine4(acc4, sq4(vec4<' + p.acc + '>(src4[off / 4u])));')}
  let at = u.out_off + c * u.outer + o;
  for (var j = 0u; j < 4u; j++) { dst[at + j] = ${p.store('acc4[j]')}; }
}`;
}
