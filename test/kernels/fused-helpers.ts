/** Shared by the tests of the fused LLaMA kernels: golden fixtures, row-reduction strategies, comparisons. */
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import type { Backend, DType, Tensor } from '../../index.js';
import { fromArray } from '../../index.js';
import type { RowReduction } from '../../kernels/fused-shared.js';
import { availableRowReductions, forceRowReduction } from '../../kernels/fused-shared.js';
import type { WebGPUBackend } from '../../engine/webgpu/backend.js';
import { assertClose, worstError } from '../helpers/backends.js';

export interface FixtureTensor { shape: number[]; values: number[] }

export interface FixtureCase {
  name: string;
  dtype: 'f32' | 'f16';
  weightDtype?: 'f32' | 'f16';
  options: Record<string, unknown>;
  inputs: Record<string, FixtureTensor>;
  expected: Record<string, FixtureTensor>;
}

/** The cases of test/fixtures/kernels/<name>.json (written by test/fixtures/make_kernel_fixtures.py). */
export function loadFixture(name: string): FixtureCase[] {
  // compiled tests live in dist/test/kernels; the fixtures stay in the source tree
  const url = new URL(`../../../test/fixtures/kernels/${name}.json`, import.meta.url);
  const doc = JSON.parse(readFileSync(url, 'utf8')) as { cases: FixtureCase[] };
  if (!Array.isArray(doc.cases) || doc.cases.length === 0) throw new Error(`fixture ${name}.json has no cases`);
  return doc.cases;
}

/** A fixture tensor on `device`, stored as `dtype` (the fixture's values are exact in it). */
export function fixtureTensor(f: FixtureTensor, dtype: DType, device: Backend): Tensor {
  return fromArray(f.values, f.shape, { dtype, device });
}

/** The row-reduction strategies to test on this backend (the cpu has one path). */
export function reductionsFor(b: Backend): (RowReduction | null)[] {
  return b.name === 'webgpu' ? availableRowReductions(b as WebGPUBackend) : [null];
}

/** Runs fn with a forced row reduction (null: automatic), restoring the automatic choice after. */
export async function withReduction<T>(kind: RowReduction | null, fn: () => Promise<T>): Promise<T> {
  forceRowReduction(kind);
  try {
    return await fn();
  } finally {
    forceRowReduction(null);
  }
}

export interface Tolerance { rtol: number; atol: number }

/** Asserts |actual - expected| <= atol + rtol * |expected| element-wise, naming the case. */
export function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: Tolerance, what: string): void {
  assertClose(actual, expected, tol.rtol, tol.atol, what);
}

/** Like expectClose, with the worst ratio in the message (for properties, where the input is printed by fast-check). */
export function expectConform(gpu: ArrayLike<number>, cpu: ArrayLike<number>, tol: Tolerance, what: string): void {
  if (gpu.length !== cpu.length) throw new Error(`${what}: ${gpu.length} values from webgpu vs ${cpu.length} from cpu`);
  const { ratio, index } = worstError(gpu, cpu, tol.rtol, tol.atol);
  if (ratio > 1) {
    throw new Error(`${what}: webgpu ${gpu[index]} vs cpu ${cpu[index]} at index ${index}: ${ratio.toFixed(2)}x the tolerance (rtol ${tol.rtol}, atol ${tol.atol})`);
  }
}

/** f32 values in [-bound, bound] without NaN or infinities, `n` of them. */
export function floats(n: number, bound: number): fc.Arbitrary<Float32Array> {
  return fc.float32Array({ minLength: n, maxLength: n, min: Math.fround(-bound), max: Math.fround(bound), noNaN: true, noDefaultInfinity: true });
}

/** A dimension drawn from sizes that stress the kernels: 1, primes, multiples of the workgroup and around them. */
export function dim(max: number, allowZero = false): fc.Arbitrary<number> {
  const special = [1, 2, 3, 7, 8, 9, 13, 31, 63, 64, 65, 127].filter((d) => d <= max);
  return fc.oneof(fc.constantFrom(...(allowZero ? [0, ...special] : special)), fc.integer({ min: 1, max }));
}

/** Property-test settings: modest runs (WebGPU on llvmpipe is slow); a failure reports its seed and input without shrinking. */
export function runs(numRuns: number): fc.Parameters<unknown> {
  return { numRuns, endOnFailure: true };
}

/** Largest |v| of the arrays (for tolerances that scale with the inputs). */
export function maxAbs(...arrays: ArrayLike<number>[]): number {
  let m = 0;
  for (const a of arrays) for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!));
  return m;
}

/** Asserts |actual_i - expected_i| <= bound_i for per-element error bounds, naming the worst element. */
export function expectWithin(actual: ArrayLike<number>, expected: ArrayLike<number>, bound: ArrayLike<number>, what: string): void {
  if (actual.length !== expected.length) throw new Error(`${what}: ${actual.length} values vs ${expected.length} expected`);
  let worst = -1, ratio = 1;
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i]!, e = expected[i]!;
    if (a === e || (Number.isNaN(a) && Number.isNaN(e))) continue;
    const r = Math.abs(a - e) / bound[i]!;
    if (!(r <= ratio)) { ratio = Number.isNaN(r) ? Infinity : r; worst = i; }
  }
  if (worst >= 0) throw new Error(`${what}: index ${worst}: ${actual[worst]} vs expected ${expected[worst]}, ${ratio.toFixed(2)}x the bound ${bound[worst]}`);
}
