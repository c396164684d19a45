/**
 * The one both-backend helper of the conformance suite: `testBothBackends` declares a test once
 * per backend; `bothBackends` + `runOnBoth` give one test both backends to compare. Every path
 * that needs WebGPU goes through `webgpuOrSkip`: without an adapter the test is skipped, or fails
 * when STEP_REQUIRE_WEBGPU=1.
 */
import { test } from 'node:test';
import type { TestContext } from 'node:test';
import type { Backend, DType, Tensor } from '../../index.js';
import { CpuBackend, createWebGPUBackend, DeviceError, fromArray, scope, setDevice, WebGPUBackend } from '../../index.js';

/** True when CI demands WebGPU: then a missing adapter fails the WebGPU tests instead of skipping them. */
export const REQUIRE_WEBGPU = process.env.STEP_REQUIRE_WEBGPU === '1';

/** A WebGPU backend, or the reason there is none. */
type WebGPUOrReason = Promise<Backend | string>;

async function openWebGPU(): WebGPUOrReason {
  try {
    return await createWebGPUBackend();
  } catch (e) {
    if (e instanceof DeviceError) return e.message;
    throw e;
  }
}

let webgpu: WebGPUOrReason | null = null;

/** One WebGPU backend per test file (opening Dawn costs ~0.2 s), or the reason there is none. */
export function sharedWebGPU(): WebGPUOrReason {
  webgpu ??= openWebGPU();
  return webgpu;
}

/** The backend, or null after skipping `t` (or throwing under STEP_REQUIRE_WEBGPU=1) when it is a reason. */
function webgpuOrSkip<B extends Backend>(t: TestContext, b: B | string): B | null {
  if (typeof b !== 'string') return b;
  if (REQUIRE_WEBGPU) throw new Error(`STEP_REQUIRE_WEBGPU=1 but WebGPU is unavailable: ${b}`);
  t.skip(`WebGPU skipped: ${b}`);
  return null;
}

const BACKENDS: { name: 'cpu' | 'webgpu'; get: () => WebGPUOrReason }[] = [
  { name: 'cpu', get: async () => new CpuBackend() },
  { name: 'webgpu', get: sharedWebGPU },
];

/**
 * Declares `name` once per backend (the conformance suite). The test receives the backend,
 * already made the default device.
 */
export function testBothBackends(name: string, fn: (b: Backend, t: TestContext) => Promise<void> | void): void {
  for (const factory of BACKENDS) {
    test(`${name} [${factory.name}]`, async (t) => {
      const b = webgpuOrSkip(t, await factory.get());
      if (!b) return;
      setDevice(b);
      await fn(b, t);
    });
  }
}

/** A fresh WebGPU backend for tests that need their own tracker, or null after skipping. */
export async function freshWebGPU(t: TestContext): Promise<WebGPUBackend | null> {
  const b = await openWebGPU();
  return webgpuOrSkip(t, typeof b === 'string' ? b : b as WebGPUBackend);
}

/** Both backends of the conformance suite in one test, or null after skipping. */
export async function bothBackends(t: TestContext): Promise<{ cpu: Backend; gpu: Backend } | null> {
  const gpu = webgpuOrSkip(t, await sharedWebGPU());
  return gpu && { cpu: new CpuBackend(), gpu };
}

export interface HostTensor {
  values: ArrayLike<number>;
  shape: readonly number[];
  dtype?: DType;
}

/**
 * Runs `op` on the same host inputs on the cpu and the webgpu backend (inside a scope, so
 * nothing leaks) and returns every output's values from both, for the caller to compare.
 */
export async function runOnBoth(
  backends: { cpu: Backend; gpu: Backend },
  inputs: readonly HostTensor[],
  op: (...xs: Tensor[]) => Tensor | Tensor[],
): Promise<{ cpu: ArrayLike<number>[]; gpu: ArrayLike<number>[] }> {
  const run = (device: Backend) => scope(async () => {
    const xs = inputs.map((h) => fromArray(h.values, h.shape, { dtype: h.dtype ?? 'f32', device }));
    const out = op(...xs);
    const outs = Array.isArray(out) ? out : [out];
    return Promise.all(outs.map((o) => o.toArray()));
  });
  return { cpu: await run(backends.cpu), gpu: await run(backends.gpu) };
}

/** Asserts two arrays are equal within |a-b| <= atol + rtol*|b|, naming the first bad index. */
export function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, rtol = 1e-6, atol = 0, what = 'values'): void {
  if (actual.length !== expected.length) throw new Error(`${what}: length ${actual.length} vs ${expected.length}`);
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i]!, b = expected[i]!;
    if (Number.isNaN(a) && Number.isNaN(b)) continue;
    if (a === b) continue;
    if (!(Math.abs(a - b) <= atol + rtol * Math.abs(b))) {
      throw new Error(`${what}: index ${i}: ${a} vs expected ${b} (rtol ${rtol}, atol ${atol})`);
    }
  }
}

/** Largest |a-b| / (atol + rtol*|b|) over the arrays (<= 1 means within tolerance), with where. */
export function worstError(a: ArrayLike<number>, b: ArrayLike<number>, rtol: number, atol: number): { ratio: number; index: number } {
  let ratio = 0, index = -1;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!, y = b[i]!;
    if (x === y || (Number.isNaN(x) && Number.isNaN(y))) continue;
    const r = Math.abs(x - y) / (atol + rtol * Math.abs(y));
    if (!(r <= ratio)) { ratio = Number.isNaN(r) ? Infinity : r; index = i; }
  }
  return { ratio, index };
}
