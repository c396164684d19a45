/** The webgpu kernel of matmul: picks a specialised pipeline and records its dispatches. */
import { StepError } from '../engine/errors.js';
import type { KernelArgs } from '../engine/registry.js';
import type { WebGPUBackend } from '../engine/webgpu/backend.js';
import type { MatmulLayout } from './matmul-layout.js';
import type { MatmulVariant } from './matmul-wgsl.js';
import { matmulSource, tileCols, tileRows } from './matmul-wgsl.js';

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

/** The variant for this problem on this backend (exported for the benchmark's report). */
export function chooseVariant(backend: WebGPUBackend, l: MatmulLayout, dtype: 'f32' | 'f16'): MatmulVariant {
  const S = fixedSubgroupSize(backend);
  const kind = preferred === 'plain' || S === 0 ? 'plain' : 'subgroup';
  if (preferred === 'subgroup' && kind !== 'subgroup') {
    throw new StepError(`matmul: the subgroup kernel was forced but "${backend.adapter.description}" has no fixed subgroup size`);
  }
  if (kind === 'plain') {
    return { kind, transA: l.transA, transB: l.transB, dtype, rows: 4, cols: 4, subgroup: 0, lanes: 64, kStep: 1, vecA: false, vecB: false };
  }
  // vec4 bindings need the vec4 direction of each operand's rows to be a multiple of 4 (measured: ~25% faster).
  const vecA = (l.transA ? l.M : l.K) % 4 === 0;
  const vecB = (l.transB ? l.K : l.N) % 4 === 0;
  return { kind, transA: l.transA, transB: l.transB, dtype, rows: subgroupRows(l.M), cols: 4, subgroup: S, lanes: S, kStep: 4, vecA, vecB };
}

/** Uniforms of `UNIFORM_STRUCT`: sizes, the grid bases of this dispatch, batch dims and strides. */
function uniforms(l: MatmulLayout, xBase: number, yBase: number, zBase: number): Uint32Array {
  return new Uint32Array([l.M, l.N, l.K, zBase, yBase, xBase, 0, 0, ...l.dims, ...l.stridesA, ...l.stridesB]);
}

export function matmulWebGPU(backend: WebGPUBackend, { inputs, outputs, attrs }: KernelArgs): void {
  const l = attrs.layout as MatmulLayout;
  const a = inputs[0]!.storage, b = inputs[1]!.storage, c = outputs[0]!.storage;
  const v = chooseVariant(backend, l, c.dtype === 'f16' ? 'f16' : 'f32');
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
          uniforms: uniforms(l, x, y, z),
          workgroups: [Math.min(lim, gx - x), Math.min(lim, gy - y), Math.min(lim, gz - z)],
        });
      }
    }
  }
}
