/** The webgpu kernel of matmul: picks a specialised pipeline and records its dispatches. */
import type { Storage } from '../engine/backend.js';
import { StepError } from '../engine/errors.js';
import type { KernelArgs } from '../engine/registry.js';
import type { WebGPUBackend } from '../engine/webgpu/backend.js';
import type { MatmulLayout } from './matmul-layout.js';
import type { MatmulVariant } from './matmul-wgsl.js';
import { matmulSource, tileCols, tileRows } from './matmul-wgsl.js';
import { enables, grid1D, LINEAR_INDEX, LINEAR_PARAMS, packUniforms, wgslType, WG_1D } from './wgsl.js';

export type MatmulKernelKind = 'auto' | 'subgroup' | 'plain';

let preferred: MatmulKernelKind = 'auto';

/**
 * Forces one kernel kind (tests and benchmarks use it to exercise the fallback); 'auto' picks
 * the subgroup kernel whenever the device supports it. Returns the previous setting.
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

/**
 * Rows per subgroup tile: 8 for short matrices (one token at generation), else 32. Each choice
 * is one more pipeline to build (1-4 s on llvmpipe), so there are only two.
 */
function subgroupRows(M: number): number {
  return M <= 8 ? 8 : 32;
}

/** How one operand is stored: `rows` rows of `pitch` contiguous elements per matrix. */
function operandRows(l: MatmulLayout, which: 'a' | 'b'): { rows: number; pitch: number } {
  if (which === 'a') return l.transA ? { rows: l.K, pitch: l.M } : { rows: l.M, pitch: l.K };
  return l.transB ? { rows: l.N, pitch: l.K } : { rows: l.K, pitch: l.N };
}

/**
 * Whether to copy an operand whose pitch is not a multiple of 4 into a buffer with the next
 * multiple of 4 as pitch, so the subgroup kernel can bind it as vec4 (measured on llvmpipe:
 * ~19-26 GFLOP per core-second with scalar loads, ~33-36 with vec4). The copy costs a few
 * loads per element, so it pays once the other operand spans at least a tile (32).
 */
const REPITCH_MIN_REUSE = 32;

function shouldRepitch(backend: WebGPUBackend, l: MatmulLayout, which: 'a' | 'b', elements: number): boolean {
  const { rows, pitch } = operandRows(l, which);
  if (pitch % 4 === 0 || (which === 'a' ? l.N : l.M) < REPITCH_MIN_REUSE) return false;
  const bytes = (elements / (rows * pitch)) * rows * Math.ceil(pitch / 4) * 4 * 4;
  return bytes <= Math.min(backend.limits.maxStorageBufferBindingSize, backend.limits.maxBufferSize);
}

/** The variant for this problem on this backend (exported for the benchmark's report). */
export function chooseVariant(backend: WebGPUBackend, l: MatmulLayout, dtype: 'f32' | 'f16', pitches?: { lda: number; ldb: number }): MatmulVariant {
  const S = fixedSubgroupSize(backend);
  const kind = preferred === 'plain' || S === 0 ? 'plain' : 'subgroup';
  if (preferred === 'subgroup' && kind !== 'subgroup') {
    throw new StepError(`matmul: the subgroup kernel was forced but "${backend.adapter.description}" has no fixed subgroup size`);
  }
  if (kind === 'plain') {
    return { kind, transA: l.transA, transB: l.transB, dtype, rows: 4, cols: 4, subgroup: 0, lanes: 64, kStep: 1, vecA: false, vecB: false };
  }
  // vec4 bindings need row pitches that are multiples of 4 (measured: ~25-40% faster).
  const vecA = (pitches?.lda ?? operandRows(l, 'a').pitch) % 4 === 0;
  const vecB = (pitches?.ldb ?? operandRows(l, 'b').pitch) % 4 === 0;
  return { kind, transA: l.transA, transB: l.transB, dtype, rows: subgroupRows(l.M), cols: 4, subgroup: S, lanes: S, kStep: 4, vecA, vecB };
}

/** Copies [count*rows, cols] into [count*rows, ld] (ld >= cols), zero-filling the extra columns. */
function repitchSource(type: string): string {
  return `${enables(type === 'f16' ? 'f16' : 'f32')}
struct U { cols: u32, ld: u32, n: u32 }
@group(0) @binding(0) var<storage, read> src: array<${type}>;
@group(0) @binding(1) var<storage, read_write> dst: array<${type}>;
@group(0) @binding(2) var<uniform> u: U;
@compute @workgroup_size(${WG_1D}) fn main(${LINEAR_PARAMS}) {
  ${LINEAR_INDEX}
  if (i < u.n) {
    let r = i / u.ld;
    let c = i % u.ld;
    dst[i] = select(${type}(0), src[r * u.cols + min(c, u.cols - 1u)], c < u.cols);
  }
}`;
}

/** A re-pitched copy of operand `which` (category staging: a transient buffer of the backend's own). */
function repitch(backend: WebGPUBackend, src: Storage, l: MatmulLayout, which: 'a' | 'b'): { storage: Storage; ld: number; scale: number } {
  const { rows, pitch } = operandRows(l, which);
  const ld = Math.ceil(pitch / 4) * 4;
  const n = (src.size / (rows * pitch)) * rows * ld;
  const storage = backend.allocate(src.dtype, n, 'staging', 'matmul repitch');
  backend.dispatch({
    label: 'matmul repitch', source: repitchSource(wgslType(src.dtype)), buffers: [src, storage],
    uniforms: packUniforms([['u32', pitch], ['u32', ld], ['u32', n]]), workgroups: grid1D(n),
  });
  return { storage, ld, scale: ld / pitch };
}

/** Uniforms of `UNIFORM_STRUCT`: sizes, the grid bases of this dispatch, pitches, batch dims and strides. */
function uniforms(l: MatmulLayout, base: [number, number, number], lda: number, ldb: number, sa: number[], sb: number[]): Uint32Array {
  const [x, y, z] = base;
  return new Uint32Array([l.M, l.N, l.K, z, y, x, lda, ldb, ...l.dims, ...sa, ...sb]);
}

export function matmulWebGPU(backend: WebGPUBackend, { inputs, outputs, attrs }: KernelArgs): void {
  const l = attrs.layout as MatmulLayout;
  let a = inputs[0]!.storage, b = inputs[1]!.storage;
  const c = outputs[0]!.storage;
  let lda = operandRows(l, 'a').pitch, ldb = operandRows(l, 'b').pitch;
  let sa = l.stridesA, sb = l.stridesB;
  const temps: Storage[] = [];
  if (fixedSubgroupSize(backend) > 0 && preferred !== 'plain') {
    if (shouldRepitch(backend, l, 'a', a.size)) {
      const r = repitch(backend, a, l, 'a');
      a = r.storage; lda = r.ld; sa = sa.map((s) => s * r.scale); temps.push(r.storage);
    }
    if (shouldRepitch(backend, l, 'b', b.size)) {
      const r = repitch(backend, b, l, 'b');
      b = r.storage; ldb = r.ld; sb = sb.map((s) => s * r.scale); temps.push(r.storage);
    }
  }
  const v = chooseVariant(backend, l, c.dtype === 'f16' ? 'f16' : 'f32', { lda, ldb });
  const source = matmulSource(v);
  const label = `matmul(${v.kind}${v.transA ? ',transA' : ''}${v.transB ? ',transB' : ''},${v.dtype},${v.rows}x${tileCols(v)})`;
  const gx = Math.ceil(l.N / tileCols(v)), gy = Math.ceil(l.M / tileRows(v)), gz = l.batch;
  // Grids past the per-dimension limit run as several dispatches with base offsets in the uniforms.
  const lim = backend.limits.maxComputeWorkgroupsPerDimension;
  for (let z = 0; z < gz; z += lim) {
    for (let y = 0; y < gy; y += lim) {
      for (let x = 0; x < gx; x += lim) {
        backend.dispatch({
          label, source, buffers: [a, b, c],
          uniforms: uniforms(l, [x, y, z], lda, ldb, sa, sb),
          workgroups: [Math.min(lim, gx - x), Math.min(lim, gy - y), Math.min(lim, gz - z)],
        });
      }
    }
  }
  // Freed buffers are reused only by work recorded later, so the copies stay valid for these dispatches.
  for (const t of temps) backend.free(t);
}
