/**
 * RMSNorm as Hugging Face's LlamaRMSNorm computes it, and its backward:
 *
 *   r_i = 1 / sqrt(mean_h x_ih^2 + eps)        (f32)
 *   n_ih = x_ih * r_i, rounded to x's dtype     (HF casts back to the input dtype here)
 *   y_ih = weight_h * n_ih                      (stored in x's dtype)
 *
 *   dn_ih = dy_ih * weight_h
 *   dx_ih = r_i * (dn_ih - n_ih * mean_h(dn_ih * n_ih))
 *   dweight_h = sum_i dy_ih * n_ih              (backward uses the unrounded n, in f32)
 *
 * x is [..., H] and weight [H]; x and weight may have different float dtypes (y and dx take x's,
 * dweight takes weight's). dweight is reduced over all rows in a fixed order (chunks of
 * DWEIGHT_CHUNK rows, then the chunks), with no atomics, so it is deterministic.
 */
import type { CpuBackend } from '../engine/cpu/backend.js';
import { roundToF16 } from '../engine/dtype.js';
import { empty } from '../engine/creation.js';
import { ShapeError } from '../engine/errors.js';
import type { Category } from '../engine/memory.js';
import type { KernelCallOf } from '../engine/registry.js';
import { defineKernel, registerKernel, runKernel } from '../engine/registry.js';
import type { Tensor } from '../engine/tensor.js';
import type { WebGPUBackend } from '../engine/webgpu/backend.js';
import {
  checkFloat, checkNumberOption, checkSameShapeAndDType, cpuStore, enableF16, floatType, ROW_INDEX, ROW_PARAMS, rowEnables, rowGrid,
  rowPlan, rowReduceWGSL, rowsAndCols,
} from './fused-shared.js';
import { grid1D, LINEAR_INDEX, LINEAR_PARAMS, packUniforms } from './wgsl.js';

/** Rows summed by one thread of the first dweight pass. */
export const DWEIGHT_CHUNK = 64;

interface NormAttrs { rows: number; cols: number; eps: number }

const rmsNormKernel = defineKernel<NormAttrs>()('rmsNorm', { inputs: ['x', 'weight'], outputs: ['y'] });
/** rstd and partial are scratch of the WebGPU passes, allocated by the op on both backends. */
const rmsNormBackwardKernel = defineKernel<NormAttrs>()('rmsNormBackward', { inputs: ['x', 'weight', 'dy'], outputs: ['dx', 'dweight', 'rstd', 'partial'] });

export interface RmsNormOptions {
  /** Memory category of the outputs (default `temporary`). */
  category?: Category;
}

function checkInputs(op: string, x: Tensor, weight: Tensor, eps: unknown): { rows: number; cols: number } {
  checkFloat(op, 'x', x);
  checkFloat(op, 'weight', weight);
  const { rows, cols } = rowsAndCols(op, 'x', x);
  if (weight.rank !== 1 || weight.shape[0] !== cols) {
    throw new ShapeError(`${op}: weight ${weight.describe()} must be [H] = [${cols}] for x ${x.describe()}`);
  }
  checkNumberOption(op, 'eps', eps, 'nonnegative');
  return { rows, cols };
}

/** y = x / sqrt(mean(x^2) + eps) * weight over the last axis; same shape and dtype as x. */
export function rmsNorm(x: Tensor, weight: Tensor, eps: number, options: RmsNormOptions = {}): Tensor {
  const op = 'rmsNorm';
  const { rows, cols } = checkInputs(op, x, weight, eps);
  const y = empty(x.shape, { dtype: x.dtype, device: x.backend, category: options.category }, op);
  runKernel(rmsNormKernel, { inputs: { x, weight }, outputs: { y }, attrs: { rows, cols, eps } });
  return y;
}

/** Gradients of rmsNorm: dx (x's shape and dtype) and dweight (weight's shape and dtype). */
export function rmsNormBackward(x: Tensor, weight: Tensor, dy: Tensor, eps: number, options: RmsNormOptions = {}): { dx: Tensor; dweight: Tensor } {
  const op = 'rmsNormBackward';
  const { rows, cols } = checkInputs(op, x, weight, eps);
  checkFloat(op, 'dy', dy);
  checkSameShapeAndDType(op, ['x', 'dy'], x, dy);
  const device = x.backend;
  const dx = empty(x.shape, { dtype: x.dtype, device, category: options.category }, op);
  const dweight = empty(weight.shape, { dtype: weight.dtype, device, category: options.category }, op);
  // Temporaries of the WebGPU passes, allocated on both backends so both count the same bytes.
  const rstd = empty([rows], { dtype: 'f32', device }, `${op} rstd`);
  const partial = empty([Math.ceil(rows / DWEIGHT_CHUNK) * cols], { dtype: 'f32', device }, `${op} partial dweight`);
  try {
    runKernel(rmsNormBackwardKernel, { inputs: { x, weight, dy }, outputs: { dx, dweight, rstd, partial }, attrs: { rows, cols, eps } });
  } finally {
    rstd.dispose();
    partial.dispose();
  }
  return { dx, dweight };
}

/** 1 / sqrt(mean(x^2) + eps) of one row, as HF computes it in f32 (the sum in f64 here). */
function rowRstd(x: ArrayLike<number>, base: number, a: NormAttrs): number {
  let ss = 0;
  for (let j = 0; j < a.cols; j++) ss += x[base + j]! * x[base + j]!;
  return 1 / Math.sqrt(ss / a.cols + a.eps);
}

/** Rounds n to the storage dtype of x, as HF's `.to(input_dtype)` does (f64 on cpu keeps it). */
function roundTo(dtype: string): (v: number) => number {
  if (dtype === 'f32') return Math.fround;
  if (dtype === 'f16') return roundToF16;
  return (v) => v;
}

function forwardCpu(backend: CpuBackend, { inputs, outputs, attrs: a }: KernelCallOf<typeof rmsNormKernel>): void {
  const x = backend.values(inputs.x.storage), w = backend.values(inputs.weight.storage);
  const store = cpuStore(backend, outputs.y.storage);
  const round = roundTo(inputs.x.dtype);
  for (let r = 0; r < a.rows; r++) {
    const base = r * a.cols, rs = rowRstd(x, base, a);
    for (let j = 0; j < a.cols; j++) store(base + j, w[j]! * round(x[base + j]! * rs));
  }
}

function backwardCpu(backend: CpuBackend, { inputs, outputs, attrs: a }: KernelCallOf<typeof rmsNormBackwardKernel>): void {
  const x = backend.values(inputs.x.storage), w = backend.values(inputs.weight.storage), dy = backend.values(inputs.dy.storage);
  const storeDx = cpuStore(backend, outputs.dx.storage);
  const dw = new Float64Array(a.cols);
  for (let r = 0; r < a.rows; r++) {
    const base = r * a.cols, rs = rowRstd(x, base, a);
    let dot = 0; // sum_h dn_h * n_h
    for (let j = 0; j < a.cols; j++) dot += dy[base + j]! * w[j]! * x[base + j]! * rs;
    const c = dot / a.cols;
    for (let j = 0; j < a.cols; j++) {
      const n = x[base + j]! * rs;
      storeDx(base + j, rs * (dy[base + j]! * w[j]! - n * c));
      dw[j] += dy[base + j]! * n;
    }
  }
  const storeDw = cpuStore(backend, outputs.dweight.storage);
  for (let j = 0; j < a.cols; j++) storeDw(j, dw[j]!);
}

function forwardSource(b: WebGPUBackend, t: string, tw: string): string {
  const plan = rowPlan(b);
  return `${rowEnables(plan, t, tw)}
struct U { rows: u32, cols: u32, eps: f32 }
@group(0) @binding(0) var<storage, read> x: array<${t}>;
@group(0) @binding(1) var<storage, read> w: array<${tw}>;
@group(0) @binding(2) var<storage, read_write> y: array<${t}>;
@group(0) @binding(3) var<uniform> u: U;
${rowReduceWGSL(plan)}
@compute @workgroup_size(WG) fn main(${ROW_PARAMS}) {
  ${ROW_INDEX}
  if (row >= u.rows) { return; }
  let base = row * u.cols;
  var acc = 0.0;
  for (var j = lane; j < u.cols; j += WG) { let v = f32(x[base + j]); acc += v * v; }
  let r = inverseSqrt(row_sum(acc, lane) / f32(u.cols) + u.eps);
  for (var j = lane; j < u.cols; j += WG) {
    let n = f32(${t}(f32(x[base + j]) * r)); // HF rounds n to the input dtype before the weight
    y[base + j] = ${t}(n * f32(w[j]));
  }
}`;
}

/** dx per row, and each row's r for the dweight passes. */
function dxSource(b: WebGPUBackend, t: string, tw: string): string {
  const plan = rowPlan(b);
  return `${rowEnables(plan, t, tw)}
struct U { rows: u32, cols: u32, eps: f32 }
@group(0) @binding(0) var<storage, read> x: array<${t}>;
@group(0) @binding(1) var<storage, read> w: array<${tw}>;
@group(0) @binding(2) var<storage, read> dy: array<${t}>;
@group(0) @binding(3) var<storage, read_write> dx: array<${t}>;
@group(0) @binding(4) var<storage, read_write> rstd: array<f32>;
@group(0) @binding(5) var<uniform> u: U;
${rowReduceWGSL(plan)}
@compute @workgroup_size(WG) fn main(${ROW_PARAMS}) {
  ${ROW_INDEX}
  if (row >= u.rows) { return; }
  let base = row * u.cols;
  var ss = 0.0;
  var d = 0.0;
  for (var j = lane; j < u.cols; j += WG) {
    let v = f32(x[base + j]);
    ss += v * v;
    d += f32(dy[base + j]) * f32(w[j]) * v;
  }
  let h = f32(u.cols);
  let r = inverseSqrt(row_sum(ss, lane) / h + u.eps);
  let c = r * r * row_sum(d, lane) / h; // n * mean(dn * n) = x * c
  for (var j = lane; j < u.cols; j += WG) {
    dx[base + j] = ${t}(r * (f32(dy[base + j]) * f32(w[j]) - f32(x[base + j]) * c));
  }
  if (lane == 0u) { rstd[row] = r; }
}`;
}

/** partial[k, h] = sum over rows of chunk k of dy * x * r (thread per (k, h): columns coalesce). */
function dweightPartialSource(t: string): string {
  return `${enableF16(t)}
struct U { rows: u32, cols: u32, chunks: u32 }
@group(0) @binding(0) var<storage, read> x: array<${t}>;
@group(0) @binding(1) var<storage, read> dy: array<${t}>;
@group(0) @binding(2) var<storage, read> rstd: array<f32>;
@group(0) @binding(3) var<storage, read_write> partial: array<f32>;
@group(0) @binding(4) var<uniform> u: U;
@compute @workgroup_size(64) fn main(${LINEAR_PARAMS}) {
  ${LINEAR_INDEX}
  if (i >= u.chunks * u.cols) { return; }
  let k = i / u.cols;
  let h = i % u.cols;
  let end = min(u.rows, (k + 1u) * ${DWEIGHT_CHUNK}u);
  var acc = 0.0;
  for (var r = k * ${DWEIGHT_CHUNK}u; r < end; r++) {
    acc += f32(dy[r * u.cols + h]) * f32(x[r * u.cols + h]) * rstd[r];
  }
  partial[i] = acc;
}`;
}

function dweightSumSource(tw: string): string {
  return `${enableF16(tw)}
struct U { cols: u32, chunks: u32 }
@group(0) @binding(0) var<storage, read> partial: array<f32>;
@group(0) @binding(1) var<storage, read_write> dw: array<${tw}>;
@group(0) @binding(2) var<uniform> u: U;
@compute @workgroup_size(64) fn main(${LINEAR_PARAMS}) {
  ${LINEAR_INDEX}
  if (i >= u.cols) { return; }
  var acc = 0.0;
  for (var k = 0u; k < u.chunks; k++) { acc += partial[k * u.cols + i]; }
  dw[i] = ${tw}(acc);
}`;
}

registerKernel(rmsNormKernel, {
  cpu: forwardCpu,
  webgpu(backend, { inputs, outputs, attrs: a }) {
    if (a.cols === 0) return;
    const x = inputs.x.storage, w = inputs.weight.storage, y = outputs.y.storage;
    backend.dispatch({
      label: 'rmsNorm',
      source: forwardSource(backend, floatType(x), floatType(w)),
      buffers: [x, w, y],
      uniforms: packUniforms([['u32', a.rows], ['u32', a.cols], ['f32', a.eps]]),
      workgroups: rowGrid(a.rows),
    });
  },
});

registerKernel(rmsNormBackwardKernel, {
  cpu: backwardCpu,
  webgpu(backend, { inputs, outputs, attrs: a }) {
    if (a.cols === 0) return;
    const [x, w, dy] = [inputs.x.storage, inputs.weight.storage, inputs.dy.storage];
    const [dx, dw, rstd, partial] = [outputs.dx.storage, outputs.dweight.storage, outputs.rstd.storage, outputs.partial.storage];
    const chunks = Math.ceil(a.rows / DWEIGHT_CHUNK);
    const t = floatType(x), tw = floatType(w);
    backend.dispatch({
      label: 'rmsNormBackward dx',
      source: dxSource(backend, t, tw),
      buffers: [x, w, dy, dx, rstd],
      uniforms: packUniforms([['u32', a.rows], ['u32', a.cols], ['f32', a.eps]]),
      workgroups: rowGrid(a.rows),
    });
    backend.dispatch({
      label: 'rmsNormBackward dweight chunks',
      source: dweightPartialSource(t),
      buffers: [x, dy, rstd, partial],
      uniforms: packUniforms([['u32', a.rows], ['u32', a.cols], ['u32', chunks]]),
      workgroups: grid1D(chunks * a.cols),
    });
    backend.dispatch({
      label: 'rmsNormBackward dweight',
      source: dweightSumSource(tw),
      buffers: [partial, dw],
      uniforms: packUniforms([['u32', a.cols], ['u32', chunks]]),
      workgroups: grid1D(a.cols),
    });
  },
});
