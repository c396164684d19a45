import type { CpuBackend } from '../engine/cpu/backend.js';
import { f32ToF16Bits } from '../engine/dtype.js';
import { arangeKernel } from '../engine/creation-kernels.js';
import { registerKernel } from '../engine/registry.js';
import { enables, grid1D, LINEAR_INDEX, LINEAR_PARAMS, packUniforms, wgslType } from './wgsl.js';

/**
 * arange: out[i] = start + i * step. Floats compute in f32 (f64 on the cpu backend for f64),
 * i32 in exact integer arithmetic (start and step truncated).
 */
function arangeSource(type: string): string {
  const isInt = type === 'i32';
  return `${enables(type === 'f16' ? 'f16' : 'f32')}
struct U { n: u32, start: f32, step: f32, istart: i32, istep: i32 }
@group(0) @binding(0) var<storage, read_write> out: array<${type}>;
@group(0) @binding(1) var<uniform> u: U;
@compute @workgroup_size(64) fn main(${LINEAR_PARAMS}) {
  ${LINEAR_INDEX}
  if (i < u.n) { out[i] = ${isInt ? 'u.istart + i32(i) * u.istep' : `${type}(u.start + f32(i) * u.step)`}; }
}`;
}

registerKernel(arangeKernel, {
  cpu(backend: CpuBackend, { outputs: { out }, attrs: { start, step } }) {
    const s = out.storage;
    const view = backend.view(s);
    const f = Math.fround;
    for (let i = 0; i < s.size; i++) {
      switch (s.dtype) {
        case 'f64': view[i] = start + i * step; break;
        case 'i32': view[i] = Math.trunc(start) + i * Math.trunc(step); break;
        case 'f32': view[i] = f(f(start) + f(f(i) * f(step))); break;
        case 'f16': view[i] = f32ToF16Bits(f(f(start) + f(f(i) * f(step)))); break;
      }
    }
  },
  webgpu(backend, { outputs: { out }, attrs: { start, step } }) {
    const s = out.storage;
    backend.dispatch({
      label: 'arange',
      source: arangeSource(wgslType(s.dtype)),
      buffers: [s],
      uniforms: packUniforms([['u32', s.size], ['f32', start], ['f32', step], ['i32', Math.trunc(start)], ['i32', Math.trunc(step)]]),
      workgroups: grid1D(s.size),
    });
  },
});
