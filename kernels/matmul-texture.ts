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
import { enables, wgslType } from './wgsl.js';

/**
 * Texels a texture block may hold: B wider than this goes through one texture in column blocks
 * (pack block, product over its columns, next block), so the scratch memory stays bounded
 * (a 32000 x 512 LM head would otherwise take a 65 MB texture).
 */
export const TEXTURE_BLOCK_BYTES = 8 * 2 ** 20;

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

const PACK_WG = 64;

/** The pack kernel: the fast invocation index runs along contiguous memory (columns of B, or k of B^T). */
function packSource(transB: boolean, scalar: string): string {
  const element = (n: string): string => `${scalar === 'f32' ? '' : 'f32'}(b[base + ${transB ? `${n} * u.K + k` : `k * u.N + ${n}`}])`;
  return `${enables(scalar === 'f16' ? 'f16' : 'f32')}
struct U { N: u32, K: u32, width: u32, rows: u32, x0: u32, k0: u32, xOff: u32 }
@group(0) @binding(0) var<storage, read> b: array<${scalar}>;
@group(0) @binding(1) var t: texture_storage_2d<rgba32float, write>;
@group(0) @binding(2) var<uniform> u: U;
@compute @workgroup_size(${PACK_WG}) fn main(@builtin(global_invocation_id) gid: vec3u) {
  let x = ${transB ? 'gid.y' : 'gid.x'};
  let y = ${transB ? 'gid.x' : 'gid.y'};
  if (x >= u.width || y >= u.rows) { return; }
  // stacked matrices (k0 = 0), or one matrix's K segment from k0 (zero past K)
  let k = u.k0 + y % u.K;
  let base = (y / u.K) * u.K * u.N;
  var v = vec4f(0.0);
  for (var q = 0u; q < 4u; q++) {
    let n = (u.x0 + x) * 4u + q;
    if (n < u.N && k < u.K) { v[q] = ${element('n')}; }
  }
  textureStore(t, vec2i(i32(u.xOff + x), i32(y)), v);
}`;
}

/**
 * Records the packing of B's texel columns x0.. (B stored as `l` says) into `tex`, a scratch texture
 * of the blocks' size, segment by segment.
 */
export function packBTexture(backend: WebGPUBackend, b: Storage, l: MatmulLayout, tex: ScratchTexture, blocks: TextureBlocks, x0: number): void {
  const fast = l.transB ? blocks.height : blocks.width, slow = l.transB ? blocks.width : blocks.height;
  for (let s = 0; s < blocks.segments; s++) {
    backend.dispatch({
      label: `matmul pack B${l.transB ? ' (transB)' : ''}`, source: packSource(l.transB, wgslType(b.dtype)), buffers: [b, tex],
      uniforms: new Uint32Array([l.N, l.K, blocks.width, blocks.height, x0, s * blocks.kSeg, s * blocks.width, 0]),
      workgroups: [Math.ceil(fast / PACK_WG), slow],
    });
  }
}
