import { tmpdir } from 'node:os';
import type { Backend, BackendName } from './backend.js';
import { CpuBackend } from './cpu/backend.js';
import { DeviceError, StepError } from './errors.js';
import type { AdapterSummary, WebGPUBackendOptions } from './webgpu/backend.js';
import { WANTED_FEATURES, WANTED_LIMITS, WebGPUBackend } from './webgpu/backend.js';
import { applyVectorWidth, parseVectorWidth } from './webgpu/vector-width.js';

export type DeviceChoice = BackendName | 'auto';

export const LAVAPIPE_HINT =
  "On a machine without a GPU install Mesa's Vulkan software driver from Debian bookworm-backports " +
  '(apt-get install -t bookworm-backports mesa-vulkan-drivers libvulkan1; see README).';

let defaultDevice: Backend | null = null;
/**
 * One Dawn instance per set of flags, kept for the life of the process: an instance that is
 * garbage-collected stops processing its devices' events, so their promises never settle.
 */
const gpuInstances = new Map<string, GPU>();

async function gpu(flags: string[], options: WebGPUBackendOptions): Promise<GPU> {
  const key = JSON.stringify(flags);
  const known = gpuInstances.get(key);
  if (known) return known;
  // llvmpipe reads its vector width when the driver loads: before the first instance (vector-width.ts).
  applyVectorWidth(parseVectorWidth(options.lpVectorWidth, 'initDevice option lpVectorWidth'));
  const webgpu = await import('webgpu');
  Object.assign(globalThis, webgpu.globals);
  process.env.XDG_RUNTIME_DIR ??= tmpdir(); // quiets Dawn's warning
  const instance = webgpu.create(flags) as GPU;
  gpuInstances.set(key, instance);
  return instance;
}

/** Opens the WebGPU adapter with its maximum buffer limits and the wanted features it has. */
export async function createWebGPUBackend(options: WebGPUBackendOptions = {}): Promise<WebGPUBackend> {
  let adapter: GPUAdapter | null;
  try {
    adapter = await (await gpu(options.dawnFlags ?? [], options)).requestAdapter();
  } catch (e) {
    throw new DeviceError(`webgpu: could not load Dawn (the 'webgpu' package): ${(e as Error).message}`);
  }
  if (!adapter) throw new DeviceError(`webgpu: no WebGPU adapter found. ${LAVAPIPE_HINT}`);
  const requiredFeatures = WANTED_FEATURES.filter((f) => adapter.features.has(f)) as GPUFeatureName[];
  const requiredLimits: Record<string, number> = {};
  const limits: Record<string, number> = {};
  for (const key in adapter.limits) {
    const v = (adapter.limits as unknown as Record<string, number>)[key];
    if (typeof v === 'number') limits[key] = v;
  }
  for (const key of WANTED_LIMITS) {
    if (limits[key] !== undefined) requiredLimits[key] = limits[key]!;
  }
  const device = await adapter.requestDevice({ requiredFeatures, requiredLimits });
  const info = adapter.info;
  const summary: AdapterSummary = {
    vendor: info.vendor, architecture: info.architecture, device: info.device, description: info.description,
    features: [...(adapter.features as unknown as Iterable<string>)].sort(), limits,
    subgroupMinSize: (info as unknown as { subgroupMinSize?: number }).subgroupMinSize,
    subgroupMaxSize: (info as unknown as { subgroupMaxSize?: number }).subgroupMaxSize,
    lpVectorWidth: /llvmpipe/i.test(info.description) ? applyVectorWidth(undefined) : undefined,
  };
  return new WebGPUBackend(device, summary, options);
}

function parseChoice(choice: string | undefined): DeviceChoice {
  const c = (choice ?? 'auto').toLowerCase();
  if (c !== 'auto' && c !== 'cpu' && c !== 'webgpu') {
    throw new StepError(`device: unknown device "${choice}" (from STEP_DEVICE or the device option); valid: webgpu, cpu, auto`);
  }
  return c;
}

/**
 * Creates a backend and makes it the default for tensor creation. The choice comes from the
 * argument, else `STEP_DEVICE`, else `auto`: WebGPU when an adapter exists, otherwise the cpu
 * backend with one line on stderr saying so. Asking for `webgpu` never falls back: it throws.
 * `options.maxBufferBytes` caps the largest buffer on either backend.
 */
export async function initDevice(choice?: DeviceChoice, options: WebGPUBackendOptions & { quiet?: boolean } = {}): Promise<Backend> {
  const c = parseChoice(choice ?? process.env.STEP_DEVICE);
  let backend: Backend;
  if (c === 'cpu') {
    backend = new CpuBackend({ maxBufferBytes: options.maxBufferBytes });
  } else if (c === 'webgpu') {
    backend = await createWebGPUBackend(options);
  } else {
    try {
      backend = await createWebGPUBackend(options);
    } catch (e) {
      if (!(e instanceof DeviceError)) throw e;
      if (!options.quiet) process.stderr.write(`step: WebGPU unavailable (${e.message.split('. ')[0]}); using the cpu backend\n`);
      backend = new CpuBackend({ maxBufferBytes: options.maxBufferBytes });
    }
  }
  defaultDevice = backend;
  return backend;
}

/** Makes `backend` the default for tensor creation. */
export function setDevice(backend: Backend): void {
  defaultDevice = backend;
}

/** The default backend; throws if none was initialised. */
export function getDevice(): Backend {
  if (!defaultDevice) {
    throw new StepError('no device: call `await initDevice()` (or initDevice("cpu") / initDevice("webgpu")) before creating tensors');
  }
  return defaultDevice;
}
