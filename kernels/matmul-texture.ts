/**
 * B of a matmul packed into an rgba32float texture for the subgroup kernel's texture path
 * (matmul-wgsl.ts, `texB`): texel (x, y) holds B[j][k][4x..4x+3] with y = j*K + k, j the stored
 * matrix (all of B's batch entries stacked along y), zero past column N, and a width of whole
 * workgroup tiles so the kernel reads without clamping; a wide B goes in column blocks (the
 * kernel's `ldb` uniform then holds the block's first texel column). Transposed B is transposed
 * while packing.
 * f16 operands are widened (exactly) to f32 texels.
 *
 * Why: on llvmpipe a texel load costs ~2 instructions per float against ~8-10 for a storage
 * buffer load (shared/notes/lavapipe-performance.md). The copy reads B once, so it pays when
 * each texel is reused by enough rows of A (see `TEXTURE_MIN_ROWS` in matmul-webgpu.ts).
 */
import type { Storage } from '../engine/backend.js';
import type { WebGPUBackend } from '../engine/webgpu/backend.js';
import type { ScratchTexture } from '../engine/webgpu/texture-pool.js';
import type { MatmulLayout } from './matmul-layout.js';
import { cachedSource, enables, grid1D, LINEAR_INDEX, LINEAR_PARAMS, wgslType, WG_1D } from './wgsl.js';

/**
 * Texels a texture block may hold: B wider than this goes through one texture in column blocks
 * (pack block, product over its columns, next block), so the scratch memory stays bounded
 * (a 32000 x 512 LM head would otherwise take a 65 MB texture).
 */
export const TEXTURE_BLOCK_BYTES = 8 * 2 ** 20;

/** Switches benchmarks flip to compare layouts in one process (the defaults are what training uses). */
export const matmulTuning = {
  /** f32 B whose rows allow it goes into the texture by buffer-to-texture copies instead of a pack kernel. */
  copyPacks: true,
  /**
   * Products with fewer rows than this read transposed f32 B from a texture holding it as stored (one
   * copy, no transposing pack) when its rows allow; the kernel reads that layout slower, so with many
   * rows the pack (paid once per product) costs less than the slower reads. Interleaved on llvmpipe:
   * the 60m LM head chunk (262 rows) 1.23x faster stored; 60m q/k/v/o and MLP forward (1024 rows)
   * 1.04x and 0.95x, a wash.
   */
  storedTransposeMaxRows: 512,
  /** The subgroup kernel stores C as vec4 when N % 4 == 0. */
  vecStores: true,
  /**
   * Rows per tile of the subgroup kernel when A is transposed (dW products, the slowest family): 64 rows
   * make every lane's A load useful (16 row groups of 4 across 16 lanes; 32 rows left half the lanes
   * loading duplicates). Interleaved on a quiet llvmpipe: 1.16-1.33x on every 60m / h256 dW shape.
   */
  transARows: 64,
  /**
   * Rows per tile for the other products (over 8 rows; 8 at most 8): 64 measured 0.80-0.93x of 32 on
   * the forward and dX shapes (same window), so 32.
   */
  rows: 32,
};

/**
 * How B is laid out in textures: blocks of `width` texels (whole tiles) by `height` rows, each block
 * holding `segments` slices of K side by side (texel column s * width + x holds k = s * kSeg + y):
 * one segment unless K exceeds the device's texture height (the LM head's dX: K = vocabulary).
 */
export interface TextureBlocks { width: number; height: number; blocks: number; segments: number; kSeg: number }

/**
 * The texture blocks for B of this product with tiles of `tileCols` columns, or null when B cannot
 * go through a texture: several stacked matrices taller than the device's 2-D texture height, or
 * K in so many segments that one tile's texels exceed its width.
 */
export function textureBlocks(backend: WebGPUBackend, l: MatmulLayout, bMatrices: number, tileCols: number): TextureBlocks | null {
  const tileTexels = tileCols / 4;
  const max = backend.limits.maxTextureDimension2D;
  let height = bMatrices * l.K, segments = 1, kSeg = l.K;
  if (height > max) {
    if (bMatrices !== 1) return null;
    kSeg = Math.floor(max / 4) * 4; // whole k steps of the kernel's main loop per segment
    segments = Math.ceil(l.K / kSeg);
    height = kSeg;
  }
  if (tileTexels * segments > max) return null;
  const full = Math.ceil(l.N / tileCols) * tileTexels;
  const byBytes = Math.max(1, Math.floor(TEXTURE_BLOCK_BYTES / (height * 16 * tileTexels * segments))) * tileTexels;
  const width = Math.min(full, byBytes, Math.floor(max / (tileTexels * segments)) * tileTexels);
  return { width, height, blocks: Math.ceil(full / width), segments, kSeg };
}

/**
 * Texture blocks for transposed B as stored (the kernel's `texStored`): texel (x, y) = B^T[n][4x..4x+3]
 * with y = n - the block's first column, so each block is one plain copy of consecutive rows of
 * B^T. Only for one stored f32 matrix whose rows are a multiple of 256 bytes (WebGPU's pitch rule
 * for buffer-to-texture copies) and fit the texture width; else null. `width` is K / 4 texels,
 * `height` the block's columns (whole tiles).
 */
export function storedTextureBlocks(backend: WebGPUBackend, dtype: 'f32' | 'f16', bSize: number, l: MatmulLayout, tileCols: number): TextureBlocks | null {
  const max = backend.limits.maxTextureDimension2D;
  if (!l.transB || dtype !== 'f32' || bSize !== l.K * l.N || (l.K * 4) % 256 !== 0 || l.K / 4 > max) return null;
  const width = l.K / 4;
  const full = Math.ceil(l.N / tileCols) * tileCols;
  const byBytes = Math.max(1, Math.floor(TEXTURE_BLOCK_BYTES / (width * 16 * tileCols))) * tileCols;
  const height = Math.min(full, byBytes, Math.floor(max / tileCols) * tileCols);
  if (height < tileCols) return null;
  return { width, height, blocks: Math.ceil(full / height), segments: 1, kSeg: l.K };
}

/** Records the copy of B^T's rows n0.. (one block) into `tex` for the `texStored` kernel. */
export function copyStoredBT(backend: WebGPUBackend, b: Storage, l: MatmulLayout, tex: ScratchTexture, blocks: TextureBlocks, n0: number): void {
  backend.copyToTexture(b, n0 * l.K * 4, l.K * 4, tex, [0, 0], [blocks.width, Math.min(blocks.height, l.N - n0)]);
}

/**
 * The pack kernels, one flat index per invocation so every lane has work whatever the block's shape
 * (a 2-D grid over a 16-texel-wide block left 3 lanes in 4 idle). Uniforms: N, K of the stored
 * matrices, the block's `width` and `rows`, its first texel column `x0` in B, the segment's first
 * k `k0`, its texel column `xOff` in the texture, and `count`, the invocations.
 * - rows (B as stored): one texel per invocation, x fastest; one vec4 load when N % 4 == 0.
 * - transposed B with K % 4 == 0: each invocation reads 4 k of 4 columns as 4 vec4 loads (k
 *   fastest along the lanes: contiguous memory) and stores the 4 texels of the transposed 4x4.
 * - transposed B otherwise: one texel per invocation, k fastest.
 */
type PackKind = 'rows' | 'transposed4' | 'transposed1';

const packSource = cachedSource(packSourceOf);

function packSourceOf(kind: PackKind, scalar: string, vec: boolean): string {
  const load = (idx: string): string => (vec ? `vec4f(b[(${idx}) / 4u])` : `f32(b[${idx}])`);
  let body: string;
  if (kind === 'rows') {
    body = `let x = i % u.width;
  let y = i / u.width;
  let k = u.k0 + y % u.K;
  let base = (y / u.K) * u.K * u.N;
  let n0 = (u.x0 + x) * 4u;
  var v = vec4f(0.0);
  if (k < u.K) {
    ${vec ? `if (n0 < u.N) { v = ${load('base + k * u.N + n0')}; }`
    : `for (var q = 0u; q < 4u; q++) { if (n0 + q < u.N) { v[q] = ${load('base + k * u.N + n0 + q')}; } }`}
  }
  textureStore(t, vec2i(i32(u.xOff + x), i32(y)), v);`;
  } else if (kind === 'transposed4') {
    body = `let groups = u.rows / 4u;
  let x = i / groups;
  let y = (i % groups) * 4u;
  let k = u.k0 + y % u.K;
  let base = (y / u.K) * u.K * u.N;
${[0, 1, 2, 3].map((q) => `  let n${q} = (u.x0 + x) * 4u + ${q}u;
  var c${q} = vec4f(0.0);
  if (n${q} < u.N && k < u.K) { c${q} = ${load(`base + n${q} * u.K + k`)}; }`).join('\n')}
${[0, 1, 2, 3].map((j) => `  textureStore(t, vec2i(i32(u.xOff + x), i32(y + ${j}u)), vec4f(c0[${j}], c1[${j}], c2[${j}], c3[${j}]));`).join('\n')}`;
  } else {
    body = `let x = i / u.rows;
  let y = i % u.rows;
  let k = u.k0 + y % u.K;
  let base = (y / u.K) * u.K * u.N;
  var v = vec4f(0.0);
  for (var q = 0u; q < 4u; q++) {
    let n = (u.x0 + x) * 4u + q;
    if (n < u.N && k < u.K) { v[q] = ${load('base + n * u.K + k')}; }
  }
  textureStore(t, vec2i(i32(u.xOff + x), i32(y)), v);`;
  }
  return `${enables(scalar === 'f16' ? 'f16' : 'f32')}
struct U { N: u32, K: u32, width: u32, rows: u32, x0: u32, k0: u32, xOff: u32, count: u32 }
@group(0) @binding(0) var<storage, read> b: array<${vec ? `vec4<${scalar}>` : scalar}>;
@group(0) @binding(1) var t: texture_storage_2d<rgba32float, write>;
@group(0) @binding(2) var<uniform> u: U;
@compute @workgroup_size(${WG_1D}) fn main(${LINEAR_PARAMS}) {
  ${LINEAR_INDEX}
  if (i >= u.count) { return; }
  ${body}
}`;
}

/**
 * Whether B can go in by plain buffer-to-texture copies: f32 as stored (a texel is then 4 adjacent
 * elements of a row) with a row pitch WebGPU accepts for such copies (a multiple of 256 bytes).
 * Texels past column N or past K in the last segment are then left as they were: they only feed
 * columns of C that are never stored, or k the kernel never reads.
 */
export function packsByCopy(b: Storage, l: MatmulLayout): boolean {
  return matmulTuning.copyPacks && !l.transB && b.dtype === 'f32' && (l.N * 4) % 256 === 0;
}

/**
 * Records the packing of B's texel columns x0.. (B stored as `l` says) into `tex`, a scratch texture
 * of the blocks' size, segment by segment.
 */
export function packBTexture(backend: WebGPUBackend, b: Storage, l: MatmulLayout, tex: ScratchTexture, blocks: TextureBlocks, x0: number): void {
  if (packsByCopy(b, l)) {
    const texels = Math.min(blocks.width, l.N / 4 - x0);
    for (let s = 0; s < blocks.segments; s++) {
      const rows = blocks.segments === 1 ? blocks.height : Math.min(blocks.kSeg, l.K - s * blocks.kSeg);
      backend.copyToTexture(b, (s * blocks.kSeg * l.N + x0 * 4) * 4, l.N * 4, tex, [s * blocks.width, 0], [texels, rows]);
    }
    return;
  }
  const kind: PackKind = !l.transB ? 'rows' : l.K % 4 === 0 ? 'transposed4' : 'transposed1';
  const vec = kind === 'rows' ? l.N % 4 === 0 : kind === 'transposed4';
  const count = blocks.width * (kind === 'transposed4' ? blocks.height / 4 : blocks.height);
  const source = packSource(kind, wgslType(b.dtype), vec);
  for (let s = 0; s < blocks.segments; s++) {
    backend.dispatch({
      label: `matmul pack B${l.transB ? ' (transB)' : ''}`, source, buffers: [b, tex],
      uniforms: new Uint32Array([l.N, l.K, blocks.width, blocks.height, x0, s * blocks.kSeg, s * blocks.width, count]),
      workgroups: grid1D(count),
    });
  }
}
