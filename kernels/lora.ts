import type { CpuBackend } from '../engine/cpu/backend.js';
import type { DType } from '../engine/dtype.js';
import { DTypeError, ShapeError } from '../engine/errors.js';
import { defineKernel, registerKernel, runKernel } from '../engine/registry.js';
import { formatShape } from '../engine/shape.js';
import type { Tensor } from '../engine/tensor.js';
import { storeNumber } from './elementwise.js';
import { enables, grid1D, LINEAR_INDEX, LINEAR_PARAMS, packUniforms, wgslType } from './wgsl.js';

/**
 * loraMerge: W[o, i] += scale * sum_k B[o, k] A[k, i], in place: each element's rank-r dot
 * product is formed in a register, so no W-sized temporary exists at any point.
 */
function loraMergeSource(w: DType, ab: DType): string {
  return `${enables(w, ab)}
struct U { rows: u32, cols: u32, rank: u32, scale: f32 }
@group(0) @binding(0) var<storage, read> b: array<${wgslType(ab)}>;
@group(0) @binding(1) var<storage, read> a: array<${wgslType(ab)}>;
@group(0) @binding(2) var<storage, read_write> w: array<${wgslType(w)}>;
@group(0) @binding(3) var<uniform> u: U;
@compute @workgroup_size(64) fn main(${LINEAR_PARAMS}) {
  ${LINEAR_INDEX}
  if (i >= u.rows * u.cols) { return; }
  let o = i / u.cols;
  let c = i % u.cols;
  var acc = 0.0;
  for (var k = 0u; k < u.rank; k++) { acc += f32(b[o * u.rank + k]) * f32(a[k * u.cols + c]); }
  w[i] = ${wgslType(w)}(f32(w[i]) + u.scale * acc);
}`;
}

/** In place: w += scale * b @ a. */
const loraMergeKernel = defineKernel<{ scale: number }>()('loraMerge', { inputs: ['b', 'a'], outputs: ['w'] });

registerKernel(loraMergeKernel, {
  cpu(backend: CpuBackend, { inputs: { b, a }, outputs: { w }, attrs: { scale } }) {
    const bv = backend.values(b.storage), av = backend.values(a.storage);
    const wv = backend.values(w.storage), out = backend.view(w.storage);
    const [rows, cols] = w.shape as [number, number];
    const r = a.shape[0]!;
    const f = w.dtype === 'f64' ? (x: number) => x : Math.fround;
    for (let o = 0; o < rows; o++) {
      for (let c = 0; c < cols; c++) {
        let acc = 0;
        for (let k = 0; k < r; k++) acc += bv[o * r + k]! * av[k * cols + c]!;
        storeNumber(out, o * cols + c, f(wv[o * cols + c]! + f(scale) * f(acc)), w.dtype);
      }
    }
  },
  webgpu(backend, { inputs: { b, a }, outputs: { w }, attrs: { scale } }) {
    const [rows, cols] = w.shape as [number, number];
    backend.dispatch({
      label: 'loraMerge', source: loraMergeSource(w.dtype, a.dtype), buffers: [b.storage, a.storage, w.storage],
      uniforms: packUniforms([['u32', rows], ['u32', cols], ['u32', a.shape[0]!], ['f32', scale]]),
      workgroups: grid1D(rows * cols),
    });
  },
});

/** In place: W += scale * B @ A (the LoRA merge), W [out, in], B [out, r], A [r, in]. */
export function loraMergeInPlace(w: Tensor, b: Tensor, a: Tensor, scale: number): Tensor {
  for (const t of [w, b, a]) t.use('loraMerge');
  if (w.rank !== 2 || b.rank !== 2 || a.rank !== 2 || b.shape[0] !== w.shape[0] || a.shape[1] !== w.shape[1] || b.shape[1] !== a.shape[0]) {
    throw new ShapeError(`loraMerge: W ${formatShape(w.shape)} += B ${formatShape(b.shape)} @ A ${formatShape(a.shape)} do not fit (need W [out, in], B [out, r], A [r, in])`);
  }
  if (a.dtype !== b.dtype || w.dtype === 'i32' || a.dtype === 'i32') throw new DTypeError(`loraMerge: float tensors with A and B of one dtype needed (W ${w.dtype}, B ${b.dtype}, A ${a.dtype})`);
  runKernel(loraMergeKernel, { inputs: { b, a }, outputs: { w }, attrs: { scale } });
  return w;
}
