import type { CpuBackend } from '../engine/cpu/backend.js';
import { empty } from '../engine/creation.js';
import type { CreateOptions } from '../engine/creation.js';
import type { DType } from '../engine/dtype.js';
import { assertDType, f32ToF16Bits } from '../engine/dtype.js';
import { DTypeError, StepError } from '../engine/errors.js';
import { defineKernel, registerKernel, runKernel } from '../engine/registry.js';
import type { Tensor } from '../engine/tensor.js';
import { enables, grid1D, LINEAR_INDEX, LINEAR_PARAMS, packUniforms, PER_THREAD, wgslType } from './wgsl.js';

type OpOptions = Pick<CreateOptions, 'category' | 'label'>;

/**
 * Unary and tensor-scalar ops: a WGSL expression of `a` (and the scalar `s`) in f32, and the cpu
 * twin in f64 (rounded once when stored). `int` marks ops that also take i32 tensors.
 */
const UNARY: Record<string, { wgsl: string; cpu: (a: number, s: number) => number; int?: boolean }> = {
  neg: { wgsl: '-a', cpu: (a) => -a, int: true },
  abs: { wgsl: 'abs(a)', cpu: (a) => Math.abs(a), int: true },
  exp: { wgsl: 'exp(a)', cpu: (a) => Math.exp(a) },
  log: { wgsl: 'log(a)', cpu: (a) => Math.log(a) },
  sqrt: { wgsl: 'sqrt(a)', cpu: (a) => Math.sqrt(a) },
  rsqrt: { wgsl: 'inverseSqrt(a)', cpu: (a) => 1 / Math.sqrt(a) },
  square: { wgsl: 'a * a', cpu: (a) => a * a, int: true },
  sigmoid: { wgsl: '1.0 / (1.0 + exp(-a))', cpu: (a) => 1 / (1 + Math.exp(-a)) },
  silu: { wgsl: 'a / (1.0 + exp(-a))', cpu: (a) => a / (1 + Math.exp(-a)) },
  tanh: { wgsl: 'tanh(a)', cpu: (a) => Math.tanh(a) },
  relu: { wgsl: 'max(a, 0)', cpu: (a) => (a > 0 ? a : 0), int: true },
  // tensor-scalar forms (s in the uniforms)
  add_scalar: { wgsl: 'a + s', cpu: (a, s) => a + s, int: true },
  sub_scalar: { wgsl: 'a - s', cpu: (a, s) => a - s, int: true },
  rsub_scalar: { wgsl: 's - a', cpu: (a, s) => s - a, int: true },
  mul_scalar: { wgsl: 'a * s', cpu: (a, s) => a * s, int: true },
  div_scalar: { wgsl: 'a / s', cpu: (a, s) => a / s },
  rdiv_scalar: { wgsl: 's / a', cpu: (a, s) => s / a },
  maximum_scalar: { wgsl: 'max(a, s)', cpu: (a, s) => Math.max(a, s), int: true },
  minimum_scalar: { wgsl: 'min(a, s)', cpu: (a, s) => Math.min(a, s), int: true },
  greater_scalar: { wgsl: 'select(0, 1, a > s)', cpu: (a, s) => (a > s ? 1 : 0), int: true },
  greaterEqual_scalar: { wgsl: 'select(0, 1, a >= s)', cpu: (a, s) => (a >= s ? 1 : 0), int: true },
  less_scalar: { wgsl: 'select(0, 1, a < s)', cpu: (a, s) => (a < s ? 1 : 0), int: true },
  lessEqual_scalar: { wgsl: 'select(0, 1, a <= s)', cpu: (a, s) => (a <= s ? 1 : 0), int: true },
  equal_scalar: { wgsl: 'select(0, 1, a == s)', cpu: (a, s) => (a === s ? 1 : 0), int: true },
  notEqual_scalar: { wgsl: 'select(0, 1, a != s)', cpu: (a, s) => (a !== s ? 1 : 0), int: true },
  // x^p: WGSL pow is exp2(p*log2(x)), undefined for x <= 0, so powf (below) handles the signs
  pow_scalar: { wgsl: 'powf(a, s)', cpu: (a, s) => Math.pow(a, s) },
  cast: { wgsl: 'a', cpu: (a) => a, int: true },
};

const POWF = `fn powf(a: f32, s: f32) -> f32 {
  if (s == 0.0) { return 1.0; }
  if (s == 1.0) { return a; }
  if (s == 2.0) { return a * a; }
  if (a > 0.0) { return pow(a, s); }
  if (a == 0.0) { return select(1.0 / a, 0.0, s > 0.0); } // runtime inf: constant inf is not valid WGSL
  if (fract(s) != 0.0) { return sqrt(a); } // runtime NaN (a < 0 here)
  let m = pow(-a, s);
  return select(m, -m, abs(s) % 2.0 == 1.0);
}`;

/**
 * WGSL for one unary op. With `vec`, each thread maps a vec4 (one vector load and store instead
 * of four scalar ones on llvmpipe); scalars and the literals 0 and 1 become vectors.
 */
function unarySource(op: string, from: DType, to: DType, vec: boolean): string {
  const isInt = from === 'i32';
  const C = isInt ? 'i32' : 'f32';
  const V = vec ? `vec4<${C}>` : C;
  const In = vec ? `vec4<${wgslType(from)}>` : wgslType(from), Out = vec ? `vec4<${wgslType(to)}>` : wgslType(to);
  const expr = vec ? UNARY[op]!.wgsl.replaceAll('select(0, 1, ', `select(${V}(0), ${V}(1), `).replaceAll('max(a, 0)', `max(a, ${V}(0))`) : UNARY[op]!.wgsl;
  return `${enables(from, to)}
struct U { n: u32, s: f32, si: i32, stride: u32 }
@group(0) @binding(0) var<storage, read> x: array<${In}>;
@group(0) @binding(1) var<storage, read_write> out: array<${Out}>;
@group(0) @binding(2) var<uniform> u: U;
@compute @workgroup_size(64) fn main(${LINEAR_PARAMS}) {
  ${LINEAR_INDEX.replace('let i', 'let first')}
  if (first >= u.stride) { return; } // padding threads of the last workgroup: their items belong to others
  let s = ${V}(${isInt ? 'u.si' : 'u.s'});
  for (var k = 0u; k < ${PER_THREAD}u; k++) {
    let i = first + k * u.stride;
    if (i >= u.n) { return; }
    let a = ${V}(x[i]);
    out[i] = ${Out}(${expr});
  }
}
${op === 'pow_scalar' ? POWF : ''}`;
}

/** out = op(x, scalar) element-wise; `scalar` is 0 for the ops that take none. */
const unaryKernel = (op: string) => defineKernel<{ scalar: number }>()(op, { inputs: ['x'], outputs: ['out'] });
const UNARY_KERNELS = new Map(Object.keys(UNARY).map((op) => [op, unaryKernel(op)]));

for (const [op, def] of UNARY_KERNELS) {
  registerKernel(def, {
    cpu(backend: CpuBackend, { inputs, outputs: { out }, attrs: { scalar: s } }) {
      const x = backend.values(inputs.x.storage);
      const ov = backend.view(out.storage);
      const f = UNARY[op]!.cpu;
      const isInt = out.dtype === 'i32';
      // f32 operands see the scalar as the f32 the GPU sees
      const sv = out.dtype === 'f64' || isInt ? s : Math.fround(s);
      for (let i = 0; i < out.size; i++) {
        const v = f(x[i]!, sv);
        ov[i] = out.dtype === 'f16' ? f32ToF16Bits(v) : isInt ? v | 0 : v;
      }
    },
    webgpu(backend, { inputs: { x }, outputs: { out }, attrs: { scalar: s } }) {
      const vec = out.size % 4 === 0 && op !== 'pow_scalar'; // powf branches per element
      const items = vec ? out.size / 4 : out.size;
      const threads = Math.ceil(items / PER_THREAD);
      backend.dispatch({
        label: op,
        source: unarySource(op, x.dtype, out.dtype, vec),
        buffers: [x.storage, out.storage],
        uniforms: packUniforms([['u32', items], ['f32', s], ['i32', Math.trunc(s)], ['u32', threads]]),
        workgroups: grid1D(threads),
      });
    },
  });
}

function unary(op: string, x: Tensor, options: OpOptions, scalar?: number): Tensor {
  x.use(op);
  if (x.dtype === 'i32' && !UNARY[op]!.int) throw new DTypeError(`${op}: ${x.describe()} is i32; ${op} needs a float tensor (cast() it)`);
  if (scalar !== undefined) {
    if (typeof scalar !== 'number' || Number.isNaN(scalar)) throw new StepError(`${op}: the scalar must be a number, got ${String(scalar)}`);
    if (x.dtype === 'i32' && !Number.isInteger(scalar)) throw new DTypeError(`${op}: ${x.describe()} is i32 but the scalar ${scalar} is not an integer`);
  }
  const out = empty(x.shape, { dtype: x.dtype, device: x.backend, category: options.category, label: options.label }, op);
  runKernel(UNARY_KERNELS.get(op)!, { inputs: { x }, outputs: { out }, attrs: { scalar: scalar ?? 0 } });
  return out;
}

/** Tensor-scalar form of a binary op (`add_scalar`, ...), used by add(x, 2) and friends. */
export function scalarOp(op: string, x: Tensor, s: number, options: OpOptions = {}): Tensor {
  if (!UNARY[op]) throw new StepError(`${op}: no tensor-scalar form`);
  return unary(op, x, options, s);
}

export const neg = (x: Tensor, o: OpOptions = {}) => unary('neg', x, o);
export const abs = (x: Tensor, o: OpOptions = {}) => unary('abs', x, o);
export const exp = (x: Tensor, o: OpOptions = {}) => unary('exp', x, o);
export const log = (x: Tensor, o: OpOptions = {}) => unary('log', x, o);
export const sqrt = (x: Tensor, o: OpOptions = {}) => unary('sqrt', x, o);
export const rsqrt = (x: Tensor, o: OpOptions = {}) => unary('rsqrt', x, o);
export const square = (x: Tensor, o: OpOptions = {}) => unary('square', x, o);
export const sigmoid = (x: Tensor, o: OpOptions = {}) => unary('sigmoid', x, o);
export const silu = (x: Tensor, o: OpOptions = {}) => unary('silu', x, o);
export const tanh = (x: Tensor, o: OpOptions = {}) => unary('tanh', x, o);
export const relu = (x: Tensor, o: OpOptions = {}) => unary('relu', x, o);
/** s - x. */
export const rsub = (x: Tensor, s: number, o: OpOptions = {}) => unary('rsub_scalar', x, o, s);
/** s / x. */
export const rdiv = (x: Tensor, s: number, o: OpOptions = {}) => unary('rdiv_scalar', x, o, s);
/** x^p for a number p (negative x with a non-integer p gives NaN, as Math.pow does). */
export const pow = (x: Tensor, p: number, o: OpOptions = {}) => unary('pow_scalar', x, o, p);

/** A copy of x in another dtype (f32 <-> f16 rounds to nearest even; float -> i32 truncates). */
export function cast(x: Tensor, dtype: DType, options: OpOptions = {}): Tensor {
  x.use('cast');
  assertDType(dtype, 'cast');
  const out = empty(x.shape, { dtype, device: x.backend, category: options.category, label: options.label }, 'cast');
  runKernel(UNARY_KERNELS.get('cast')!, { inputs: { x }, outputs: { out }, attrs: { scalar: 0 } });
  return out;
}
