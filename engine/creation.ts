import type { Backend } from './backend.js';
import './builtin-kernels.js'; // fill, arange, random, copy: creation works without 'step-webgpu/kernels'
import { getDevice } from './device.js';
import type { DType } from './dtype.js';
import { assertDType } from './dtype.js';
import { ShapeError, StepError } from './errors.js';
import type { Category } from './memory.js';
import { assertCategory } from './memory.js';
import type { Generator } from './random.js';
import { defaultGenerator } from './random.js';
import { arangeKernel, copyKernel, fillKernel, randomKernel } from './creation-kernels.js';
import { runKernel } from './registry.js';
import type { Shape } from './shape.js';
import { checkShape, formatShape, sizeOf } from './shape.js';
import { Tensor } from './tensor.js';

export interface CreateOptions {
  dtype?: DType;
  /** Defaults to the device from initDevice()/setDevice(). */
  device?: Backend;
  /** Memory category of the new storage (default `temporary`). */
  category?: Category;
  /** Shown in errors and in the memory tracker. */
  label?: string;
}

export interface RandomOptions extends CreateOptions {
  generator?: Generator;
}

/** A new tensor whose contents the caller (a kernel) will write in full. */
export function empty(shape: readonly number[], options: CreateOptions = {}, op = 'empty'): Tensor {
  const s = checkShape(shape, op);
  const dtype = assertDType(options.dtype ?? 'f32', op);
  const category = assertCategory(options.category ?? 'temporary', op);
  const device = options.device ?? getDevice();
  device.checkDType(dtype, op);
  const storage = device.allocate(dtype, sizeOf(s), category, options.label ?? op);
  return new Tensor(storage, s, options.label ?? '');
}

function checkNumber(value: unknown, what: string, op: string): number {
  if (typeof value !== 'number' || Number.isNaN(value)) throw new StepError(`${op}: ${what} must be a number, got ${String(value)}`);
  return value;
}

export function full(shape: readonly number[], value: number, options: CreateOptions = {}): Tensor {
  checkNumber(value, 'value', 'full');
  const t = empty(shape, options, 'full');
  return fillInPlace(t, value);
}

/** Sets every element of `t` to `value` (NaN allowed), in place (i32 truncates toward zero). */
export function fillInPlace(t: Tensor, value: number): Tensor {
  runKernel(fillKernel, { inputs: {}, outputs: { out: t }, attrs: { value } });
  return t;
}

export function zeros(shape: readonly number[], options: CreateOptions = {}): Tensor {
  return full(shape, 0, options);
}

export function ones(shape: readonly number[], options: CreateOptions = {}): Tensor {
  return full(shape, 1, options);
}

/** [start, start + step, ...) up to `end` (exclusive), like numpy.arange. One argument means [0, end). */
export function arange(start: number, end?: number, step = 1, options: CreateOptions = {}): Tensor {
  if (end === undefined) { end = start; start = 0; }
  checkNumber(start, 'start', 'arange'); checkNumber(end, 'end', 'arange'); checkNumber(step, 'step', 'arange');
  if (step === 0 || !Number.isFinite(step)) throw new StepError(`arange: step must be finite and non-zero, got ${step}`);
  const n = Math.max(0, Math.ceil((end - start) / step));
  const t = empty([n], options, 'arange');
  runKernel(arangeKernel, { inputs: {}, outputs: { out: t }, attrs: { start, step } });
  return t;
}

/** Flattens a nested array of numbers and infers its shape; rejects ragged input. */
function flattenNested(data: unknown, op: string): { values: number[]; shape: number[] } {
  const shape: number[] = [];
  for (let d = data; Array.isArray(d); d = d[0]) shape.push(d.length);
  const values: number[] = [];
  const walk = (d: unknown, depth: number): void => {
    if (depth === shape.length) {
      if (typeof d !== 'number') throw new ShapeError(`${op}: expected a number at depth ${depth}, got ${typeof d}`);
      values.push(d);
      return;
    }
    if (!Array.isArray(d) || d.length !== shape[depth]) {
      throw new ShapeError(`${op}: ragged nested array: expected length ${shape[depth]} at depth ${depth}, got ${Array.isArray(d) ? d.length : typeof d}`);
    }
    for (const x of d) walk(x, depth + 1);
  };
  walk(data, 0);
  return { values, shape };
}

/**
 * A tensor from host data: a (nested) number array, or a typed array with an explicit shape.
 * Values are stored as the dtype stores them (f16 rounds to nearest even, i32 must be integers).
 */
export function fromArray(data: ArrayLike<number> | unknown[] | number, shape?: readonly number[], options: CreateOptions = {}): Tensor {
  let values: ArrayLike<number>;
  let inferred: number[];
  if (typeof data === 'number') {
    values = [data]; inferred = [];
  } else if (Array.isArray(data)) {
    ({ values, shape: inferred } = flattenNested(data, 'fromArray'));
  } else if (ArrayBuffer.isView(data)) {
    values = data; inferred = [data.length];
  } else {
    throw new StepError(`fromArray: expected a number, an array or a typed array, got ${typeof data}`);
  }
  const target = shape ?? inferred;
  const s: Shape = checkShape(target, 'fromArray');
  if (sizeOf(s) !== values.length) {
    throw new ShapeError(`fromArray: ${values.length} values do not fill shape ${formatShape(s)} (${sizeOf(s)} elements)`);
  }
  const dtype = options.dtype ?? (data instanceof Int32Array ? 'i32' : 'f32');
  if (dtype === 'i32') {
    for (let i = 0; i < values.length; i++) {
      const v = values[i]!;
      if (!Number.isInteger(v) || v < -(2 ** 31) || v >= 2 ** 31) throw new StepError(`fromArray: i32 value at index ${i} is ${v}, not a 32-bit integer`);
    }
  }
  const t = empty(s, { ...options, dtype }, 'fromArray');
  t.backend.write(t.storage, values);
  return t;
}

/** Uniform numbers in [low, high) from the generator's Philox stream (see random.ts). */
export function rand(shape: readonly number[], options: RandomOptions & { low?: number; high?: number } = {}): Tensor {
  const low = checkNumber(options.low ?? 0, 'low', 'rand');
  const high = checkNumber(options.high ?? 1, 'high', 'rand');
  const t = empty(shape, options, 'rand');
  if (t.dtype === 'i32') throw new StepError('rand: dtype must be a float type');
  return uniformInPlace(t, low, high, options.generator);
}

/** Overwrites float tensor `t` with uniform numbers in [low, high) from the generator's Philox stream (the draws `rand` makes). */
export function uniformInPlace(t: Tensor, low: number, high: number, generator: Generator = defaultGenerator): Tensor {
  checkNumber(low, 'low', 'uniformInPlace'); checkNumber(high, 'high', 'uniformInPlace');
  if (t.use('uniformInPlace').dtype === 'i32') throw new StepError(`uniformInPlace: ${t.describe()} must be a float tensor`);
  const offset = generator.take(Math.ceil(t.size / 4));
  runKernel(randomKernel, { inputs: {}, outputs: { out: t }, attrs: { kind: 'uniform', seed: generator.seed, offset, a: low, b: high } });
  return t;
}

/** Normal numbers with the given mean and std from the generator's Philox stream (Box-Muller). */
export function randn(shape: readonly number[], options: RandomOptions & { mean?: number; std?: number } = {}): Tensor {
  const mean = checkNumber(options.mean ?? 0, 'mean', 'randn');
  const std = checkNumber(options.std ?? 1, 'std', 'randn');
  const t = empty(shape, options, 'randn');
  if (t.dtype === 'i32') throw new StepError('randn: dtype must be a float type');
  const g = options.generator ?? defaultGenerator;
  const offset = g.take(Math.ceil(t.size / 2));
  runKernel(randomKernel, { inputs: {}, outputs: { out: t }, attrs: { kind: 'normal', seed: g.seed, offset, a: mean, b: std } });
  return t;
}

/**
 * A copy of `t` with its own storage (optionally another dtype or category).
 * @nograd the copy is a new leaf; for a differentiable copy use `mul(t, 1)`.
 */
export function clone(t: Tensor, options: Omit<CreateOptions, 'device'> = {}): Tensor {
  t.use('clone');
  const out = empty(t.shape, { dtype: t.dtype, category: t.category, ...options, device: t.backend }, 'clone');
  runKernel(copyKernel, { inputs: { src: t }, outputs: { dst: out }, attrs: {} });
  return out;
}

/**
 * Copies `t` to another backend (reads it back to the host, then uploads).
 * @nograd the copy is a new leaf on the other backend (ops never mix backends).
 */
export async function toDevice(t: Tensor, device: Backend, options: Omit<CreateOptions, 'device'> = {}): Promise<Tensor> {
  t.use('toDevice');
  const values = await t.toArray();
  return fromArray(values, t.shape, { dtype: t.dtype, category: t.category, label: t.label, ...options, device });
}
