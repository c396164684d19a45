import { test } from 'node:test';
import type { TestContext } from 'node:test';
import type { Backend } from '../../index.js';
import { CpuBackend, createWebGPUBackend, DeviceError, setDevice, WebGPUBackend } from '../../index.js';

/** True when CI demands WebGPU: then a missing adapter fails the WebGPU tests instead of skipping them. */
export const REQUIRE_WEBGPU = process.env.STEP_REQUIRE_WEBGPU === '1';

let webgpu: Promise<Backend | string> | null = null;

/** One WebGPU backend per test file (opening Dawn costs ~0.2 s), or the reason there is none. */
export function sharedWebGPU(): Promise<Backend | string> {
  webgpu ??= createWebGPUBackend().catch((e: unknown) => {
    if (e instanceof DeviceError) return e.message;
    throw e;
  });
  return webgpu;
}

export type BackendFactory = { name: 'cpu' | 'webgpu'; get: () => Promise<Backend | string> };

export const BACKENDS: BackendFactory[] = [
  { name: 'cpu', get: async () => new CpuBackend() },
  { name: 'webgpu', get: sharedWebGPU },
];

/**
 * Declares `name` once per backend (the conformance suite). The test receives the backend,
 * already made the default device. Without an adapter the WebGPU copy is skipped, or fails
 * when STEP_REQUIRE_WEBGPU=1.
 */
export function testBothBackends(name: string, fn: (b: Backend, t: TestContext) => Promise<void> | void): void {
  for (const factory of BACKENDS) {
    test(`${name} [${factory.name}]`, async (t) => {
      const b = await factory.get();
      if (typeof b === 'string') {
        if (REQUIRE_WEBGPU) throw new Error(`STEP_REQUIRE_WEBGPU=1 but WebGPU is unavailable: ${b}`);
        t.skip(`WebGPU skipped: ${b}`);
        return;
      }
      setDevice(b);
      await fn(b, t);
    });
  }
}

/** A fresh WebGPU backend for tests that need their own tracker, or null (skip/fail as above). */
export async function freshWebGPU(t: TestContext): Promise<WebGPUBackend | null> {
  try {
    return await createWebGPUBackend();
  } catch (e) {
    if (!(e instanceof DeviceError)) throw e;
    if (REQUIRE_WEBGPU) throw new Error(`STEP_REQUIRE_WEBGPU=1 but WebGPU is unavailable: ${e.message}`);
    t.skip(`WebGPU skipped: ${e.message}`);
    return null;
  }
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
