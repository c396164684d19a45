import type { CpuBackend } from '../engine/cpu/backend.js';
import type { DType } from '../engine/dtype.js';
import { empty } from '../engine/creation.js';
import type { CreateOptions } from '../engine/creation.js';
import { f32ToF16Bits } from '../engine/dtype.js';
import { DTypeError, ShapeError } from '../engine/errors.js';
import { defineKernel, registerKernel, runKernel } from '../engine/registry.js';
import { broadcastShapes, formatShape } from '../engine/shape.js';
import type { Tensor } from '../engine/tensor.js';
import { broadcastStrides, MAX_RANK, padRank, stridedOffsetFn, stridedOffsets } from './broadcast.js';
import { scalarOp } from './unary.js';
import { enables, grid1D, LINEAR_INDEX, LINEAR_PARAMS, packUniforms, PER_THREAD, wgslType } from './wgsl.js';

export type OpOptions = Pick<CreateOptions, 'category' | 'label'>;

/** Binary ops: WGSL expression over `a`, `b` in the compute type, and the cpu twin. */
const BINARY = {
  add: { wgsl: 'a + b', cpu: (a: number, b: number) => a + b },
  sub: { wgsl: 'a - b', cpu: (a: number, b: number) => a - b },
  mul: { wgsl: 'a * b', cpu: (a: number, b: number) => a * b },
  div: { wgsl: 'a / b', cpu: (a: number, b: number) => a / b },
  maximum: { wgsl: 'max(a, b)', cpu: (a: number, b: number) => (Number.isNaN(a) || Number.isNaN(b) ? NaN : Math.max(a, b)) },
  minimum: { wgsl: 'min(a, b)', cpu: (a: number, b: number) => (Number.isNaN(a) || Number.isNaN(b) ? NaN : Math.min(a, b)) },
  // comparisons give 1 or 0 in the operands' dtype (masks for where() and backward rules)
  greater: { wgsl: 'select(C(0), C(1), a > b)', cpu: (a: number, b: number) => (a > b ? 1 : 0) },
  greaterEqual: { wgsl: 'select(C(0), C(1), a >= b)', cpu: (a: number, b: number) => (a >= b ? 1 : 0) },
  less: { wgsl: 'select(C(0), C(1), a < b)', cpu: (a: number, b: number) => (a < b ? 1 : 0) },
  lessEqual: { wgsl: 'select(C(0), C(1), a <= b)', cpu: (a: number, b: number) => (a <= b ? 1 : 0) },
  equal: { wgsl: 'select(C(0), C(1), a == b)', cpu: (a: number, b: number) => (a === b ? 1 : 0) },
  notEqual: { wgsl: 'select(C(0), C(1), a != b)', cpu: (a: number, b: number) => (a !== b ? 1 : 0) },
} as const;
export type BinaryOp = keyof typeof BINARY;

/** Computations run in f32 for float storage and in i32 for i32 (division truncates). */
function computeType(dtype: string): string {
  return dtype === 'i32' ? 'i32' : 'f32';
}

/**
 * How a kernel reads one operand at output index i: `full` (same index), `suffix` (the operand
 * is the trailing dims of the output, index i % size: a bias or a row), `splat` (one element),
 * or `strided` (general broadcasting through the shape and strides in the uniforms).
 */
type Access = 'full' | 'suffix' | 'splat' | 'strided';

export function accessOf(t: Tensor, out: Tensor): Access {
  if (t.size === out.size) return 'full';
  if (t.size === 1) return 'splat';
  const s = [...t.shape];
  while (s.length && s[0] === 1) s.shift();
  const tail = out.shape.slice(out.rank - s.length);
  return s.length <= out.rank && s.every((d, k) => d === tail[k]) ? 'suffix' : 'strided';
}

/** vec4 loads and stores pay off on llvmpipe (one vector load instead of four scalar ones). */
function canVectorize(n: number, operands: readonly { access: Access; size: number }[]): boolean {
  return n % 4 === 0 && operands.every((o) => o.access !== 'strided' && (o.access !== 'suffix' || o.size % 4 === 0));
}

function operandDecl(name: string, binding: number, T: string, access: Access, vec: boolean): string {
  const elem = vec && access !== 'splat' ? `vec4<${T}>` : T;
  return `@group(0) @binding(${binding}) var<storage, read> ${name}: array<${elem}>;`;
}

function operandLoad(name: string, C: string, access: Access, vec: boolean, size: string, offFn: string): string {
  const V = vec ? `vec4<${C}>` : C;
  switch (access) {
    case 'full': return `${V}(${name}[i])`;
    case 'suffix': return `${V}(${name}[i % ${vec ? `(${size} / 4u)` : size}])`;
    case 'splat': return vec ? `${V}(${C}(${name}[0]))` : `${C}(${name}[0])`;
    case 'strided': return `${C}(${name}[${offFn}(i)])`;
  }
}

function binarySource(op: BinaryOp, dtype: DType, accA: Access, accB: Access, vec: boolean): string {
  const T = wgslType(dtype), C = computeType(dtype);
  const typed = vec ? `vec4<${C}>` : C;
  const base = dtype === 'i32' && op === 'div' ? 'select(a / b, C(0), b == C(0))' : BINARY[op].wgsl;
  const expr = base.replaceAll('C(', `${typed}(`);
  const strided = accA === 'strided' || accB === 'strided';
  return `${enables(dtype)}
struct U { n: u32, rank: u32, sizeA: u32, sizeB: u32, stride: u32, p0: u32, p1: u32, p2: u32, shape: array<vec4u, 2>, sa: array<vec4u, 2>, sb: array<vec4u, 2> }
${operandDecl('x', 0, T, accA, vec)}
${operandDecl('y', 1, T, accB, vec)}
@group(0) @binding(2) var<storage, read_write> out: array<${vec ? `vec4<${T}>` : T}>;
@group(0) @binding(3) var<uniform> u: U;
${strided ? `${stridedOffsetFn('offA', 'sa')}\n${stridedOffsetFn('offB', 'sb')}` : ''}
@compute @workgroup_size(64) fn main(${LINEAR_PARAMS}) {
  ${LINEAR_INDEX.replace('let i', 'let first')}
  if (first >= u.stride) { return; } // padding threads of the last workgroup: their items belong to others
  for (var k = 0u; k < ${PER_THREAD}u; k++) {
    let i = first + k * u.stride;
    if (i >= u.n) { return; }
    let a = ${operandLoad('x', C, accA, vec, 'u.sizeA', 'offA')};
    let b = ${operandLoad('y', C, accB, vec, 'u.sizeB', 'offB')};
    out[i] = ${vec ? `vec4<${T}>` : T}(${expr});
  }
}`;
}

export function checkSameDType(op: string, ...ts: Tensor[]): void {
  const d = ts[0]!.dtype;
  for (const t of ts) {
    if (t.dtype !== d) throw new DTypeError(`${op}: dtypes differ (${ts.map((x) => `${x.describe()} ${x.dtype}`).join(', ')}); cast one with cast()`);
  }
}

/** Stores a number into a cpu view with the dtype's rounding. */
export function storeNumber(view: { [i: number]: number }, i: number, v: number, dtype: string): void {
  view[i] = dtype === 'f16' ? f32ToF16Bits(v) : dtype === 'i32' ? Math.trunc(v) : v;
}

/** out = a (op) b, both broadcast to out's shape. */
const binaryKernel = (op: BinaryOp) => defineKernel()(op, { inputs: ['a', 'b'], outputs: ['out'] });
const BINARY_KERNELS = new Map((Object.keys(BINARY) as BinaryOp[]).map((op) => [op, binaryKernel(op)]));

for (const [op, def] of BINARY_KERNELS) {
  registerKernel(def, {
    cpu(backend: CpuBackend, { inputs: { a, b }, outputs: { out } }) {
      const av = backend.values(a.storage), bv = backend.values(b.storage);
      const ov = backend.view(out.storage);
      const sa = broadcastStrides(a.shape, out.shape), sb = broadcastStrides(b.shape, out.shape);
      const f = BINARY[op].cpu;
      const isInt = out.dtype === 'i32';
      const offs = [0, 0];
      for (let i = 0; i < out.size; i++) {
        stridedOffsets(i, out.shape, [sa, sb], offs);
        let v = f(av[offs[0]!]!, bv[offs[1]!]!);
        if (isInt && op === 'div') v = bv[offs[1]!] === 0 ? 0 : Math.trunc(v);
        storeNumber(ov, i, v, out.dtype);
      }
    },
    webgpu(backend, { inputs: { a, b }, outputs: { out } }) {
      const accA = accessOf(a, out), accB = accessOf(b, out);
      const vec = canVectorize(out.size, [{ access: accA, size: a.size }, { access: accB, size: b.size }]);
      const sa = broadcastStrides(a.shape, out.shape), sb = broadcastStrides(b.shape, out.shape);
      const items = vec ? out.size / 4 : out.size;
      const threads = Math.ceil(items / PER_THREAD);
      backend.dispatch({
        label: op,
        source: binarySource(op, out.dtype, accA, accB, vec),
        buffers: [a.storage, b.storage, out.storage],
        uniforms: packUniforms([
          ['u32', items], ['u32', out.rank], ['u32', a.size], ['u32', b.size], ['u32', threads], ['u32', 0], ['u32', 0], ['u32', 0],
          ...padRank(out.shape, 1).map((d) => ['u32', d] as const),
          ...padRank(sa).map((d) => ['u32', d] as const),
          ...padRank(sb).map((d) => ['u32', d] as const),
        ]),
        workgroups: grid1D(threads),
      });
    },
  });
}

function binary(op: BinaryOp, a: Tensor, b: Tensor | number, options: OpOptions): Tensor {
  a.use(op);
  if (typeof b === 'number') return scalarOp(`${op}_scalar`, a, b, options);
  b.use(op);
  checkSameDType(op, a, b);
  const shape = broadcastShapes(a.shape, b.shape, op);
  if (shape.length > MAX_RANK) throw new ShapeError(`${op}: rank ${shape.length} exceeds ${MAX_RANK}`);
  const out = empty(shape, { dtype: a.dtype, device: a.backend, category: options.category, label: options.label }, op);
  runKernel(BINARY_KERNELS.get(op)!, { inputs: { a, b }, outputs: { out }, attrs: {} });
  return out;
}

/** a + b with NumPy broadcasting (b may be a number). */
export const add = (a: Tensor, b: Tensor | number, options: OpOptions = {}) => binary('add', a, b, options);
/** a - b with broadcasting. */
export const sub = (a: Tensor, b: Tensor | number, options: OpOptions = {}) => binary('sub', a, b, options);
/** a * b with broadcasting. */
export const mul = (a: Tensor, b: Tensor | number, options: OpOptions = {}) => binary('mul', a, b, options);
/** a / b with broadcasting (i32: truncating, x/0 = 0). */
export const div = (a: Tensor, b: Tensor | number, options: OpOptions = {}) => binary('div', a, b, options);
/** Element-wise max with broadcasting (NaN propagates on cpu; WGSL max leaves NaN handling to the device). */
export const maximum = (a: Tensor, b: Tensor | number, options: OpOptions = {}) => binary('maximum', a, b, options);
/** Element-wise min with broadcasting. */
export const minimum = (a: Tensor, b: Tensor | number, options: OpOptions = {}) => binary('minimum', a, b, options);
/** 1 where a > b, else 0 (in the operands' dtype), with broadcasting. */
export const greater = (a: Tensor, b: Tensor | number, options: OpOptions = {}) => binary('greater', a, b, options);
export const greaterEqual = (a: Tensor, b: Tensor | number, options: OpOptions = {}) => binary('greaterEqual', a, b, options);
export const less = (a: Tensor, b: Tensor | number, options: OpOptions = {}) => binary('less', a, b, options);
export const lessEqual = (a: Tensor, b: Tensor | number, options: OpOptions = {}) => binary('lessEqual', a, b, options);
export const equal = (a: Tensor, b: Tensor | number, options: OpOptions = {}) => binary('equal', a, b, options);
export const notEqual = (a: Tensor, b: Tensor | number, options: OpOptions = {}) => binary('notEqual', a, b, options);

function whereSource(condType: DType, dtype: DType): string {
  const T = wgslType(dtype);
  return `${enables(dtype, condType)}
struct U { n: u32, rank: u32, p0: u32, p1: u32, shape: array<vec4u, 2>, sc: array<vec4u, 2>, sa: array<vec4u, 2>, sb: array<vec4u, 2> }
@group(0) @binding(0) var<storage, read> c: array<${wgslType(condType)}>;
@group(0) @binding(1) var<storage, read> x: array<${T}>;
@group(0) @binding(2) var<storage, read> y: array<${T}>;
@group(0) @binding(3) var<storage, read_write> out: array<${T}>;
@group(0) @binding(4) var<uniform> u: U;
${stridedOffsetFn('offC', 'sc')}
${stridedOffsetFn('offA', 'sa')}
${stridedOffsetFn('offB', 'sb')}
@compute @workgroup_size(64) fn main(${LINEAR_PARAMS}) {
  ${LINEAR_INDEX}
  if (i >= u.n) { return; }
  out[i] = select(y[offB(i)], x[offA(i)], c[offC(i)] != ${wgslType(condType)}(0));
}`;
}

/** out = cond != 0 ? a : b, all three broadcast to out's shape. */
const whereKernel = defineKernel()('where', { inputs: ['cond', 'a', 'b'], outputs: ['out'] });

registerKernel(whereKernel, {
  cpu(backend: CpuBackend, { inputs: { cond: c, a, b }, outputs: { out } }) {
    const cv = backend.values(c.storage), av = backend.view(a.storage), bv = backend.view(b.storage);
    const ov = backend.view(out.storage);
    const st = [c, a, b].map((t) => broadcastStrides(t.shape, out.shape));
    const offs = [0, 0, 0];
    for (let i = 0; i < out.size; i++) {
      stridedOffsets(i, out.shape, st, offs);
      ov[i] = cv[offs[0]!] !== 0 ? av[offs[1]!]! : bv[offs[2]!]!; // raw storage values: exact for every dtype
    }
  },
  webgpu(backend, { inputs: { cond: c, a, b }, outputs: { out } }) {
    const st = [c, a, b].map((t) => padRank(broadcastStrides(t.shape, out.shape)).map((d) => ['u32', d] as const));
    backend.dispatch({
      label: 'where',
      source: whereSource(c.dtype, out.dtype),
      buffers: [c.storage, a.storage, b.storage, out.storage],
      uniforms: packUniforms([['u32', out.size], ['u32', out.rank], ['u32', 0], ['u32', 0],
        ...padRank(out.shape, 1).map((d) => ['u32', d] as const), ...st[0]!, ...st[1]!, ...st[2]!]),
      workgroups: grid1D(out.size),
    });
  },
});

/** cond ? a : b element-wise, all three broadcast; cond is any dtype (non-zero is true). */
export function where(cond: Tensor, a: Tensor, b: Tensor, options: OpOptions = {}): Tensor {
  for (const t of [cond, a, b]) t.use('where');
  checkSameDType('where', a, b);
  const shape = broadcastShapes(broadcastShapes(cond.shape, a.shape, 'where'), b.shape, 'where');
  if (shape.length > MAX_RANK) throw new ShapeError(`where: rank ${shape.length} exceeds ${MAX_RANK}`);
  const out = empty(shape, { dtype: a.dtype, device: a.backend, category: options.category, label: options.label }, 'where');
  runKernel(whereKernel, { inputs: { cond, a, b }, outputs: { out }, attrs: {} });
  return out;
}

function axpySource(dtype: DType, vec: boolean): string {
  const T = vec ? `vec4<${wgslType(dtype)}>` : wgslType(dtype);
  const F = vec ? 'vec4<f32>' : 'f32';
  return `${enables(dtype)}
struct U { n: u32, alpha: f32, stride: u32 }
@group(0) @binding(0) var<storage, read> x: array<${T}>;
@group(0) @binding(1) var<storage, read_write> y: array<${T}>;
@group(0) @binding(2) var<uniform> u: U;
@compute @workgroup_size(64) fn main(${LINEAR_PARAMS}) {
  ${LINEAR_INDEX.replace('let i', 'let first')}
  if (first >= u.stride) { return; } // padding threads of the last workgroup: their items belong to others
  for (var k = 0u; k < ${PER_THREAD}u; k++) {
    let i = first + k * u.stride;
    if (i >= u.n) { return; }
    y[i] = ${T}(${F}(y[i]) + u.alpha * ${F}(x[i]));
  }
}`;
}

/** In place: y += alpha * x. */
const axpyKernel = defineKernel<{ alpha: number }>()('axpy', { inputs: ['x'], outputs: ['y'] });

registerKernel(axpyKernel, {
  cpu(backend: CpuBackend, { inputs, outputs: { y }, attrs: { alpha } }) {
    const x = backend.values(inputs.x.storage);
    const yv = backend.values(y.storage), out = backend.view(y.storage);
    const f = Math.fround;
    for (let i = 0; i < y.size; i++) storeNumber(out, i, y.dtype === 'f64' ? yv[i]! + alpha * x[i]! : f(yv[i]! + f(f(alpha) * x[i]!)), y.dtype);
  },
  webgpu(backend, { inputs: { x }, outputs: { y }, attrs: { alpha } }) {
    const vec = y.size % 4 === 0;
    const items = vec ? y.size / 4 : y.size;
    const threads = Math.ceil(items / PER_THREAD);
    backend.dispatch({
      label: 'axpy', source: axpySource(y.dtype, vec), buffers: [x.storage, y.storage],
      uniforms: packUniforms([['u32', items], ['f32', alpha], ['u32', threads]]), workgroups: grid1D(threads),
    });
  },
});

/** In place: y += alpha * x (same shape and dtype). Accumulates gradients without a new buffer. */
export function addScaledInPlace(y: Tensor, x: Tensor, alpha = 1): Tensor {
  y.use('addScaledInPlace'); x.use('addScaledInPlace');
  checkSameDType('addScaledInPlace', y, x);
  if (y.dtype === 'i32') throw new DTypeError('addScaledInPlace: float tensors only');
  if (y.shape.join() !== x.shape.join() || y.rank !== x.rank) {
    throw new ShapeError(`addScaledInPlace: shapes differ: ${formatShape(y.shape)} += ${formatShape(x.shape)}`);
  }
  if (y.storage === x.storage) throw new ShapeError('addScaledInPlace: x and y share storage; clone one first');
  runKernel(axpyKernel, { inputs: { x }, outputs: { y }, attrs: { alpha } });
  return y;
}
