import type { Backend, BackendName } from './backend.js';
import type { CpuBackend } from './cpu/backend.js';
import { DeviceMismatchError, StepError } from './errors.js';
import type { Tensor } from './tensor.js';
import type { WebGPUBackend } from './webgpu/backend.js';

/** What a kernel receives: tensors already allocated by the op, and plain attributes. */
export interface KernelArgs {
  readonly inputs: readonly Tensor[];
  readonly outputs: readonly Tensor[];
  readonly attrs: Readonly<Record<string, unknown>>;
}

export type KernelFn<B extends Backend> = (backend: B, args: KernelArgs) => void;

/** One op, one implementation per backend. */
export interface KernelImpls {
  cpu?: KernelFn<CpuBackend>;
  webgpu?: KernelFn<WebGPUBackend>;
}

const registry = new Map<string, KernelImpls>();

/** Registers (or extends) the implementations of `op`. Registering a backend twice is an error. */
export function registerKernel(op: string, impls: KernelImpls): void {
  const existing = registry.get(op) ?? {};
  for (const b of Object.keys(impls) as BackendName[]) {
    if (existing[b]) throw new StepError(`registerKernel: op "${op}" already has a ${b} kernel`);
  }
  registry.set(op, { ...existing, ...impls });
}

export function registeredKernels(): { op: string; backends: BackendName[] }[] {
  return [...registry].map(([op, impls]) => ({ op, backends: Object.keys(impls) as BackendName[] }));
}

/**
 * Runs `op` on the backend its tensors live on. All tensors must share one backend and be alive.
 * Kernels only enqueue work: nothing waits for the device here.
 */
export function runKernel(op: string, args: KernelArgs): void {
  const all = [...args.inputs, ...args.outputs];
  if (all.length === 0) throw new StepError(`runKernel(${op}): no tensors given`);
  const backend = all[0]!.use(op).backend;
  for (const t of all) {
    const s = t.use(op);
    if (s.backend !== backend) {
      throw new DeviceMismatchError(`${op}: ${all[0]!.describe()} is on ${backend.name} but ${t.describe()} is on ${s.backend.name}; move one with toDevice()`);
    }
  }
  const impls = registry.get(op);
  if (!impls) {
    throw new StepError(`${op}: no kernel registered under this name (did you import 'step-webgpu' or 'step-webgpu/kernels'?)`);
  }
  const fn = impls[backend.name] as KernelFn<Backend> | undefined;
  if (!fn) throw new StepError(`${op}: no ${backend.name} kernel; it exists for ${Object.keys(impls).join(', ')}`);
  fn(backend, args);
}
