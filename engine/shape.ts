import { ShapeError } from './errors.js';

export type Shape = readonly number[];

/** Checks every dimension is a non-negative safe integer; returns a frozen copy. */
export function checkShape(shape: unknown, op: string): Shape {
  if (!Array.isArray(shape)) throw new ShapeError(`${op}: shape must be an array of integers, got ${String(shape)}`);
  for (const d of shape) {
    if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0) {
      throw new ShapeError(`${op}: invalid dimension ${String(d)} in shape [${shape.join(', ')}]; dimensions must be integers >= 0`);
    }
  }
  return Object.freeze([...shape]) as Shape;
}

export function sizeOf(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function formatShape(shape: Shape): string {
  return `[${shape.join(', ')}]`;
}

/** Row-major strides in elements. */
export function stridesOf(shape: Shape): number[] {
  const strides = new Array<number>(shape.length);
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    strides[i] = s;
    s *= shape[i]!;
  }
  return strides;
}

/** Resolves one `-1` in a reshape target against `size` elements. */
export function resolveReshape(from: Shape, to: readonly number[], op = 'reshape'): Shape {
  const size = sizeOf(from);
  const inferred = to.filter((d) => d === -1).length;
  if (inferred > 1) throw new ShapeError(`${op}: at most one -1 allowed, got [${to.join(', ')}]`);
  const known = to.filter((d) => d !== -1);
  checkShape(known, op);
  const knownSize = sizeOf(known);
  let out = [...to];
  if (inferred === 1) {
    if (knownSize === 0 || size % knownSize !== 0) {
      throw new ShapeError(`${op}: cannot reshape ${formatShape(from)} (${size} elements) into [${to.join(', ')}]`);
    }
    out = to.map((d) => (d === -1 ? size / knownSize : d));
  }
  if (sizeOf(out) !== size) {
    throw new ShapeError(`${op}: cannot reshape ${formatShape(from)} (${size} elements) into [${to.join(', ')}] (${sizeOf(out)} elements)`);
  }
  return Object.freeze(out) as Shape;
}

/** NumPy broadcasting of two shapes. */
export function broadcastShapes(a: Shape, b: Shape, op: string): Shape {
  const n = Math.max(a.length, b.length);
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const da = a[a.length - n + i] ?? 1;
    const db = b[b.length - n + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) {
      throw new ShapeError(`${op}: shapes ${formatShape(a)} and ${formatShape(b)} do not broadcast (dimension ${i}: ${da} vs ${db})`);
    }
    out[i] = da === 1 ? db : da;
  }
  return Object.freeze(out) as Shape;
}
