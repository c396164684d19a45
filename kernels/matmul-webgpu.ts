/** The webgpu kernel of matmul: plans a specialised pipeline and records its dispatches. */
import type { Storage } from '../engine/backend.js';
import { StepError } from '../engine/errors.js';
import type { WebGPUBackend } from '../engine/webgpu/backend.js';
import type { MatmulCall, MatmulLayout } from './matmul-layout.js';
import type { TextureBlocks } from './matmul-texture.js';
import { copyStoredBT, matmulTuning, packBTexture, storedTextureBlocks, textureBlocks } from './matmul-texture.js';

export { matmulTuning };
import type { MatmulVariant } from './matmul-wgsl.js';
import { matmulSource, tileCols, tileRows } from './matmul-wgsl.js';
import { enables, grid1D, LINEAR_INDEX, LINEAR_PARAMS, packUniforms, wgslType, WG_1D } from './wgsl.js';

/** 'subgroup': the subgroup kernel with B from buffers; 'texture': with B packed into a texture wherever it fits. */
export type MatmulKernelKind = 'auto' | 'subgroup' | 'texture' | 'plain';

let preferred: MatmulKernelKind = 'auto';

/**
 * Forces one kernel kind (tests and benchmarks use it to exercise each path); 'auto' picks the
 * subgroup kernel whenever the device supports it, reading B through a texture for products with
 * at least `TEXTURE_MIN_ROWS` rows. Returns the previous setting.
 */
export function setMatmulKernel(kind: MatmulKernelKind): MatmulKernelKind {
  const old = preferred;
  preferred = kind;
  return old;
}

/**
 * The subgroup size the broadcast kernel can be unrolled for, or 0. It needs the 'subgroups'
 * feature and a fixed size (min == max): the kernel assumes a workgroup of that many lanes is
 * exactly one subgroup, which a device with varying sizes does not promise.
 */
export function fixedSubgroupSize(backend: WebGPUBackend): number {
  if (!backend.hasFeature('subgroups')) return 0;
  const { subgroupMinSize: min, subgroupMaxSize: max } = backend.adapter;
  if (!min || min !== max || (min & (min - 1)) !== 0 || min < 4 || min > 128) return 0;
  if (min > backend.limits.maxComputeInvocationsPerWorkgroup) return 0;
  return min;
}

/** How one operand is stored: matrices of `rows` rows of `pitch` contiguous elements. */
function operandRows(l: MatmulLayout, which: 'a' | 'b'): { rows: number; pitch: number } {
  if (which === 'a') return l.transA ? { rows: l.K, pitch: l.M } : { rows: l.M, pitch: l.K };
  return l.transB ? { rows: l.N, pitch: l.K } : { rows: l.K, pitch: l.N };
}

/**
 * Re-pitching: an operand is copied into a buffer with another row pitch before the product when
 * that pays on llvmpipe (measured):
 * - a pitch that is not a multiple of 4 cannot bind as vec4: 19-26 GFLOP per core-second with
 *   scalar loads versus 33-36 with vec4. The copy costs a few loads per element, so it pays once
 *   the other side of the product spans a tile (32).
 * - rows that the kernel reads 32 at a time (A as stored, B when transposed) at a pitch of a
 *   multiple of 2 KiB all fall into the same L1 cache sets: K = 1028 ran ~20% faster per core than
 *   K = 1024. Padding the pitch by 4 elements costs a vec4 copy, worth it for long products.
 */
const REPITCH_MIN_REUSE = 32;
const CACHE_ALIAS_BYTES = 2048;
const CACHE_ALIAS_MIN_REUSE = 1024; // at 512 the copy ate the gain (measured at 2048x512x512)

/**
 * Rows of A from which B goes through a texture: the packing copy reads B once (a few loads and a
 * texel store per 4 floats), each texel then serves M rows at ~2 instructions per float instead of
 * ~8-10 (measured ratios in bench/matmul.bench.ts --compare).
 */
export const TEXTURE_MIN_ROWS = 64;

/**
 * Products with at most this many columns (and at least `SWAP_MIN_ROWS` rows) run as
 * C^T = op(B)^T·op(A)^T, written transposed: a tile spans 4 x subgroup columns, so N = 8 would
 * leave most lanes idle, while C^T puts the lanes along M.
 */
export const SWAP_MAX_COLS = 8;
export const SWAP_MIN_ROWS = 32;

/** The layout of C^T = op(B)^T·op(A)^T: operands swapped, each read with the other transpose flag. */
export function swappedLayout(l: MatmulLayout): MatmulLayout {
  return { ...l, M: l.N, N: l.M, transA: !l.transB, transB: !l.transA, stridesA: l.stridesB, stridesB: l.stridesA };
}

export interface MatmulPlan {
  /** The kernel computes C^T from swapped operands (`swappedLayout`); the variant and pitches are the swapped product's. */
  swap: boolean;
  variant: MatmulVariant;
  /** B's texture blocks when the kernel reads B from a texture (matmul-texture.ts), else null. */
  texture: TextureBlocks | null;
  /** Row pitch the kernel reads A / B with; it differs from the stored pitch when the operand is re-pitched. */
  lda: number;
  ldb: number;
  repitchA: boolean;
  repitchB: boolean;
}

/** Rows per subgroup tile: 8 for short products (one token at generation), else 32; each is one more pipeline (1-4 s to build on llvmpipe). */
const subgroupRows = (M: number): number => (M <= 8 ? 8 : 32);

/** The kernel, its variant and any re-pitching for this problem on this backend. */
export function planMatmul(backend: WebGPUBackend, l: MatmulLayout, dtype: 'f32' | 'f16', sizes: { a: number; b: number }): MatmulPlan {
  const S = fixedSubgroupSize(backend);
  if (preferred === 'subgroup' && S === 0) {
    throw new StepError(`matmul: the subgroup kernel was forced but "${backend.adapter.description}" has no fixed subgroup size`);
  }
  if (S > 0 && preferred !== 'plain' && l.N <= SWAP_MAX_COLS && l.M >= SWAP_MIN_ROWS) {
    const p = planMatmul(backend, swappedLayout(l), dtype, { a: sizes.b, b: sizes.a });
    return { ...p, swap: true, variant: { ...p.variant, transC: true, vecC: false } };
  }
  const base = { transA: l.transA, transB: l.transB, dtype, cols: 4, transC: false, vecC: false };
  const stored = { a: operandRows(l, 'a').pitch, b: operandRows(l, 'b').pitch };
  if (preferred === 'plain' || S === 0) {
    const variant: MatmulVariant = { ...base, kind: 'plain', rows: 4, subgroup: 0, lanes: 64, kStep: 1, vecA: false, vecB: false, texB: false, texStored: false };
    return { swap: false, variant, texture: null, lda: stored.a, ldb: stored.b, repitchA: false, repitchB: false };
  }
  const maxBytes = Math.min(backend.limits.maxStorageBufferBindingSize, backend.limits.maxBufferSize);
  const elementBytes = dtype === 'f16' ? 2 : 4;
  /** The pitch to read `which` with. */
  const pitchFor = (which: 'a' | 'b'): number => {
    const { rows, pitch } = operandRows(l, which);
    const reuse = which === 'a' ? l.N : l.M;
    // Rows read 32 per workgroup: A as stored, B when transposed, and only when there are that many.
    const tileIndexed = which === 'a' ? !l.transA && l.M >= 16 : l.transB && l.N >= 16;
    let ld = pitch;
    if (pitch % 4 !== 0 && reuse >= REPITCH_MIN_REUSE) ld = Math.ceil(pitch / 4) * 4;
    else if (tileIndexed && (pitch * elementBytes) % CACHE_ALIAS_BYTES === 0 && reuse >= CACHE_ALIAS_MIN_REUSE) ld = pitch + 4;
    return ld !== pitch && (sizes[which] / (rows * pitch)) * rows * ld * elementBytes <= maxBytes ? ld : pitch;
  };
  const rows = l.M <= 8 ? subgroupRows(l.M) : l.transA ? matmulTuning.transARows : matmulTuning.rows;
  const lda = pitchFor('a');
  const wantTexture = preferred === 'texture' || (preferred === 'auto' && l.M >= TEXTURE_MIN_ROWS);
  const storedBT = wantTexture && l.M < matmulTuning.storedTransposeMaxRows ? storedTextureBlocks(backend, dtype, sizes.b, l, S * base.cols) : null;
  const texture = storedBT ?? (wantTexture ? textureBlocks(backend, l, sizes.b / (l.K * l.N), S * base.cols) : null);
  const ldb = texture ? stored.b : pitchFor('b');
  // A literal, not a spread of `base`: V8 built this 15-key object through a slow path (~9 us a product, measured).
  const variant: MatmulVariant = {
    kind: 'subgroup', transA: l.transA, transB: l.transB, dtype, rows, cols: base.cols, subgroup: S, lanes: S, kStep: 4,
    vecA: lda % 4 === 0, vecB: !texture && ldb % 4 === 0, texB: !!texture, texStored: !!storedBT, transC: false,
    vecC: matmulTuning.vecStores && l.N % 4 === 0,
  };
  return { swap: false, variant, texture, lda, ldb, repitchA: lda !== stored.a, repitchB: ldb !== stored.b };
}

/** Copies rows of `cols` elements into rows of `ld` >= cols elements, zero-filling the rest (`type` may be a vec4). */
function repitchSource(type: string, scalar: string): string {
  return `${enables(scalar === 'f16' ? 'f16' : 'f32')}
struct U { cols: u32, ld: u32, n: u32 }
@group(0) @binding(0) var<storage, read> src: array<${type}>;
@group(0) @binding(1) var<storage, read_write> dst: array<${type}>;
@group(0) @binding(2) var<uniform> u: U;
@compute @workgroup_size(${WG_1D}) fn main(${LINEAR_PARAMS}) {
  ${LINEAR_INDEX}
  if (i < u.n) {
    let r = i / u.ld;
    let c = i % u.ld;
    dst[i] = select(${type}(), src[r * u.cols + min(c, u.cols - 1u)], c < u.cols);
  }
}`;
}

/** A copy of one operand with row pitch `ld`, in a transient buffer of the backend's own (category staging). */
function repitch(backend: WebGPUBackend, src: Storage, l: MatmulLayout, which: 'a' | 'b', ld: number): Storage {
  const { rows, pitch } = operandRows(l, which);
  const n = (src.size / (rows * pitch)) * rows * ld;
  const storage = backend.allocate(src.dtype, n, 'staging', 'matmul repitch');
  // Both pitches multiples of 4: copy whole vec4s (4x fewer loads).
  const w = pitch % 4 === 0 && ld % 4 === 0 ? 4 : 1;
  const scalar = wgslType(src.dtype);
  backend.dispatch({
    label: 'matmul repitch', source: repitchSource(w === 4 ? `vec4<${scalar}>` : scalar, scalar), buffers: [src, storage],
    uniforms: packUniforms([['u32', pitch / w], ['u32', ld / w], ['u32', n / w]]), workgroups: grid1D(n / w),
  });
  return storage;
}

export function matmulWebGPU(backend: WebGPUBackend, { inputs, outputs, attrs: { layout } }: MatmulCall): void {
  const c = outputs.out.storage;
  let a = inputs.a.storage, b = inputs.b.storage;
  const plan = planMatmul(backend, layout, c.dtype === 'f16' ? 'f16' : 'f32', { a: a.size, b: b.size });
  const l = plan.swap ? swappedLayout(layout) : layout;
  if (plan.swap) [a, b] = [b, a];
  const { lda, ldb } = plan;
  // Batch strides are whole matrices: scale them by the new pitch.
  const sa = l.stridesA.map((s) => (s / operandRows(l, 'a').pitch) * lda);
  // From the texture, B's batch strides count texel rows: K per stored matrix.
  const sb = l.stridesB.map((s) => (plan.texture ? (s / (l.K * l.N)) * l.K : (s / operandRows(l, 'b').pitch) * ldb));
  const temps: Storage[] = [];
  if (plan.repitchA) temps.push(a = repitch(backend, a, l, 'a', lda));
  if (plan.repitchB) temps.push(b = repitch(backend, b, l, 'b', ldb));
  const blocks = plan.texture;
  const texture = blocks ? backend.acquireTexture(blocks.width * blocks.segments, blocks.height, 'matmul B texture') : null;
  const v = plan.variant;
  const source = matmulSource(v);
  const label = `matmul(${v.kind}${v.texB ? (v.texStored ? '+texture(B^T as stored)' : '+texture') : ''}${v.transA ? ',transA' : ''}${v.transB ? ',transB' : ''}${v.transC ? ',transC' : ''},${v.dtype},${v.rows}x${tileCols(v)})`;
  const gx = Math.ceil(l.N / tileCols(v)), gy = Math.ceil(l.M / tileRows(v)), gz = l.batch;
  // Column tiles per texture block (all of them without a texture); texels per tile.
  // (B^T as stored: a block's rows are its columns of C.)
  const tileTexels = tileCols(v) / 4, blockTiles = !blocks ? gx : v.texStored ? blocks.height / tileCols(v) : blocks.width / tileTexels;
  // Grids past the per-dimension limit run as several dispatches with base offsets in the uniforms.
  const lim = backend.limits.maxComputeWorkgroupsPerDimension;
  for (let x0 = 0; x0 < gx; x0 += blockTiles) {
    if (texture && v.texStored) copyStoredBT(backend, b, l, texture, blocks!, x0 * tileCols(v));
    else if (texture) packBTexture(backend, b, l, texture, blocks!, x0 * tileTexels);
    const x1 = Math.min(gx, x0 + blockTiles);
    // Reading from a texture block, ldb is the block's first texel column (B^T as stored: its first column of C).
    const ldbOrBlock = !texture ? ldb : v.texStored ? x0 * tileCols(v) : x0 * tileTexels;
    for (let z = 0; z < gz; z += lim) {
      for (let y = 0; y < gy; y += lim) {
        for (let x = x0; x < x1; x += lim) {
          backend.dispatch({
            label, source, buffers: [a, texture ?? b, c],
            uniforms: new Uint32Array([l.M, l.N, l.K, z, y, x, lda, ldbOrBlock, ...l.dims, ...sa, ...sb, blocks?.kSeg ?? l.K, blocks?.width ?? 0, 0, 0]),
            workgroups: [Math.min(lim, x1 - x), Math.min(lim, gy - y), Math.min(lim, gz - z)],
          });
        }
      }
    }
  }
  // A freed buffer is reused only by work recorded later, so the copies stay valid for these dispatches.
  for (const t of temps) backend.free(t);
  texture?.release();
}
