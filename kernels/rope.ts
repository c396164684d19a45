/**
 * Rotary position embedding in Hugging Face's rotate-half convention, and its backward:
 *
 *   inv_freq_i = 1 / theta^(2i / D)              (i < D/2, computed in f32 as HF does)
 *   a_pi = f32(p * inv_freq_i)                   (p = t + positionOffset)
 *   y[i]       = x[i] cos a - x[i + D/2] sin a     (= x * cos + rotate_half(x) * sin,
 *   y[i + D/2] = x[i + D/2] cos a + x[i] sin a       rotate_half(x) = cat(-x2, x1))
 *
 * The backward is the transpose, a rotation by -a: dx = rope with sin negated.
 *
 * Layout: x is [B, T, nHeads, D] by default ('BTHD': what a projection gives after a free
 * reshape of [B*T, nHeads*D]); `layout: 'BHTD'` takes HF's [B, nHeads, T, D]. f16 storage is
 * computed in f32. The inverse frequencies are computed on the host (f64 pow, rounded to f32 like
 * PyTorch's) and uploaded as a small temporary tensor (or passed in, `invFreq`), so both backends
 * use the same angles; WGSL exp2/pow would be tens of ulp off. WebGPU evaluates cos/sin with its
 * own range reduction and polynomials (about 1 ulp for |a| < 1e5), because built-in sin/cos may
 * lose accuracy far from zero.
 */
import type { CpuBackend } from '../engine/cpu/backend.js';
import { empty, fromArray } from '../engine/creation.js';
import { ShapeError, StepError } from '../engine/errors.js';
import type { Category } from '../engine/memory.js';
import type { KernelCallOf } from '../engine/registry.js';
import { defineKernel, registerKernel, runKernel } from '../engine/registry.js';
import type { Tensor } from '../engine/tensor.js';
import { checkFloat, checkNumberOption, cpuStore, enableF16, floatType } from './fused-shared.js';
import { grid1D, LINEAR_INDEX, LINEAR_PARAMS, packUniforms } from './wgsl.js';

export type RopeLayout = 'BTHD' | 'BHTD';

export interface RopeOptions {
  /** Base of the frequencies (default 10000, LLaMA's rope_theta). */
  theta?: number;
  /** Position of the first time step (default 0; the cache length when decoding). */
  positionOffset?: number;
  /** 'BTHD' = [B, T, nHeads, D] (default) or 'BHTD' = [B, nHeads, T, D]. */
  layout?: RopeLayout;
  /**
   * The inverse frequencies as an f32 tensor [headDim / 2] on x's device (from `ropeInvFreq`), to
   * skip the small upload (and the submit it forces on WebGPU) that each call makes otherwise;
   * theta is then not used.
   */
  invFreq?: Tensor;
  /** Memory category of the output (default `temporary`). */
  category?: Category;
}

/** HF's inv_freq: 1 / theta^(f32(2i / D)), each step rounded to f32 as PyTorch computes it. */
export function ropeInvFreq(headDim: number, theta: number): Float32Array {
  const out = new Float32Array(headDim / 2);
  for (let i = 0; i < out.length; i++) out[i] = 1 / Math.fround(theta ** Math.fround((2 * i) / headDim));
  return out;
}

/** Applies the rotary embedding to x (see the layout option). */
export function rope(x: Tensor, options: RopeOptions = {}): Tensor {
  return applyRope('rope', x, options, 1);
}

/** The gradient of rope with respect to its input, given dy (same options as the forward). */
export function ropeBackward(dy: Tensor, options: RopeOptions = {}): Tensor {
  return applyRope('ropeBackward', dy, options, -1);
}

interface RopeAttrs { pairs: number; half: number; T: number; rowStride: number; offset: number; sign: number }

/** y = x rotated by position * invFreq (sign -1: the inverse rotation, the backward). */
const ropeKernel = (op: 'rope' | 'ropeBackward') => defineKernel<RopeAttrs>()(op, { inputs: ['x', 'invFreq'], outputs: ['y'] });
const ROPE_KERNELS = { rope: ropeKernel('rope'), ropeBackward: ropeKernel('ropeBackward') };

function applyRope(op: 'rope' | 'ropeBackward', x: Tensor, options: RopeOptions, sign: 1 | -1): Tensor {
  checkFloat(op, 'x', x);
  const theta = checkNumberOption(op, 'theta', options.theta ?? 10000, 'positive');
  const offset = checkNumberOption(op, 'positionOffset', options.positionOffset ?? 0, 'index');
  const layout = options.layout ?? 'BTHD';
  if (layout !== 'BTHD' && layout !== 'BHTD') throw new StepError(`${op}: layout must be 'BTHD' or 'BHTD', got ${String(layout)}`);
  if (x.rank !== 4) throw new ShapeError(`${op}: x must be [B, T, nHeads, headDim] (layout ${layout === 'BTHD' ? "'BTHD'" : "'BHTD': [B, nHeads, T, headDim]"}), got ${x.describe()}`);
  const D = x.shape[3]!;
  if (D % 2 !== 0) throw new ShapeError(`${op}: headDim ${D} of ${x.describe()} must be even (rotate-half pairs i with i + D/2)`);
  const [, d1, d2] = x.shape as [number, number, number, number];
  const T = layout === 'BTHD' ? d1 : d2;
  if (T > 0 && offset + T > 2 ** 24) throw new StepError(`${op}: positions up to ${offset + T} exceed 2^24, which f32 cannot count exactly`);
  const attrs: RopeAttrs = { pairs: x.size / 2, half: D / 2, T, rowStride: layout === 'BTHD' ? d2 : 1, offset, sign };
  const given = options.invFreq;
  if (given) {
    given.use(op);
    if (given.dtype !== 'f32' || given.rank !== 1 || given.shape[0] !== D / 2) {
      throw new ShapeError(`${op}: invFreq ${given.describe()} (${given.dtype}) must be f32 [headDim / 2] = [${D / 2}]; make it with fromArray(ropeInvFreq(${D}, theta))`);
    }
  }
  const y = empty(x.shape, { dtype: x.dtype, device: x.backend, category: options.category }, op);
  const invFreq = given ?? fromArray(ropeInvFreq(D, theta), [D / 2], { dtype: 'f32', device: x.backend, label: `${op} inv_freq` });
  try {
    runKernel(ROPE_KERNELS[op], { inputs: { x, invFreq }, outputs: { y }, attrs });
  } finally {
    if (!given) invFreq.dispose();
  }
  return y;
}

function ropeCpu(backend: CpuBackend, { inputs, outputs, attrs: a }: KernelCallOf<typeof ROPE_KERNELS.rope>): void {
  const x = backend.values(inputs.x.storage), invFreq = backend.values(inputs.invFreq.storage);
  const store = cpuStore(backend, outputs.y.storage);
  for (let i = 0; i < a.pairs; i++) {
    const row = Math.floor(i / a.half), j = i % a.half;
    const p = a.offset + (Math.floor(row / a.rowStride) % a.T);
    const angle = Math.fround(p * invFreq[j]!);
    const c = Math.cos(angle), s = a.sign * Math.sin(angle);
    const lo = row * 2 * a.half + j, hi = lo + a.half;
    const x1 = x[lo]!, x2 = x[hi]!;
    store(lo, x1 * c - x2 * s);
    store(hi, x2 * c + x1 * s);
  }
}

/**
 * (cos a, sin a) in f32: a = k pi/2 + r with pi/2 split in three (the first two parts have 8
 * significant bits, so k * part is exact for |k| < 2^16), then Taylor polynomials on |r| <= pi/4
 * (truncation error < 2e-9) and the quadrant k mod 4.
 */
const SINCOS = `fn sincos(a: f32) -> vec2f {
  let k = round(a * 0.63661977236758134);
  let r = ((a - k * 1.5703125) - k * 4.84466552734375e-4) + k * 6.397578431460715e-7;
  let r2 = r * r;
  let s = r * (1.0 + r2 * (-1.0 / 6.0 + r2 * (1.0 / 120.0 + r2 * (-1.0 / 5040.0 + r2 * (1.0 / 362880.0)))));
  let c = 1.0 + r2 * (-0.5 + r2 * (1.0 / 24.0 + r2 * (-1.0 / 720.0 + r2 * (1.0 / 40320.0 + r2 * (-1.0 / 3628800.0)))));
  switch (i32(k) & 3) {
    case 0: { return vec2f(c, s); }
    case 1: { return vec2f(-s, c); }
    case 2: { return vec2f(-c, -s); }
    default: { return vec2f(s, -c); }
  }
}`;

/** One thread per rotated pair (x[j], x[j + D/2]). */
function ropeSource(t: string): string {
  return `${enableF16(t)}
struct U { pairs: u32, half: u32, T: u32, row_stride: u32, offset: u32, sign: f32 }
@group(0) @binding(0) var<storage, read> x: array<${t}>;
@group(0) @binding(1) var<storage, read> inv_freq: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<${t}>;
@group(0) @binding(3) var<uniform> u: U;
${SINCOS}
@compute @workgroup_size(64) fn main(${LINEAR_PARAMS}) {
  ${LINEAR_INDEX}
  if (i >= u.pairs) { return; }
  let row = i / u.half;
  let j = i % u.half;
  let p = u.offset + (row / u.row_stride) % u.T;
  let cs = sincos(f32(p) * inv_freq[j]);
  let s = u.sign * cs.y;
  let lo = row * 2u * u.half + j;
  let hi = lo + u.half;
  let x1 = f32(x[lo]);
  let x2 = f32(x[hi]);
  y[lo] = ${t}(x1 * cs.x - x2 * s);
  y[hi] = ${t}(x2 * cs.x + x1 * s);
}`;
}

for (const def of Object.values(ROPE_KERNELS)) {
  registerKernel(def, {
    cpu: ropeCpu,
    webgpu(backend, { inputs, outputs, attrs: a }) {
      const x = inputs.x.storage, invFreq = inputs.invFreq.storage, y = outputs.y.storage;
      backend.dispatch({
        label: def.op,
        source: ropeSource(floatType(x)),
        buffers: [x, invFreq, y],
        uniforms: packUniforms([['u32', a.pairs], ['u32', a.half], ['u32', a.T], ['u32', a.rowStride], ['u32', a.offset], ['f32', a.sign]]),
        workgroups: grid1D(a.pairs),
      });
    },
  });
}
