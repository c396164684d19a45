import type { CpuBackend } from '../engine/cpu/backend.js';
import { f32ToF16Bits } from '../engine/dtype.js';
import { fillKernel } from '../engine/creation-kernels.js';
import { registerKernel } from '../engine/registry.js';
import { enables, grid1D, LINEAR_INDEX, LINEAR_PARAMS, packUniforms, wgslType } from './wgsl.js';

/** fill: every element of `out` = value (i32 truncates toward zero). */
function fillSource(type: string, isInt: boolean): string {
  return `${enables(type === 'f16' ? 'f16' : 'f32')}
struct U { n: u32, fv: f32, iv: i32 }
@group(0) @binding(0) var<storage, read_write> out: array<${type}>;
@group(0) @binding(1) var<uniform> u: U;
@compute @workgroup_size(64) fn main(${LINEAR_PARAMS}) {
  ${LINEAR_INDEX}
  if (i < u.n) { out[i] = ${isInt ? 'u.iv' : `${type}(u.fv)`}; }
}`;
}

registerKernel(fillKernel, {
  cpu(backend: CpuBackend, { outputs: { out }, attrs: { value } }) {
    const s = out.storage;
    const view = backend.view(s);
    if (s.dtype === 'f16') view.fill(f32ToF16Bits(value));
    else if (s.dtype === 'i32') view.fill(Math.trunc(value));
    else view.fill(value);
  },
  webgpu(backend, { outputs: { out }, attrs: { value } }) {
    const s = out.storage;
    backend.dispatch({
      label: 'fill',
      source: fillSource(wgslType(s.dtype), s.dtype === 'i32'),
      buffers: [s],
      uniforms: packUniforms([['u32', s.size], ['f32', value], ['i32', Math.trunc(value)]]),
      workgroups: grid1D(s.size),
    });
  },
});
