import type { CpuBackend } from '../engine/cpu/backend.js';
import { f32ToF16Bits } from '../engine/dtype.js';
import { StepError } from '../engine/errors.js';
import { copyKernel } from '../engine/creation-kernels.js';
import { registerKernel } from '../engine/registry.js';
import { enables, grid1D, LINEAR_INDEX, LINEAR_PARAMS, packUniforms, wgslType } from './wgsl.js';

/** copy: dst = src converted to dst's dtype (float -> i32 truncates). */
function copySource(from: string, to: string): string {
  return `${enables(from === 'f16' || to === 'f16' ? 'f16' : 'f32')}
struct U { n: u32 }
@group(0) @binding(0) var<storage, read> src: array<${from}>;
@group(0) @binding(1) var<storage, read_write> dst: array<${to}>;
@group(0) @binding(2) var<uniform> u: U;
@compute @workgroup_size(64) fn main(${LINEAR_PARAMS}) {
  ${LINEAR_INDEX}
  if (i < u.n) { dst[i] = ${to}(src[i]); }
}`;
}

registerKernel(copyKernel, {
  cpu(backend: CpuBackend, { inputs, outputs }) {
    const src = inputs.src.storage, dst = outputs.dst.storage;
    if (src.size !== dst.size) throw new StepError(`copy: ${src.size} elements into ${dst.size}`);
    const values = backend.values(src);
    const out = backend.view(dst);
    for (let i = 0; i < dst.size; i++) {
      const v = values[i]!;
      out[i] = dst.dtype === 'f16' ? f32ToF16Bits(v) : dst.dtype === 'i32' ? Math.trunc(v) : v;
    }
  },
  webgpu(backend, { inputs, outputs }) {
    const src = inputs.src.storage, dst = outputs.dst.storage;
    if (src.size !== dst.size) throw new StepError(`copy: ${src.size} elements into ${dst.size}`);
    backend.dispatch({
      label: 'copy',
      source: copySource(wgslType(src.dtype), wgslType(dst.dtype)),
      buffers: [src, dst],
      uniforms: packUniforms([['u32', dst.size]]),
      workgroups: grid1D(dst.size),
    });
  },
});
