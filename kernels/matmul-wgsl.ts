/**
 * WGSL generators for matmul: C[z] = op(A[z]) · op(B[z]), f32 accumulate.
 *
 * Shapes travel in uniforms; the source depends only on the compile-time choices in
 * `MatmulVariant`, so one pipeline serves every shape of that variant. Element (m, k) of A lives
 * at m*lda + k, or k*lda + m when transposed; element (k, n) of B at k*ldb + n, or n*ldb + k when
 * transposed. The row pitches lda/ldb equal K, M or N for a tensor as stored, or the next
 * multiple of 4 for an operand the webgpu kernel re-pitched so that it binds as vec4. Loads go
 * through clamped row/column indices (edge tiles read valid memory and never store it); every
 * store is guarded.
 *
 * Why this shape (shared/notes/lavapipe-performance.md): on llvmpipe each invocation is one SIMD
 * lane, a storage load costs ~8-10 instructions per scalar (a vec4 load is cheaper per float,
 * measured), while `subgroupBroadcast` costs ~3 and no memory access. So each lane loads A for a
 * few rows of the tile and broadcasts it to the others, each lane owns `cols` adjacent columns of
 * C for all `rows` rows, and the k loop is unrolled by `kStep` with each accumulator updated for
 * consecutive k back to back. Shared memory and barriers are a net loss there: neither kernel
 * uses them.
 */

import { cachedSource } from './wgsl.js';

export interface MatmulVariant {
  /** 'subgroup': the broadcast kernel; 'plain': register blocking only (no subgroups needed). */
  kind: 'subgroup' | 'plain';
  transA: boolean;
  transB: boolean;
  /** Storage type of A, B and C (accumulation is always f32). */
  dtype: 'f32' | 'f16';
  /** Rows of C per workgroup (subgroup) or per invocation (plain). */
  rows: number;
  /** Adjacent columns of C per invocation (a multiple of 4). */
  cols: number;
  /** Subgroup size the source is unrolled for (subgroup kernel; 0 for plain). */
  subgroup: number;
  /** Invocations per workgroup (subgroup kernel: a multiple of `subgroup`; plain: 64 as 8x8). */
  lanes: number;
  /** k values per main-loop iteration (a multiple of 4). */
  kStep: number;
  /** A bound as vec4: needs lda % 4 == 0. Subgroup kernel only. */
  vecA: boolean;
  /** B bound as vec4: needs ldb % 4 == 0. Subgroup kernel only. */
  vecB: boolean;
  /**
   * B read from an rgba32float texture packed by matmul-texture.ts (texel (x, y) = B[k = y][4x..4x+3],
   * matrices stacked along y, zero past N, width whole tiles): ~2 instructions per float on
   * llvmpipe instead of ~8-10. Subgroup kernel with cols == 4 only; vecB is then unused and the
   * `ldb` uniform holds the first texel column of the texture block (B wider than a block).
   */
  texB: boolean;
  /**
   * With texB and transB: the texture holds B^T as stored (texel (x, y) = B^T[n = y][4x..4x+3], one
   * row per column of C, rows from the block's first column, copied straight from the buffer by
   * matmul-texture.ts), so no transposing pack. A lane reads one texel per column for 4 k and
   * regroups them (free: a vec4's components are separate registers on llvmpipe). Needs K % kStep == 0.
   */
  texStored: boolean;
  /**
   * C written transposed: the kernel computes P = C^T (its M, N are C's N, M) and stores P[r][c] at
   * C[c][r]. Used for products with few columns (LoRA rank 8), run as C^T = op(B)^T·op(A)^T.
   */
  transC: boolean;
  /**
   * C bound as vec4 and stored one vec4 per row and column group (needs N % 4 == 0, not transC):
   * 4x fewer guarded stores, which matter when K is short (the LM head's dW: K = tokens of a chunk).
   */
  vecC: boolean;
}

/**
 * Uniform struct shared by both kernels (packed in matmul-webgpu.ts). Batch dims: up to 4, innermost last.
 * seg (texture path): k values per texture segment and texels between segments; a B whose K exceeds the
 * texture height is packed as segments of K side by side (matmul-texture.ts), else one segment of K.
 */
export const UNIFORM_STRUCT = `struct U {
  M: u32, N: u32, K: u32, zBase: u32,
  yBase: u32, xBase: u32, lda: u32, ldb: u32,
  bd: vec4u, sa: vec4u, sb: vec4u,
  seg: vec4u,
}`;

/** Columns of C a workgroup covers along x. */
export function tileCols(v: MatmulVariant): number {
  return v.kind === 'subgroup' ? v.lanes * v.cols : 8 * v.cols;
}

/** Rows of C a workgroup covers along y. */
export function tileRows(v: MatmulVariant): number {
  return v.kind === 'subgroup' ? v.rows : 8 * v.rows;
}

const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

/** Load expressions for one operand, hiding whether it is bound as scalars or vec4s and f16 or f32. */
class Operand {
  constructor(readonly name: string, readonly vec: boolean, readonly f16: boolean) {}

  /** One element at flat index `idx`, as f32. */
  scalar(idx: string): string {
    const e = this.vec ? `${this.name}[(${idx}) / 4u][(${idx}) % 4u]` : `${this.name}[${idx}]`;
    return this.f16 ? `f32(${e})` : e;
  }

  /** Four consecutive elements starting at `idx` (a multiple of 4 when bound as vec4), as vec4f. */
  quad(idx: string): string {
    if (this.vec) {
      const e = `${this.name}[(${idx}) / 4u]`;
      return this.f16 ? `vec4f(${e})` : e;
    }
    return `vec4f(${range(4).map((i) => this.scalar(`${idx} + ${i}u`)).join(', ')})`;
  }

  binding(index: number, type: string, access: string): string {
    return `@group(0) @binding(${index}) var<storage, ${access}> ${this.name}: array<${this.vec ? `vec4<${type}>` : type}>;`;
  }
}

/** Bindings, uniforms and the batch-offset helper both kernels start with. */
function prelude(v: MatmulVariant, A: Operand, B: Operand): string {
  const t = v.dtype;
  return `${t === 'f16' ? 'enable f16;\n' : ''}${v.kind === 'subgroup' ? 'enable subgroups;\n' : ''}
${UNIFORM_STRUCT}
${A.binding(0, t, 'read')}
${v.texB ? '@group(0) @binding(1) var bt: texture_2d<f32>;' : B.binding(1, t, 'read')}
@group(0) @binding(2) var<storage, read_write> c: array<${v.vecC ? `vec4<${t}>` : t}>;
@group(0) @binding(3) var<uniform> u: U;

// Offsets of batch entry z in A and B: z decoded over the (broadcast) output batch dims.
fn batchOffsets(z: u32) -> vec2u {
  var rem = z;
  var offA = 0u;
  var offB = 0u;
  for (var d = 3; d >= 0; d--) {
    let i = rem % u.bd[d];
    rem = rem / u.bd[d];
    offA += i * u.sa[d];
    offB += i * u.sb[d];
  }
  return vec2u(offA, offB);
}
`;
}

/** Guarded stores of the accumulators `acc{r}_{g}` (vec4 groups of columns). */
function stores(v: MatmulVariant, rowCount: number, row: (r: number) => string): string {
  const out: string[] = [];
  const conv = (x: string): string => (v.dtype === 'f16' ? `f16(${x})` : x);
  for (const r of range(rowCount)) {
    out.push(`  if (${row(r)} < M) {`);
    // Row r of the kernel's product is column r of C when C is written transposed.
    out.push(v.transC ? `    let o = cBase + col0 * M + ${row(r)};` : `    let o = cBase + (${row(r)}) * N + col0;`);
    for (const g of range(v.cols / 4)) {
      if (v.vecC) {
        // N % 4 == 0: col0 + 4g < N means the whole group is inside, and o is a multiple of 4.
        out.push(`    if (col0 + ${g * 4}u < N) { c[(o + ${g * 4}u) / 4u] = ${v.dtype === 'f16' ? `vec4<f16>(acc${r}_${g})` : `acc${r}_${g}`}; }`);
        continue;
      }
      for (const q of range(4)) {
        const col = g * 4 + q;
        out.push(`    if (col0 + ${col}u < N) { c[o + ${v.transC ? `${col}u * M` : `${col}u`}] = ${conv(`acc${r}_${g}[${q}]`)}; }`);
      }
    }
    out.push('  }');
  }
  return out.join('\n');
}

/**
 * B for this lane's columns: per-k vec4s `bv{kk}_{g}` (k + kk, column group g) and the setup
 * they need. Transposed B with vec4 binding loads 4 k of one column and regroups them (free:
 * on llvmpipe a vec4's components are separate registers).
 */
function bColumns(v: MatmulVariant, B: Operand) {
  const groups = v.cols / 4;
  const setup: string[] = [];
  if (v.texB && v.texStored) {
    // Texture rows are columns of C from the block's first (ldb); a texel holds 4 consecutive k.
    setup.push('  let tr = i32(col0 - ldb);');
    const load = (k: string, n: number): string[] => {
      if (n === 1) return [`    let bv0_0 = vec4f(${range(4).map((q) => `textureLoad(bt, vec2i(i32(${k} / 4u), tr + ${q}), 0)[${k} % 4u]`).join(', ')});`];
      const L: string[] = [];
      for (const h of range(n / 4)) for (const q of range(4)) L.push(`    let bc${q}_${h} = textureLoad(bt, vec2i(i32(${k} / 4u + ${h}u), tr + ${q}), 0);`);
      for (const kk of range(n)) L.push(`    let bv${kk}_0 = vec4f(${range(4).map((q) => `bc${q}_${kk >> 2}[${kk & 3}]`).join(', ')});`);
      return L;
    };
    return { setup, load };
  }
  if (v.texB) {
    // One texel per lane and k; the texture is padded to whole tiles, so no clamping (bo.y is a texel row).
    setup.push('  let tx = i32(col0 / 4u - ldb); // ldb: the texture block\'s first texel column');
    // txs, s0: the current K segment's texel column and first k (the main loop walks the segments)
    const load = (k: string, n: number): string[] =>
      range(n).map((kk) => `    let bv${kk}_0 = textureLoad(bt, vec2i(txs, i32(bo.y + ${k} - s0 + ${kk}u)), 0);`);
    return { setup, load };
  }
  if (!v.transB && v.vecB) {
    // ldb % 4 == 0: clamp whole column groups (padding columns past N are read, never stored).
    for (const g of range(groups)) setup.push(`  let bo${g} = bo.y + min(col0 + ${g * 4}u, ldb - 4u);`);
  } else {
    for (const q of range(v.cols)) setup.push(`  let bo${q} = bo.y + min(col0 + ${q}u, N - 1u)${v.transB ? ' * ldb' : ''};`);
  }
  /** Loads for k values k..k+n-1 (n a multiple of 4 when `quads`). */
  const load = (k: string, n: number, quads: boolean): string[] => {
    const L: string[] = [];
    if (!v.transB) {
      for (const kk of range(n)) {
        for (const g of range(groups)) {
          const e = v.vecB ? B.quad(`bo${g} + (${k} + ${kk}u) * ldb`)
            : `vec4f(${range(4).map((q) => B.scalar(`bo${g * 4 + q} + (${k} + ${kk}u) * ldb`)).join(', ')})`;
          L.push(`    let bv${kk}_${g} = ${e};`);
        }
      }
    } else if (quads) {
      for (const q of range(v.cols)) for (const h of range(n / 4)) L.push(`    let bc${q}_${h} = ${B.quad(`bo${q} + ${k} + ${h * 4}u`)};`);
      for (const kk of range(n)) {
        for (const g of range(groups)) {
          L.push(`    let bv${kk}_${g} = vec4f(${range(4).map((q) => `bc${g * 4 + q}_${kk >> 2}[${kk & 3}]`).join(', ')});`);
        }
      }
    } else {
      for (const kk of range(n)) {
        for (const g of range(groups)) {
          L.push(`    let bv${kk}_${g} = vec4f(${range(4).map((q) => B.scalar(`bo${g * 4 + q} + ${k} + ${kk}u`)).join(', ')});`);
        }
      }
    }
    return L;
  };
  return { setup, load };
}

/**
 * A for the tile's rows, shared through broadcasts. Row-owner layout: lane l loads rows l, l+S,
 * ... (4 k at a time); for transposed A bound as vec4 (lda % 4 == 0), lane l loads row groups
 * 4l..4l+3, 4(l+S).. at each k instead, so every load is one aligned vec4.
 */
function aRows(v: MatmulVariant, A: Operand) {
  const S = v.subgroup;
  const setup: string[] = [];
  const rowGroups = v.transA && v.vecA;
  const owners = rowGroups ? Math.ceil(v.rows / 4 / S) : Math.ceil(v.rows / S);
  for (const j of range(owners)) {
    if (rowGroups) setup.push(`  let ao${j} = bo.x + min(row0 + (sid + ${j * S}u) * 4u, lda - 4u);`);
    else setup.push(`  let ao${j} = bo.x + min(row0 + sid + ${j * S}u, M - 1u)${v.transA ? '' : ' * lda'};`);
  }
  /** Loads for k values k..k+n-1, and the expression giving row r's values at k+4h..k+4h+3 (or k when n == 1). */
  const load = (k: string, n: number): string[] => {
    const L: string[] = [];
    for (const j of range(owners)) {
      if (rowGroups) {
        for (const kk of range(n)) L.push(`    let x${j}_${kk} = ${A.quad(`ao${j} + (${k} + ${kk}u) * lda`)};`);
      } else if (n === 1) {
        L.push(`    let x${j}_0 = ${A.scalar(v.transA ? `ao${j} + ${k} * lda` : `ao${j} + ${k}`)};`);
      } else {
        for (const h of range(n / 4)) {
          const e = v.transA
            ? `vec4f(${range(4).map((i) => A.scalar(`ao${j} + (${k} + ${h * 4 + i}u) * lda`)).join(', ')})`
            : A.quad(`ao${j} + ${k} + ${h * 4}u`);
          L.push(`    let x${j}_${h} = ${e};`);
        }
      }
    }
    return L;
  };
  /** Row r's A values for k chunk h (vec4) or, when single, for one k (scalar). */
  const rowValue = (r: number, h: number, single: boolean): string => {
    if (rowGroups) {
      const g = r >> 2, j = Math.floor(g / S), lane = g % S;
      if (single) return `subgroupBroadcast(x${j}_0[${r & 3}], ${lane}u)`;
      return `vec4f(${range(4).map((i) => `subgroupBroadcast(x${j}_${h * 4 + i}[${r & 3}], ${lane}u)`).join(', ')})`;
    }
    return `subgroupBroadcast(x${Math.floor(r / S)}_${h}, ${r % S}u)`;
  };
  return { setup, load, rowValue };
}

/** The subgroup broadcast kernel (see the file comment). */
export function subgroupMatmulSource(v: MatmulVariant): string {
  if (v.cols % 4 !== 0 || v.lanes % v.subgroup !== 0 || v.kStep % 4 !== 0 || (v.texB && v.cols !== 4) || (v.texStored && !(v.texB && v.transB)) || (v.vecC && v.transC)) {
    throw new Error(`matmul: invalid subgroup variant ${JSON.stringify(v)}`);
  }
  const A = new Operand('a', v.vecA, v.dtype === 'f16');
  const B = new Operand('b', v.vecB, v.dtype === 'f16');
  const groups = v.cols / 4;
  const a = aRows(v, A);
  const b = bColumns(v, B);
  const L: string[] = [prelude(v, A, B)];
  L.push(`@compute @workgroup_size(${v.lanes})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lidx: u32,
        @builtin(subgroup_invocation_id) sid: u32) {
  let M = u.M; let N = u.N; let K = u.K; let lda = u.lda; let ldb = u.ldb;
  let z = wid.z + u.zBase;
  let bo = batchOffsets(z);
  let row0 = (wid.y + u.yBase) * ${v.rows}u;
  let col0 = (wid.x + u.xBase) * ${v.lanes * v.cols}u + lidx * ${v.cols}u;
  let cBase = z * M * N;`);
  L.push(...a.setup, ...b.setup);
  for (const r of range(v.rows)) for (const g of range(groups)) L.push(`  var acc${r}_${g} = vec4f(0.0);`);
  // The texture path walks K in segments (one unless K exceeds the texture height); the others in one.
  const segments = v.texB && !v.texStored;
  if (segments) {
    L.push(`  for (var s0 = 0u; s0 < K; s0 += u.seg.x) {
  let kEnd = min(K, s0 + u.seg.x);
  let txs = tx + i32((s0 / u.seg.x) * u.seg.y);
  let kMain = kEnd - (kEnd - s0) % ${v.kStep}u;
  for (var k = s0; k < kMain; k += ${v.kStep}u) {`);
  } else {
    L.push(`  let kMain = K - K % ${v.kStep}u;
  for (var k = 0u; k < kMain; k += ${v.kStep}u) {`);
  }
  L.push(...a.load('k', v.kStep), ...b.load('k', v.kStep, true));
  for (const r of range(v.rows)) {
    for (const h of range(v.kStep / 4)) {
      L.push(`    { let s = ${a.rowValue(r, h, false)};`);
      for (const g of range(groups)) {
        const terms = range(4).map((i) => `s[${i}] * bv${h * 4 + i}_${g}`).join(' + ');
        L.push(`      acc${r}_${g} = acc${r}_${g} + ${terms};${g === groups - 1 ? ' }' : ''}`);
      }
    }
  }
  L.push('  }');
  // The k tail (K % kStep values, of the segment), one k at a time.
  L.push(`  for (var k = kMain; k < ${segments ? 'kEnd' : 'K'}; k++) {`);
  L.push(...a.load('k', 1), ...b.load('k', 1, false));
  for (const r of range(v.rows)) {
    L.push(`    { let s = ${a.rowValue(r, 0, true)};`);
    for (const g of range(groups)) L.push(`      acc${r}_${g} = acc${r}_${g} + s * bv0_${g};${g === groups - 1 ? ' }' : ''}`);
  }
  L.push('  }');
  if (segments) L.push('  }'); // the segment loop
  L.push(stores(v, v.rows, (r) => `row0 + ${r}u`));
  L.push('}');
  return L.join('\n');
}

/**
 * The fallback without subgroups: an 8x8 workgroup, each invocation computes `rows` x `cols`
 * of C from its own scalar loads.
 */
export function plainMatmulSource(v: MatmulVariant): string {
  const A = new Operand('a', false, v.dtype === 'f16');
  const B = new Operand('b', false, v.dtype === 'f16');
  const groups = v.cols / 4;
  const L: string[] = [prelude(v, A, B)];
  L.push(`@compute @workgroup_size(8, 8)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let M = u.M; let N = u.N; let K = u.K; let lda = u.lda; let ldb = u.ldb;
  let z = wid.z + u.zBase;
  let bo = batchOffsets(z);
  let row0 = ((wid.y + u.yBase) * 8u + lid.y) * ${v.rows}u;
  let col0 = ((wid.x + u.xBase) * 8u + lid.x) * ${v.cols}u;
  let cBase = z * M * N;`);
  for (const r of range(v.rows)) L.push(`  let ao${r} = bo.x + min(row0 + ${r}u, M - 1u)${v.transA ? '' : ' * lda'};`);
  for (const q of range(v.cols)) L.push(`  let bo${q} = bo.y + min(col0 + ${q}u, N - 1u)${v.transB ? ' * ldb' : ''};`);
  for (const r of range(v.rows)) for (const g of range(groups)) L.push(`  var acc${r}_${g} = vec4f(0.0);`);
  L.push('  for (var k = 0u; k < K; k++) {');
  for (const g of range(groups)) {
    L.push(`    let bv${g} = vec4f(${range(4).map((q) => B.scalar(v.transB ? `bo${g * 4 + q} + k` : `bo${g * 4 + q} + k * ldb`)).join(', ')});`);
  }
  for (const r of range(v.rows)) {
    L.push(`    { let s = ${A.scalar(v.transA ? `ao${r} + k * lda` : `ao${r} + k`)};`);
    for (const g of range(groups)) L.push(`      acc${r}_${g} = acc${r}_${g} + s * bv${g};${g === groups - 1 ? ' }' : ''}`);
  }
  L.push('  }');
  L.push(stores(v, v.rows, (r) => `row0 + ${r}u`));
  L.push('}');
  return L.join('\n');
}

/** The kernel's source for a variant, generated once per variant (`cachedSource`). */
export const matmulSource: (v: MatmulVariant) => string = cachedSource((v: MatmulVariant) =>
  v.kind === 'subgroup' ? subgroupMatmulSource(v) : plainMatmulSource(v));
