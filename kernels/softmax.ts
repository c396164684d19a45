/**
 * Softmax along the last axis, with an optional causal mask (attention scores), and its backward.
 *
 *   y_ij  = exp(x_ij - max_k x_ik) / sum_k exp(x_ik - max_k x_ik)      over the unmasked k
 *   dx_ij = y_ij * (dy_ij - sum_k dy_ik * y_ik)
 *
 * Causal: x is [..., T, C]; query row i sits at position i + positionOffset among the C keys and
 * sees keys j <= i + positionOffset (offset 0 with T = C is ordinary causal attention; C - T is a
 * KV cache). Masked entries of y are exactly 0, so the backward needs no mask. f16 storage is
 * computed in f32; the cpu reference computes in f64 and rounds once.
 */
import type { CpuBackend } from '../engine/cpu/backend.js';
import { empty } from '../engine/creation.js';
import { ShapeError } from '../engine/errors.js';
import type { Category } from '../engine/memory.js';
import type { KernelCallOf } from '../engine/registry.js';
import { defineKernel, registerKernel, runKernel } from '../engine/registry.js';
import type { Tensor } from '../engine/tensor.js';
import type { WebGPUBackend } from '../engine/webgpu/backend.js';
import {
  checkFloat, checkNumberOption, checkSameShapeAndDType, cpuStore, F32_LOWEST, floatType, ROW_INDEX, ROW_PARAMS,
  rowEnables, rowGrid, rowPlan, rowReduceWGSL, rowsAndCols,
} from './fused-shared.js';
import { packUniforms } from './wgsl.js';

interface SoftmaxAttrs { rows: number; cols: number; causal: boolean; T: number; offset: number }

const softmaxKernel = defineKernel<SoftmaxAttrs>()('softmax', { inputs: ['x'], outputs: ['y'] });
const softmaxBackwardKernel = defineKernel<{ rows: number; cols: number }>()('softmaxBackward', { inputs: ['y', 'dy'], outputs: ['dx'] });

export interface SoftmaxOptions {
  /** Mask key j of query row i when j > i + positionOffset (x must be at least [T, C]). */
  causal?: boolean;
  /** Position of the first query row among the keys (causal only; default 0). */
  positionOffset?: number;
  /** Memory category of the output (default `temporary`). */
  category?: Category;
}

/** Softmax of `x` along its last axis; same shape and dtype as `x`. */
export function softmax(x: Tensor, options: SoftmaxOptions = {}): Tensor {
  const op = 'softmax';
  checkFloat(op, 'x', x);
  const { rows, cols } = rowsAndCols(op, 'x', x);
  const causal = options.causal ?? false;
  const offset = checkNumberOption(op, 'positionOffset', options.positionOffset ?? 0, 'index');
  if (!causal && offset !== 0) throw new ShapeError(`${op}: positionOffset ${offset} only applies with causal: true`);
  if (causal && x.rank < 2) throw new ShapeError(`${op}: causal softmax needs x of shape [..., T, C], got ${x.describe()}`);
  const T = causal ? x.shape[x.rank - 2]! : 1;
  const y = empty(x.shape, { dtype: x.dtype, device: x.backend, category: options.category }, op);
  runKernel(softmaxKernel, { inputs: { x }, outputs: { y }, attrs: { rows, cols, causal, T, offset } });
  return y;
}

export interface SoftmaxBackwardOptions {
  category?: Category;
}

/** dx from the softmax output `y` and the upstream gradient `dy` (same shape and dtype). */
export function softmaxBackward(y: Tensor, dy: Tensor, options: SoftmaxBackwardOptions = {}): Tensor {
  const op = 'softmaxBackward';
  checkFloat(op, 'y', y);
  checkFloat(op, 'dy', dy);
  checkSameShapeAndDType(op, ['y', 'dy'], y, dy);
  const { rows, cols } = rowsAndCols(op, 'y', y);
  const dx = empty(y.shape, { dtype: y.dtype, device: y.backend, category: options.category }, op);
  runKernel(softmaxBackwardKernel, { inputs: { y, dy }, outputs: { dx }, attrs: { rows, cols } });
  return dx;
}

/** Columns of row `row` that are not masked. */
function visibleCols(a: SoftmaxAttrs, row: number): number {
  return a.causal ? Math.min(a.cols, (row % a.T) + a.offset + 1) : a.cols;
}

function softmaxCpu(backend: CpuBackend, { inputs, outputs, attrs: a }: KernelCallOf<typeof softmaxKernel>): void {
  const x = backend.values(inputs.x.storage);
  const store = cpuStore(backend, outputs.y.storage);
  for (let r = 0; r < a.rows; r++) {
    const base = r * a.cols, n = visibleCols(a, r);
    let m = -Infinity;
    for (let j = 0; j < n; j++) m = Math.max(m, x[base + j]!);
    let s = 0;
    for (let j = 0; j < n; j++) s += Math.exp(x[base + j]! - m);
    for (let j = 0; j < a.cols; j++) store(base + j, j < n ? Math.exp(x[base + j]! - m) / s : 0);
  }
}

function softmaxBackwardCpu(backend: CpuBackend, { inputs, outputs, attrs: { rows, cols } }: KernelCallOf<typeof softmaxBackwardKernel>): void {
  const y = backend.values(inputs.y.storage), dy = backend.values(inputs.dy.storage);
  const store = cpuStore(backend, outputs.dx.storage);
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    let dot = 0;
    for (let j = 0; j < cols; j++) dot += y[base + j]! * dy[base + j]!;
    for (let j = 0; j < cols; j++) store(base + j, y[base + j]! * (dy[base + j]! - dot));
  }
}

/**
 * One workgroup per row. Each thread keeps a running (max m, sum s of exp(v - m)) over its
 * strided columns with one exp per element, the threads combine them, and a second pass writes.
 */
function softmaxSource(b: WebGPUBackend, t: string): string {
  const plan = rowPlan(b);
  return `${rowEnables(plan, t)}
struct U { rows: u32, cols: u32, causal: u32, T: u32, offset: u32 }
@group(0) @binding(0) var<storage, read> x: array<${t}>;
@group(0) @binding(1) var<storage, read_write> y: array<${t}>;
@group(0) @binding(2) var<uniform> u: U;
${rowReduceWGSL(plan)}
@compute @workgroup_size(WG) fn main(${ROW_PARAMS}) {
  ${ROW_INDEX}
  if (row >= u.rows) { return; }
  let base = row * u.cols;
  var n = u.cols;
  if (u.causal != 0u) { n = min(u.cols, row % u.T + u.offset + 1u); }
  var m = ${F32_LOWEST};
  var s = 0.0;
  for (var j = lane; j < n; j += WG) {
    let v = f32(x[base + j]);
    let d = exp(-abs(v - m));
    s = select(s + d, s * d + 1.0, v > m);
    m = max(m, v);
  }
  let gm = row_max(m, lane);
  let inv = 1.0 / row_sum(s * exp(m - gm), lane);
  for (var j = lane; j < u.cols; j += WG) {
    var o = 0.0;
    if (j < n) { o = exp(f32(x[base + j]) - gm) * inv; }
    y[base + j] = ${t}(o);
  }
}`;
}

function softmaxBackwardSource(b: WebGPUBackend, t: string): string {
  const plan = rowPlan(b);
  return `${rowEnables(plan, t)}
struct U { rows: u32, cols: u32 }
@group(0) @binding(0) var<storage, read> y: array<${t}>;
@group(0) @binding(1) var<storage, read> dy: array<${t}>;
@group(0) @binding(2) var<storage, read_write> dx: array<${t}>;
@group(0) @binding(3) var<uniform> u: U;
${rowReduceWGSL(plan)}
@compute @workgroup_size(WG) fn main(${ROW_PARAMS}) {
  ${ROW_INDEX}
  if (row >= u.rows) { return; }
  let base = row * u.cols;
  var acc = 0.0;
  for (var j = lane; j < u.cols; j += WG) { acc += f32(y[base + j]) * f32(dy[base + j]); }
  let dot = row_sum(acc, lane);
  for (var j = lane; j < u.cols; j += WG) {
    dx[base + j] = ${t}(f32(y[base + j]) * (f32(dy[base + j]) - dot));
  }
}`;
}

registerKernel(softmaxKernel, {
  cpu: softmaxCpu,
  webgpu(backend, { inputs, outputs, attrs: a }) {
    if (a.cols === 0) return;
    const x = inputs.x.storage, y = outputs.y.storage;
    backend.dispatch({
      label: 'softmax',
      source: softmaxSource(backend, floatType(x)),
      buffers: [x, y],
      uniforms: packUniforms([['u32', a.rows], ['u32', a.cols], ['u32', a.causal ? 1 : 0], ['u32', a.T], ['u32', a.offset]]),
      workgroups: rowGrid(a.rows),
    });
  },
});

registerKernel(softmaxBackwardKernel, {
  cpu: softmaxBackwardCpu,
  webgpu(backend, { inputs, outputs, attrs: { rows, cols } }) {
    if (cols === 0) return;
    const y = inputs.y.storage, dy = inputs.dy.storage, dx = outputs.dx.storage;
    backend.dispatch({
      label: 'softmaxBackward',
      source: softmaxBackwardSource(backend, floatType(y)),
      buffers: [y, dy, dx],
      uniforms: packUniforms([['u32', rows], ['u32', cols]]),
      workgroups: rowGrid(rows),
    });
  },
});
