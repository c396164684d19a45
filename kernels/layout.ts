import type { CpuBackend } from '../engine/cpu/backend.js';
import { empty, fillInPlace } from '../engine/creation.js';
import { DTypeError, ShapeError, StepError } from '../engine/errors.js';
import type { Category } from '../engine/memory.js';
import { defineKernel, registerKernel, runKernel } from '../engine/registry.js';
import type { Shape } from '../engine/shape.js';
import { formatShape } from '../engine/shape.js';
import type { Tensor } from '../engine/tensor.js';
import type { WalkDim } from './layout-strides.js';
import { checkWalkRank, contiguousStrides, dimAt, normalizeAxis, simplifyWalk, walkFields, walkOffsets } from './layout-strides.js';
import { enables, grid1D, LINEAR_INDEX, LINEAR_PARAMS, packUniforms } from './wgsl.js';

export * from './layout-rows.js';

/** Where the output of a layout op is counted, and its label. */
export interface LayoutOptions {
  category?: Category;
  label?: string;
}

/**
 * stridedCopy: for every linear index i of the walk, dst[dstOffset + walk(i).dst] =
 * src[srcOffset + walk(i).src] (strides index 0 = src, 1 = dst). A bit copy: the kernel
 * never converts, so NaN payloads, -0 and f16 bits survive unchanged. One kernel serves
 * permute, transpose, slice and each input of concat.
 */
function stridedCopySource(elem: 'u32' | 'f16'): string {
  return `${enables(elem === 'f16' ? 'f16' : 'f32')}
struct U { n: u32, rank: u32, src_off: u32, dst_off: u32, shape: array<vec4u, 2>, sst: array<vec4u, 2>, dst: array<vec4u, 2> }
@group(0) @binding(0) var<storage, read> src: array<${elem}>;
@group(0) @binding(1) var<storage, read_write> dst: array<${elem}>;
@group(0) @binding(2) var<uniform> u: U;
@compute @workgroup_size(64) fn main(${LINEAR_PARAMS}) {
  ${LINEAR_INDEX}
  if (i >= u.n) { return; }
  var rest = i;
  var s = u.src_off;
  var d = u.dst_off;
  for (var k = 0u; k < u.rank; k++) {
    let size = ${dimAt('shape', 'k')};
    let c = rest % size;
    rest = rest / size;
    s += c * ${dimAt('sst', 'k')};
    d += c * ${dimAt('dst', 'k')};
  }
  dst[d] = src[s];
}`;
}

interface StridedCopyAttrs {
  walk: WalkDim[];
  n: number;
  srcOffset: number;
  dstOffset: number;
}

const stridedCopyKernel = defineKernel<StridedCopyAttrs>()('stridedCopy', { inputs: ['src'], outputs: ['dst'] });

registerKernel(stridedCopyKernel, {
  cpu(backend: CpuBackend, { inputs, outputs, attrs: { walk, n, srcOffset, dstOffset } }) {
    const src = backend.view(inputs.src.storage), dst = backend.view(outputs.dst.storage);
    const off = [0, 0];
    for (let i = 0; i < n; i++) {
      walkOffsets(i, walk, [srcOffset, dstOffset], off);
      dst[off[1]!] = src[off[0]!]!;
    }
  },
  webgpu(backend, { inputs, outputs, attrs: { walk, n, srcOffset, dstOffset } }) {
    const src = inputs.src.storage, dst = outputs.dst.storage;
    backend.dispatch({
      label: 'stridedCopy',
      source: stridedCopySource(src.dtype === 'f16' ? 'f16' : 'u32'),
      buffers: [src, dst],
      uniforms: packUniforms([['u32', n], ['u32', walk.length], ['u32', srcOffset], ['u32', dstOffset], ...walkFields(walk, [0, 1])]),
      workgroups: grid1D(n),
    });
  },
});

/** Records a strided copy of `x` into `out` (both alive, same dtype); walk given outermost first. */
function copyStrided(op: string, x: Tensor, out: Tensor, dims: WalkDim[], srcOffset: number, dstOffset: number): void {
  const n = dims.reduce((p, d) => p * d.size, 1);
  if (n === 0) return;
  const walk = simplifyWalk(dims);
  checkWalkRank(walk, op, x.shape);
  runKernel(stridedCopyKernel, { inputs: { src: x }, outputs: { dst: out }, attrs: { walk, n, srcOffset, dstOffset } });
}

function output(op: string, x: Tensor, shape: Shape, options: LayoutOptions): Tensor {
  return empty(shape, { dtype: x.dtype, device: x.backend, category: options.category, label: options.label }, op);
}

/** A contiguous copy of `x` with its dims reordered: output dim k is input dim `dims[k]` (negative allowed). */
export function permute(x: Tensor, dims: readonly number[], options: LayoutOptions = {}): Tensor {
  x.use('permute');
  const rank = x.rank;
  if (!Array.isArray(dims) || dims.length !== rank) {
    throw new ShapeError(`permute: dims [${String(dims)}] must list each of the ${rank} dims of ${x.describe()} once`);
  }
  const order = dims.map((d) => normalizeAxis(d, rank, 'permute', x.shape));
  if (new Set(order).size !== rank) {
    throw new ShapeError(`permute: dims [${dims.join(', ')}] repeat a dim of ${x.describe()}; give a permutation of 0..${rank - 1}`);
  }
  const outShape = order.map((d) => x.shape[d]!);
  const out = output('permute', x, outShape, options);
  const inStrides = contiguousStrides(x.shape), outStrides = contiguousStrides(outShape);
  copyStrided('permute', x, out, order.map((d, k) => ({ size: outShape[k]!, strides: [inStrides[d]!, outStrides[k]!] })), 0, 0);
  return out;
}

/** A contiguous copy of `x` with dims `dim0` and `dim1` swapped (negative allowed). */
export function transpose(x: Tensor, dim0: number, dim1: number, options: LayoutOptions = {}): Tensor {
  x.use('transpose');
  const a = normalizeAxis(dim0, x.rank, 'transpose', x.shape), b = normalizeAxis(dim1, x.rank, 'transpose', x.shape);
  const order = x.shape.map((_, k) => (k === a ? b : k === b ? a : k));
  return permute(x, order, options);
}

/** One axis of a slice: elements start, start+step, ... below end (Python rules: negatives count from the end, clamped). */
export interface SliceSpec {
  axis: number;
  start?: number;
  end?: number;
  step?: number;
}

/**
 * A contiguous copy of part of `x`, in one of two forms:
 * `slice(x, {axis, start, end, step})` (or a list of such specs, PyTorch `x[a:b:s]` rules), or
 * `slice(x, begin, size)` with one begin per leading dim and size -1 meaning "to the end" (tfjs rules).
 */
/** Where a slice reads: start and step per dim, the output shape, and the options (either call form). */
export function resolveSlice(
  x: Tensor, a: SliceSpec | readonly SliceSpec[] | readonly number[], b?: readonly number[] | LayoutOptions, c?: LayoutOptions,
): { starts: number[]; steps: number[]; outShape: number[]; options: LayoutOptions } {
  const rank = x.rank;
  const starts = new Array<number>(rank).fill(0), steps = new Array<number>(rank).fill(1);
  const outShape = [...x.shape];
  let options: LayoutOptions;
  if (Array.isArray(b)) {
    const begin = a as readonly number[], size = b as readonly number[];
    options = c ?? {};
    if (begin.length > rank || size.length !== begin.length) {
      throw new ShapeError(`slice: begin [${begin.join(', ')}] and size [${size.join(', ')}] must have the same length, at most the rank ${rank} of ${x.describe()}`);
    }
    begin.forEach((s, k) => {
      const dim = x.shape[k]!, n = size[k]!;
      if (!Number.isInteger(s) || s < 0 || s > dim) throw new ShapeError(`slice: begin ${s} at dim ${k} is outside 0..${dim} of ${x.describe()}`);
      const len = n === -1 ? dim - s : n;
      if (!Number.isInteger(len) || len < 0 || s + len > dim) {
        throw new ShapeError(`slice: size ${n} at dim ${k} from begin ${s} exceeds ${x.describe()} (dim ${dim}); use -1 for "to the end"`);
      }
      starts[k] = s; outShape[k] = len;
    });
  } else {
    options = (b as LayoutOptions | undefined) ?? {};
    const specs: readonly SliceSpec[] = Array.isArray(a) ? a : [a as SliceSpec];
    if (specs.some((sp) => typeof sp !== 'object' || sp === null)) {
      throw new ShapeError(`slice: give {axis, start, end, step} specs, or begin and size arrays; got [${String(a)}] for ${x.describe()}`);
    }
    const seen = new Set<number>();
    for (const sp of specs) {
      const k = normalizeAxis(sp.axis, rank, 'slice', x.shape);
      if (rank === 0) throw new ShapeError(`slice: ${x.describe()} is a scalar; it has no axis to slice`);
      if (seen.has(k)) throw new ShapeError(`slice: axis ${sp.axis} given twice for ${x.describe()}`);
      seen.add(k);
      const dim = x.shape[k]!, step = sp.step ?? 1;
      if (!Number.isInteger(step) || step < 1) throw new ShapeError(`slice: step ${step} on axis ${sp.axis} must be a positive integer`);
      for (const [name, v] of [['start', sp.start], ['end', sp.end]] as const) {
        if (v !== undefined && !Number.isInteger(v)) throw new ShapeError(`slice: ${name} ${v} on axis ${sp.axis} must be an integer`);
      }
      const clamp = (v: number) => Math.min(Math.max(v < 0 ? v + dim : v, 0), dim);
      const start = clamp(sp.start ?? 0), end = clamp(sp.end ?? dim);
      starts[k] = start; steps[k] = step;
      outShape[k] = end > start ? Math.ceil((end - start) / step) : 0;
    }
  }
  return { starts, steps, outShape, options };
}

export function slice(x: Tensor, spec: SliceSpec | readonly SliceSpec[], options?: LayoutOptions): Tensor;
export function slice(x: Tensor, begin: readonly number[], size: readonly number[], options?: LayoutOptions): Tensor;
export function slice(
  x: Tensor, a: SliceSpec | readonly SliceSpec[] | readonly number[], b?: readonly number[] | LayoutOptions, c?: LayoutOptions,
): Tensor {
  x.use('slice');
  const { starts, steps, outShape, options } = resolveSlice(x, a, b, c);
  const out = output('slice', x, outShape, options);
  const inStrides = contiguousStrides(x.shape), outStrides = contiguousStrides(outShape);
  const srcOffset = starts.reduce((s, v, k) => s + v * inStrides[k]!, 0);
  copyStrided('slice', x, out, outShape.map((n, k) => ({ size: n, strides: [inStrides[k]! * steps[k]!, outStrides[k]!] })), srcOffset, 0);
  return out;
}

/**
 * The gradient of a slice: zeros of the input's shape with `g` written where the slice read
 * (the same strided walk, reversed).
 */
export function sliceGradient(g: Tensor, inputShape: Shape, starts: readonly number[], steps: readonly number[], options: LayoutOptions = {}): Tensor {
  g.use('sliceGradient');
  const out = output('sliceGradient', g, inputShape, options);
  fillInPlace(out, 0);
  const inStrides = contiguousStrides(inputShape), gStrides = contiguousStrides(g.shape);
  const dstOffset = starts.reduce((s, v, k) => s + v * inStrides[k]!, 0);
  copyStrided('sliceGradient', g, out, g.shape.map((n, k) => ({ size: n, strides: [gStrides[k]!, inStrides[k]! * steps[k]!] })), 0, dstOffset);
  return out;
}

/** Joins tensors of one dtype along `axis` (negative allowed); all other dims must match. */
export function concat(tensors: readonly Tensor[], axis: number, options: LayoutOptions = {}): Tensor {
  if (!Array.isArray(tensors as unknown) || tensors.length === 0) throw new StepError('concat: give at least one tensor');
  tensors.forEach((t) => t.use('concat'));
  const first = tensors[0]!;
  const rank = first.rank;
  if (rank === 0) throw new ShapeError(`concat: ${first.describe()} is a scalar; reshape scalars to [1] first`);
  const k = normalizeAxis(axis, rank, 'concat', first.shape);
  tensors.forEach((t, j) => {
    if (t.dtype !== first.dtype) throw new DTypeError(`concat: tensor ${j} (${t.describe()}) is ${t.dtype} but tensor 0 is ${first.dtype}; cast with clone(t, { dtype })`);
    const same = t.rank === rank && t.shape.every((d, i) => i === k || d === first.shape[i]);
    if (!same) {
      throw new ShapeError(`concat: shapes ${tensors.map((u) => formatShape(u.shape)).join(', ')} differ outside axis ${axis} (tensor ${j}); only dim ${k} may differ`);
    }
  });
  const outShape = [...first.shape];
  outShape[k] = tensors.reduce((s, t) => s + t.shape[k]!, 0);
  const out = output('concat', first, outShape, options);
  const outStrides = contiguousStrides(outShape);
  let along = 0;
  for (const t of tensors) {
    const inStrides = contiguousStrides(t.shape);
    copyStrided('concat', t, out, t.shape.map((n, i) => ({ size: n, strides: [inStrides[i]!, outStrides[i]!] })), 0, along * outStrides[k]!);
    along += t.shape[k]!;
  }
  return out;
}
