/**
 * Seeded random numbers that are identical on every backend: Philox4x32-10 (Salmon et al.,
 * "Parallel random numbers: as easy as 1, 2, 3", SC 2011), the counter-based generator of
 * cuRAND, PyTorch's CUDA and JAX. Element i of a draw is a pure function of (seed, offset, i),
 * so the GPU computes each element independently and the CPU reproduces it bit for bit.
 *
 * - key = (seed low 32 bits, seed high 32 bits); counter = (offset + block, 0, 0, 0) with the
 *   block split into two 32-bit words (low, high).
 * - uniform: element i uses word i%4 of block floor(i/4); u = (word >>> 8) * 2^-24, in [0, 1),
 *   exactly representable in f32, so uniform draws are bit-identical across backends.
 * - normal: element i uses words 2(i%2), 2(i%2)+1 of block floor(i/2):
 *   u1 = ((w0 >>> 8) + 1) * 2^-24 in (0, 1], u2 = (w1 >>> 8) * 2^-24, z = sqrt(-2 ln u1) cos(2 pi u2)
 *   (Box-Muller). GPU log/cos differ from the CPU's by a few ulp, so normals agree to ~1e-6.
 * - each draw advances the generator's offset by the number of blocks it used.
 */

const M0 = 0xd2511f53;
const M1 = 0xcd9e8d57;
const W0 = 0x9e3779b9;
const W1 = 0xbb67ae85;

/** High 32 bits of the 64-bit product of two u32 (16-bit limbs, as the WGSL version does). */
export function mulhi32(a: number, b: number): number {
  const al = a & 0xffff, ah = a >>> 16, bl = b & 0xffff, bh = b >>> 16;
  const ll = al * bl, lh = al * bh, hl = ah * bl, hh = ah * bh;
  const mid = (ll >>> 16) + (lh & 0xffff) + (hl & 0xffff);
  return (hh + (lh >>> 16) + (hl >>> 16) + (mid >>> 16)) >>> 0;
}

/** One Philox4x32-10 block: four u32 words from a 128-bit counter and a 64-bit key. */
export function philox4x32(c0: number, c1: number, c2: number, c3: number, k0: number, k1: number): [number, number, number, number] {
  for (let r = 0; r < 10; r++) {
    const hi0 = mulhi32(M0, c0), lo0 = Math.imul(M0, c0) >>> 0;
    const hi1 = mulhi32(M1, c2), lo1 = Math.imul(M1, c2) >>> 0;
    const n0 = (hi1 ^ c1 ^ k0) >>> 0;
    const n2 = (hi0 ^ c3 ^ k1) >>> 0;
    c0 = n0; c1 = lo1; c2 = n2; c3 = lo0;
    k0 = (k0 + W0) >>> 0;
    k1 = (k1 + W1) >>> 0;
  }
  return [c0, c1, c2, c3];
}

export const TWO_POW_M24 = 2 ** -24;

/** Splits a non-negative safe integer into (low, high) u32 words. */
export function splitU64(n: number): [number, number] {
  return [n % 2 ** 32 >>> 0, Math.floor(n / 2 ** 32) >>> 0];
}

export interface GeneratorState {
  seed: number;
  offset: number;
}

/** The state of a random stream: a seed and how many Philox blocks were used. Save it to resume exactly. */
export class Generator {
  private seedValue: number;
  private offsetValue = 0;

  constructor(seed = 0) {
    this.seedValue = Generator.checkSeed(seed);
  }

  static checkSeed(seed: number): number {
    if (!Number.isSafeInteger(seed) || seed < 0) throw new RangeError(`Generator: seed must be an integer in [0, 2^53), got ${seed}`);
    return seed;
  }

  get seed(): number {
    return this.seedValue;
  }

  get offset(): number {
    return this.offsetValue;
  }

  /** Reserves `blocks` Philox blocks and returns the offset of the first. */
  take(blocks: number): number {
    const start = this.offsetValue;
    this.offsetValue += blocks;
    return start;
  }

  getState(): GeneratorState {
    return { seed: this.seedValue, offset: this.offsetValue };
  }

  setState(state: GeneratorState): void {
    this.seedValue = Generator.checkSeed(state.seed);
    if (!Number.isSafeInteger(state.offset) || state.offset < 0) throw new RangeError(`Generator.setState: bad offset ${state.offset}`);
    this.offsetValue = state.offset;
  }

  manualSeed(seed: number): void {
    this.seedValue = Generator.checkSeed(seed);
    this.offsetValue = 0;
  }
}

/** The generator used when a creation call names none. */
export const defaultGenerator = new Generator(0);

/** Reseeds the default generator (like torch.manual_seed). */
export function manualSeed(seed: number): void {
  defaultGenerator.manualSeed(seed);
}
