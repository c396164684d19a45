import type { Storage } from '../engine/backend.js';
import type { CpuBackend } from '../engine/cpu/backend.js';
import { empty, fillInPlace } from '../engine/creation.js';
import type { DType } from '../engine/dtype.js';
import { f32ToF16Bits } from '../engine/dtype.js';
import { DeviceMismatchError, DTypeError, ShapeError, StepError } from '../engine/errors.js';
import type { Category } from '../engine/memory.js';
import { defineKernel, registerKernel, runKernel } from '../engine/registry.js';
import type { Tensor } from '../engine/tensor.js';
import type { WalkDim } from './layout-strides.js';
import { checkWalkRank, contiguousStrides, normalizeAxis, simplifyWalk, walkOffsets } from './layout-strides.js';
import type { ReduceKind, ReducePlan } from './reduce-webgpu.js';
import { dispatchPass, partialsPlan, planPass, reduceOnDevice } from './reduce-webgpu.js';

/**
 * Reductions. Deterministic everywhere (no atomics): on WebGPU each output's row is split into
 * chunks fixed by the shape, each chunk summed in order in f32 (f16 inputs too), then the
 * partials are reduced the same way; the cpu reference accumulates in f64 and rounds once.
 */
export interface ReduceOptions {
  /** Axis or axes to reduce (negative count from the end); undefined = all; [] = none (NumPy). */
  axis?: number | readonly number[];
  /** Keep reduced dims as size 1 (default false). */
  keepdim?: boolean;
  category?: Category;
  label?: string;
}

interface ReduceAttrs {
  kind: ReduceKind;
  plan: ReducePlan;
  scale: number;
}

/** out[o] = scale * (sum or max over the reduced walk of x). */
const reduceKernel = defineKernel<ReduceAttrs>()('reduce', { inputs: ['x'], outputs: ['out'] });
/** out = the sum of squares of every element of every tensor in xs (all non-empty). */
const sumOfSquaresManyKernel = defineKernel()('sumOfSquaresMany', { inputs: ['...xs'], outputs: ['out'] });

/** The normalised, sorted axes of `options.axis`, or a ShapeError naming the op and shape. */
function resolveAxes(op: string, x: Tensor, axis: ReduceOptions['axis']): number[] {
  if (axis === undefined) return x.shape.map((_, k) => k);
  const list = typeof axis === 'number' ? [axis] : axis;
  if (!Array.isArray(list)) throw new ShapeError(`${op}: axis must be a number or an array of numbers, got ${String(axis)}`);
  const axes = list.map((a) => {
    if (x.rank === 0) throw new ShapeError(`${op}: ${x.describe()} is a scalar; it has no axis ${a} (omit axis)`);
    return normalizeAxis(a, x.rank, op, x.shape);
  });
  if (new Set(axes).size !== axes.length) throw new ShapeError(`${op}: axis [${list.join(', ')}] names a dim of ${x.describe()} twice`);
  return axes.sort((a, b) => a - b);
}

/** Splits x's dims into kept and reduced walks (input strides), simplified for the kernels. */
function planReduce(op: string, x: Tensor, axes: readonly number[]): ReducePlan {
  const strides = contiguousStrides(x.shape);
  const dims = (pick: (k: number) => boolean): WalkDim[] =>
    x.shape.flatMap((size, k) => (pick(k) ? [{ size, strides: [strides[k]!] }] : []));
  const kept = simplifyWalk(dims((k) => !axes.includes(k)));
  const red = simplifyWalk(dims((k) => axes.includes(k)));
  checkWalkRank(kept, op, x.shape);
  checkWalkRank(red, op, x.shape);
  const size = (w: WalkDim[]) => w.reduce((p, d) => p * d.size, 1);
  return { kept, red, outer: size(kept), inner: size(red) };
}

function reduce(op: 'sum' | 'mean' | 'max', x: Tensor, options: ReduceOptions): Tensor {
  x.use(op);
  if (op === 'mean' && x.dtype === 'i32') throw new DTypeError(`mean: ${x.describe()} is i32; cast to f32 first with clone(x, { dtype: 'f32' })`);
  const axes = resolveAxes(op, x, options.axis);
  const outShape = options.keepdim ? x.shape.map((d, k) => (axes.includes(k) ? 1 : d)) : x.shape.filter((_, k) => !axes.includes(k));
  const plan = planReduce(op, x, axes);
  if (plan.inner === 0 && op === 'max' && plan.outer > 0) {
    throw new ShapeError(`max: cannot take the max over an empty dim of ${x.describe()} (axis ${axes.join(', ')}); max of nothing is undefined`);
  }
  const out = empty(outShape, { dtype: x.dtype, device: x.backend, category: options.category, label: options.label }, op);
  if (out.size === 0) return out;
  if (plan.inner === 0) {
    fillInPlace(out, op === 'mean' ? NaN : 0); // PyTorch: sum 0, mean NaN
    return out;
  }
  const attrs: ReduceAttrs = { kind: op === 'max' ? 'max' : 'sum', plan, scale: op === 'mean' ? 1 / plan.inner : 1 };
  runKernel(reduceKernel, { inputs: { x }, outputs: { out }, attrs });
  return out;
}

/** Sum over `axis` (all by default). i32 sums wrap around like 32-bit integers; f16 sums in f32. */
export function sum(x: Tensor, options: ReduceOptions = {}): Tensor {
  return reduce('sum', x, options);
}

/** Mean over `axis` (all by default); float dtypes only. The mean of nothing is NaN (PyTorch). */
export function mean(x: Tensor, options: ReduceOptions = {}): Tensor {
  return reduce('mean', x, options);
}

/** Maximum over `axis` (all by default); NaN wins. An empty reduction is an error. */
export function max(x: Tensor, options: ReduceOptions = {}): Tensor {
  return reduce('max', x, options);
}

/** Where a scalar result is counted, and its label. */
export interface ScalarOptions {
  category?: Category;
  label?: string;
}

/** The sum of x*x over all elements, as a scalar f32 (f64 for f64 input): for gradient norms. */
export function sumOfSquares(x: Tensor, options: ScalarOptions = {}): Tensor {
  return sumOfSquaresMany([x], options);
}

/**
 * The sum of x*x over every element of every tensor, as one scalar f32 (f64 when all are f64),
 * computed on the device: per-tensor partial sums into one buffer, then one reduction of it.
 */
export function sumOfSquaresMany(tensors: readonly Tensor[], options: ScalarOptions = {}): Tensor {
  if (!Array.isArray(tensors as unknown) || tensors.length === 0) throw new StepError('sumOfSquaresMany: give at least one tensor');
  tensors.forEach((t) => t.use('sumOfSquaresMany'));
  const backend = tensors[0]!.backend;
  tensors.forEach((t, j) => {
    if (t.dtype === 'i32') throw new DTypeError(`sumOfSquaresMany: tensor ${j} (${t.describe()}) is i32; only float tensors have a sum of squares`);
    if (t.backend !== backend) throw new DeviceMismatchError(`sumOfSquaresMany: tensor ${j} (${t.describe()}) is on ${t.backend.name} but tensor 0 is on ${backend.name}; move one with toDevice()`);
  });
  const dtype: DType = tensors.every((t) => t.dtype === 'f64') ? 'f64' : 'f32';
  const out = empty([], { dtype, device: backend, category: options.category, label: options.label }, 'sumOfSquaresMany');
  const nonEmpty = tensors.filter((t) => t.size > 0);
  if (nonEmpty.length === 0) fillInPlace(out, 0);
  else runKernel(sumOfSquaresManyKernel, { inputs: { xs: nonEmpty }, outputs: { out }, attrs: {} });
  return out;
}

// ---------------------------------------------------------------------------------------------
// cpu reference: f64 accumulation in row order, one rounding on store

function store(backend: CpuBackend, s: Storage, k: number, v: number): void {
  const view = backend.view(s);
  view[k] = s.dtype === 'f16' ? f32ToF16Bits(v) : v;
}

function cpuReduce(backend: CpuBackend, x: Storage, out: Storage, { kind, plan, scale }: ReduceAttrs): void {
  const values = backend.values(x);
  const isInt = x.dtype === 'i32';
  const off = [0];
  const rowOffsets = new Array<number>(plan.inner);
  for (let r = 0; r < plan.inner; r++) { walkOffsets(r, plan.red, [0], off); rowOffsets[r] = off[0]!; }
  for (let o = 0; o < plan.outer; o++) {
    walkOffsets(o, plan.kept, [0], off);
    const base = off[0]!;
    let acc = kind === 'max' ? -Infinity : 0;
    for (let r = 0; r < plan.inner; r++) {
      const v = values[base + rowOffsets[r]!]!;
      if (kind === 'max') acc = Math.max(acc, v);
      else if (isInt) acc = (acc + v) | 0; // wraps like the i32 adds on the device
      else acc += kind === 'sumsq' ? v * v : v;
    }
    store(backend, out, o, isInt ? acc : acc * scale);
  }
}

registerKernel(reduceKernel, {
  cpu(backend: CpuBackend, { inputs, outputs, attrs }) {
    cpuReduce(backend, inputs.x.storage, outputs.out.storage, attrs);
  },
  webgpu(backend, { inputs, outputs, attrs: { kind, plan, scale } }) {
    reduceOnDevice(backend, kind, inputs.x.storage, outputs.out.storage, plan, scale);
  },
});

const flatPlan = (n: number): ReducePlan => ({ kept: [], red: simplifyWalk([{ size: n, strides: [1] }]), outer: 1, inner: n });

registerKernel(sumOfSquaresManyKernel, {
  cpu(backend: CpuBackend, { inputs: { xs }, outputs }) {
    let acc = 0;
    for (const t of xs) for (const v of backend.values(t.storage)) acc += v * v;
    store(backend, outputs.out.storage, 0, acc);
  },
  webgpu(backend, { inputs: { xs }, outputs }) {
    const out = outputs.out.storage;
    const parts = xs.map((t) => ({ t, plan: flatPlan(t.size), pass: planPass(flatPlan(t.size), t.size) }));
    const total = parts.reduce((s, p) => s + p.pass.chunks, 0);
    if (total === 1) {
      dispatchPass(backend, 'sumsq', xs[0]!.storage, out, parts[0]!.plan, parts[0]!.pass, 0, 1);
      return;
    }
    const partials = backend.allocate('f32', total, 'staging', 'sumOfSquaresMany partials'); // scratch: see reduceOnDevice
    try {
      let at = 0;
      for (const { t, plan, pass } of parts) {
        dispatchPass(backend, 'sumsq', t.storage, partials, plan, pass, at, 1);
        at += pass.chunks;
      }
      reduceOnDevice(backend, 'sum', partials, out, partialsPlan(1, total), 1);
    } finally {
      backend.free(partials);
    }
  },
});
