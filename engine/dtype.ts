/** Element types. `f16` is a storage type (2 bytes); its values surface as f32 in JS. */
export type DType = 'f32' | 'f16' | 'i32' | 'f64';

export const DTYPES: readonly DType[] = ['f32', 'f16', 'i32', 'f64'];

/** Bytes one element takes in device memory. */
export function bytesPerElement(dtype: DType): number {
  switch (dtype) {
    case 'f16': return 2;
    case 'f32': case 'i32': return 4;
    case 'f64': return 8;
  }
}

/** The typed array that `toArray()` returns for each dtype (f16 widens to f32). */
export type HostArray = Float32Array | Float64Array | Int32Array;

export function assertDType(dtype: unknown, op: string): DType {
  if (typeof dtype !== 'string' || !(DTYPES as readonly string[]).includes(dtype)) {
    throw new TypeError(`${op}: unknown dtype ${JSON.stringify(dtype)}; valid dtypes are ${DTYPES.join(', ')}`);
  }
  return dtype as DType;
}

export function isFloat(dtype: DType): boolean {
  return dtype !== 'i32';
}

/** A host array holding `size` elements of `dtype` as JS numbers. */
export function hostArrayFor(dtype: DType, size: number): HostArray {
  switch (dtype) {
    case 'f64': return new Float64Array(size);
    case 'i32': return new Int32Array(size);
    default: return new Float32Array(size);
  }
}

// IEEE 754 binary16 conversion, round-to-nearest-even, as GPUs do when storing f16.
const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** Rounds an f32 value to the nearest f16 and returns its 16 bits. */
export function f32ToF16Bits(value: number): number {
  f32Scratch[0] = value;
  const x = u32Scratch[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0); // Inf / NaN
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00; // overflow -> Inf
  if (e <= 0) {
    if (e < -10) return sign; // underflow -> signed zero
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    let m = mant >>> shift;
    const rest = mant & ((1 << shift) - 1);
    if (rest > half || (rest === half && (m & 1))) m++;
    return sign | m;
  }
  let m = mant >>> 13;
  const rest = mant & 0x1fff;
  let out = sign | (e << 10) | m;
  if (rest > 0x1000 || (rest === 0x1000 && (m & 1))) out++; // carry may roll into the exponent: still correct
  return out;
}

/** The f32 value of 16 f16 bits. */
export function f16BitsToF32(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >>> 10) & 0x1f;
  const mant = bits & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** Rounds a number through f16 and back (the CPU backend's emulation of f16 storage). */
export function roundToF16(value: number): number {
  return f16BitsToF32(f32ToF16Bits(value));
}
