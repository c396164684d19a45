import type { TestContext } from 'node:test';
import type { Backend, DType, Tensor } from '../../index.js';
import { CpuBackend, fromArray, scope } from '../../index.js';
import { REQUIRE_WEBGPU, sharedWebGPU } from './backends.js';

/** Both backends of the conformance suite, or null after skipping (or throwing under STEP_REQUIRE_WEBGPU=1). */
export async function bothBackends(t: TestContext): Promise<{ cpu: Backend; gpu: Backend } | null> {
  const gpu = await sharedWebGPU();
  if (typeof gpu === 'string') {
    if (REQUIRE_WEBGPU) throw new Error(`STEP_REQUIRE_WEBGPU=1 but WebGPU is unavailable: ${gpu}`);
    t.skip(`WebGPU skipped: ${gpu}`);
    return null;
  }
  return { cpu: new CpuBackend(), gpu };
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
