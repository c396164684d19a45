/**
 * scaleInPlace: y *= s[0], with s a one-element tensor on the device (no readback of the factor).
 * linearCrossEntropy uses it to apply the upstream gradient to the gradients it computed during
 * forward, without a second weight-sized buffer.
 */
import type { CpuBackend } from '../engine/cpu/backend.js';
import type { DType } from '../engine/dtype.js';
import { DTypeError, ShapeError } from '../engine/errors.js';
import { defineKernel, registerKernel, runKernel } from '../engine/registry.js';
import type { Tensor } from '../engine/tensor.js';
import { storeNumber } from './elementwise.js';
import { enables, grid1D, LINEAR_INDEX, LINEAR_PARAMS, packUniforms, wgslType } from './wgsl.js';

function scaleSource(y: DType, s: DType, vec: boolean): string {
  const T = vec ? `vec4<${wgslType(y)}>` : wgslType(y);
  return `${enables(y, s)}
struct U { n: u32 }
@group(0) @binding(0) var<storage, read> s: array<${wgslType(s)}>;
@group(0) @binding(1) var<storage, read_write> y: array<${T}>;
@group(0) @binding(2) var<uniform> u: U;
@compute @workgroup_size(64) fn main(${LINEAR_PARAMS}) {
  ${LINEAR_INDEX}
  if (i >= u.n) { return; }
  y[i] = ${T}(${vec ? 'vec4<f32>' : 'f32'}(y[i]) * f32(s[0]));
}`;
}

const scaleKernel = defineKernel()('scaleInPlace', { inputs: ['s'], outputs: ['y'] });

registerKernel(scaleKernel, {
  cpu(backend: CpuBackend, { inputs: { s }, outputs: { y } }) {
    const factor = backend.values(s.storage)[0]!;
    const yv = backend.values(y.storage), out = backend.view(y.storage);
    const f = y.dtype === 'f64' ? (x: number) => x : Math.fround;
    for (let i = 0; i < y.size; i++) storeNumber(out, i, f(yv[i]! * factor), y.dtype);
  },
  webgpu(backend, { inputs: { s }, outputs: { y } }) {
    const vec = y.size % 4 === 0;
    const items = vec ? y.size / 4 : y.size;
    backend.dispatch({
      label: 'scaleInPlace', source: scaleSource(y.dtype, s.dtype, vec), buffers: [s.storage, y.storage],
      uniforms: packUniforms([['u32', items]]), workgroups: grid1D(items),
    });
  },
});

/** In place: y *= s, s a one-element float tensor (any shape of size 1) on y's device. */
export function scaleInPlace(y: Tensor, s: Tensor): Tensor {
  y.use('scaleInPlace'); s.use('scaleInPlace');
  if (y.dtype === 'i32' || s.dtype === 'i32') throw new DTypeError('scaleInPlace: float tensors only');
  if (s.size !== 1) throw new ShapeError(`scaleInPlace: the factor must have one element, got ${s.describe()}`);
  if (y.storage === s.storage) throw new ShapeError('scaleInPlace: y and the factor share storage; clone one first');
  if (y.size > 0) runKernel(scaleKernel, { inputs: { s }, outputs: { y }, attrs: {} });
  return y;
}
