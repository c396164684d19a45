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

/** How B is laid out in textures: blocks of `width` texels (whole tiles) by `height` rows. */
export interface TextureBlocks { width: number; height: number; blocks: number }

/**
 * The texture blocks for B of this product with tiles of `tileCols` columns, or null when B's
 * stacked rows (matrices x K) exceed the device's 2-D texture height.
 */
export function textureBlocks(backend: WebGPUBackend, l: MatmulLayout, bMatrices: number, tileCols: number): TextureBlocks | null {
  const tileTexels = tileCols / 4;
  const height = bMatrices * l.K;
  const max = backend.limits.maxTextureDimension2D;
  if (height > max || tileTexels > max) return null;
  const full = Math.ceil(l.N / tileCols) * tileTexels;
  const byBytes = Math.max(1, Math.floor(TEXTURE_BLOCK_BYTES / (height * 16 * tileTexels))) * tileTexels;
  const width = Math.min(full, byBytes, Math.floor(max / tileTexels) * tileTexels);
  return { width, height, blocks: Math.ceil(full / width) };
}

const PACK_WG = 64;

/** The pack kernel: the fast invocation index runs along contiguous memory (columns of B, or k of B^T). */
function packSource(transB: boolean, scalar: string): string {
  const element = (n: string): string => `${scalar === 'f32' ? '' : 'f32'}(b[base + ${transB ? `${n} * u.K + k` : `k * u.N + ${n}`}])`;
  return `${enables(scalar === 'f16' ? 'f16' : 'f32')}
struct U { N: u32, K: u32, width: u32, rows: u32, x0: u32 }
@group(0) @binding(0) var<storage, read> b: array<${scalar}>;
@group(0) @binding(1) var t: texture_storage_2d<rgba32float, write>;
@group(0) @binding(2) var<uniform> u: U;
@compute @workgroup_size(${PACK_WG}) fn main(@builtin(global_invocation_id) gid: vec3u) {
  let x = ${transB ? 'gid.y' : 'gid.x'};
  let y = ${transB ? 'gid.x' : 'gid.y'};
  if (x >= u.width || y >= u.rows) { return; }
  let k = y % u.K;
  let base = (y / u.K) * u.K * u.N;
  var v = vec4f(0.0);
  for (var q = 0u; q < 4u; q++) {
    let n = (u.x0 + x) * 4u + q;
    if (n < u.N) { v[q] = ${element('n')}; }
  }
  textureStore(t, vec2i(i32(x), i32(y)), v);
}`;
}

/** Records the packing of B's texel columns x0.. (B stored as `l` says) into `tex`, a scratch texture of the blocks' size. */
export function packBTexture(backend: WebGPUBackend, b: Storage, l: MatmulLayout, tex: ScratchTexture, x0: number): void {
  const fast = l.transB ? tex.height : tex.width, slow = l.transB ? tex.width : tex.height;
  backend.dispatch({
    label: `matmul pack B${l.transB ? ' (transB)' : ''}`, source: packSource(l.transB, wgslType(b.dtype)), buffers: [b, tex],
    uniforms: new Uint32Array([l.N, l.K, tex.width, tex.height, x0]),
    workgroups: [Math.ceil(fast / PACK_WG), slow],
  });
}
