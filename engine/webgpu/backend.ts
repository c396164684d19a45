import type { Backend, BackendStats, Storage } from '../backend.js';
import type { DType, HostArray } from '../dtype.js';
import { bytesPerElement, f16BitsToF32, f32ToF16Bits, hostArrayFor } from '../dtype.js';
import { DeviceError, DTypeError, StepError } from '../errors.js';
import type { Category, MemoryEvent, MemoryReport } from '../memory.js';
import { MemoryTracker } from '../memory.js';
import { BufferPool } from '../pool.js';
import type { WaitMode } from './device-wait.js';
import { awaitDevice } from './device-wait.js';
import type { BoundResource } from './bind-groups.js';
import { BindGroupCache, layoutEntries, parseBindings } from './bind-groups.js';
import type { ProfileReport } from './profiler.js';
import { DispatchProfiler } from './profiler.js';
import type { ScratchTexture } from './texture-pool.js';
import { TexturePool } from './texture-pool.js';
import type { VectorWidthChoice, VectorWidthDecision } from './vector-width.js';

interface Kernel {
  readonly id: number;
  readonly pipeline: GPUComputePipeline;
  readonly layout: GPUBindGroupLayout;
}

/** Features used when the adapter has them. */
export const WANTED_FEATURES = ['shader-f16', 'subgroups', 'timestamp-query'] as const;

/** Limits requested at the adapter's maximum. */
export const WANTED_LIMITS = [
  'maxBufferSize', 'maxStorageBufferBindingSize', 'maxStorageBuffersPerShaderStage',
  'maxComputeWorkgroupStorageSize', 'maxComputeInvocationsPerWorkgroup', 'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupSizeY', 'maxComputeWorkgroupSizeZ', 'maxComputeWorkgroupsPerDimension',
  'maxUniformBufferBindingSize',
] as const;

/** The uniform arena every WebGPU backend holds (category `staging`). */
export const UNIFORM_ARENA_BYTES = 64 * 1024;
const MAX_UNIFORM_BLOCK = 256;
const MAX_DISPATCHES_PER_SUBMIT = 512;

export interface DispatchSpec {
  /** Names the kernel in errors and in Dawn's labels. */
  label: string;
  /** Complete WGSL; pipelines are cached by this text. Storage bindings 0..n-1, uniforms at n. */
  source: string;
  /** Bound in order as @binding(0..n-1) of @group(0): tensors' storage, or scratch textures (`acquireTexture`). */
  buffers: readonly (Storage | ScratchTexture)[];
  /** Bound as a uniform buffer at @binding(n); at most 256 bytes. */
  uniforms?: ArrayBufferView;
  workgroups: readonly [number, number?, number?];
}

export interface WebGPUBackendOptions {
  /** Extra dawn.node flags, e.g. 'enable-dawn-features=disable_robustness'. */
  dawnFlags?: string[];
  waitMode?: WaitMode;
  /** New bind groups allowed between two waits on the device (default: from vm.max_map_count; see bind-groups.ts). */
  maxBindGroupsPerWait?: number;
  /**
   * Caps the largest buffer below the device's (maxStorageBufferBindingSize and maxBufferSize),
   * e.g. so tests exercise the row-block splitting of large tables with small ones (WebGPU cannot
   * request a binding limit below its default). Default: the device's.
   */
  maxBufferBytes?: number;
  /**
   * llvmpipe's SIMD width in bits, or 'default' for Mesa's own (256). Default: 512 on a CPU with
   * AVX-512 (subgroup size 16; the matmul kernels run ~1.5x faster), unless the environment sets
   * LP_NATIVE_VECTOR_WIDTH (then that wins) or STEP_LP_VECTOR_WIDTH (128, 256, 512 or default).
   * Applied once per process, before its first WebGPU instance; a no-op after that (see
   * engine/webgpu/vector-width.ts). Other drivers ignore it.
   */
  lpVectorWidth?: VectorWidthChoice;
}

/** Everything about the adapter that `step info` prints. */
export interface AdapterSummary {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  features: string[];
  limits: Record<string, number>;
  subgroupMinSize?: number;
  subgroupMaxSize?: number;
  /** On llvmpipe: the SIMD width this process chose and why (undefined on other adapters). */
  lpVectorWidth?: VectorWidthDecision;
}

/**
 * WebGPU through Dawn. Dispatches are recorded into one open compute pass and submitted in
 * batches (on readback, upload, sync, or every 512 dispatches); their uniforms go into one
 * arena written just before the submit. Buffers return to a size-class pool when freed; queue
 * order makes their reuse safe: every later use is recorded after the last use that freed it,
 * and uploads (`queue.writeBuffer`, which jump ahead of unsubmitted work) submit the open batch first.
 */
export class WebGPUBackend implements Backend {
  readonly name = 'webgpu' as const;
  readonly tracker = new MemoryTracker();
  readonly stats: BackendStats = { dispatches: 0, submits: 0, pipelinesBuilt: 0, readbacks: 0, uploads: 0, copies: 0 };
  readonly description: string;
  readonly features: ReadonlySet<string>;
  readonly limits: GPUSupportedLimits;
  readonly waitMode: WaitMode;
  private readonly pool: BufferPool<GPUBuffer>;
  private readonly textures: TexturePool;
  private readonly kernels = new Map<string, Kernel>();
  private readonly bindGroups: BindGroupCache;
  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  private batchDispatches = 0;
  private readonly arena: GPUBuffer;
  private readonly arenaHost = new Uint8Array(UNIFORM_ARENA_BYTES);
  private arenaUsed = 0;
  private readonly uniformAlign: number;
  private firstError: string | null = null;
  private lost: string | null = null;
  private profiler: DispatchProfiler | null = null;

  constructor(readonly device: GPUDevice, readonly adapter: AdapterSummary, options: WebGPUBackendOptions = {}) {
    this.description = `webgpu: ${adapter.description || adapter.device || adapter.vendor}`;
    this.features = new Set(device.features as unknown as Iterable<string>);
    this.limits = device.limits;
    this.waitMode = options.waitMode ?? 'episode';
    this.uniformAlign = Math.max(16, device.limits.minUniformBufferOffsetAlignment);
    this.bindGroups = new BindGroupCache(device, options.maxBindGroupsPerWait);
    const maxBytes = Math.min(device.limits.maxStorageBufferBindingSize, device.limits.maxBufferSize, options.maxBufferBytes ?? Infinity);
    this.pool = new BufferPool<GPUBuffer>(
      this.tracker,
      (size) => device.createBuffer({ size, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST }),
      (b) => { this.flush(); this.bindGroups.clear(); b.destroy(); }, // the open batch may still use a cached buffer: submit it first
      maxBytes,
    );
    this.textures = new TexturePool(device, this.tracker, () => { this.flush(); this.bindGroups.clear(); });
    device.onuncapturederror = (ev) => {
      this.firstError ??= (ev as GPUUncapturedErrorEvent).error.message;
    };
    void device.lost.then((info) => {
      if (info.reason !== 'destroyed') this.lost = `${info.reason}: ${info.message}`;
      else this.lost ??= 'destroyed';
    });
    this.arena = device.createBuffer({ size: UNIFORM_ARENA_BYTES, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST, label: 'uniform arena' });
    this.tracker.onReserve(UNIFORM_ARENA_BYTES);
    this.tracker.onAlloc(UNIFORM_ARENA_BYTES, 'staging', 'uniform arena');
  }

  hasFeature(feature: string): boolean {
    return this.features.has(feature);
  }

  checkDType(dtype: DType, op: string): void {
    if (dtype === 'f64') {
      throw new DTypeError(`${op}: f64 is not supported by WebGPU; use the cpu backend for f64 (gradient checks)`);
    }
    if (dtype === 'f16' && !this.hasFeature('shader-f16')) {
      throw new DTypeError(`${op}: f16 needs the 'shader-f16' feature, which adapter "${this.adapter.description}" lacks`);
    }
  }

  allocate(dtype: DType, size: number, category: Category, label: string): Storage {
    this.checkAlive('allocate');
    this.checkDType(dtype, label || 'allocate');
    const allocation = this.pool.allocate(size * bytesPerElement(dtype), category, label);
    return { backend: this, allocation, dtype, size, refs: 1 };
  }

  free(storage: Storage): void {
    this.pool.release(storage.allocation as never);
  }

  /**
   * A scratch rgba32float texture of `width` x `height` texels (counted as `staging` until
   * released; release it once the dispatches that use it are recorded, as with `free`).
   */
  acquireTexture(width: number, height: number, label: string): ScratchTexture {
    this.checkAlive(label);
    return this.textures.acquire(width, height, label);
  }

  /**
   * Records a copy of `size` = [width, height] texels from `src` (rows `bytesPerRow` apart, a
   * multiple of 256, from `byteOffset`, a multiple of 16) into `tex` at `origin`, in queue order
   * with the dispatches around it. On llvmpipe this is a row-by-row memcpy, far cheaper than a
   * kernel that stores texels one lane at a time.
   */
  copyToTexture(src: Storage, byteOffset: number, bytesPerRow: number, tex: ScratchTexture, origin: readonly [number, number], size: readonly [number, number]): void {
    this.checkAlive('copy to texture');
    if (size[0] === 0 || size[1] === 0) return;
    this.encoder ??= this.device.createCommandEncoder();
    this.pass?.end(); // copies are recorded outside compute passes
    this.pass = null;
    this.encoder.copyBufferToTexture({ buffer: this.gpuBuffer(src), offset: byteOffset, bytesPerRow }, { texture: tex.texture, origin: [origin[0], origin[1]] }, [size[0], size[1]]);
    this.stats.copies++;
  }

  gpuBuffer(storage: Storage): GPUBuffer {
    return storage.allocation.buffer as GPUBuffer;
  }

  /** Bytes a binding of this storage covers: the tensor rounded up to 4, at least 4. */
  bindingSize(storage: Storage): number {
    return Math.max(4, Math.ceil(storage.allocation.bytes / 4) * 4);
  }

  /** The cached pipeline for this WGSL, built on first use (0.1 s to seconds on llvmpipe). */
  pipeline(source: string, label: string): GPUComputePipeline {
    return this.kernel(source, label).pipeline;
  }

  /** Bind groups created so far (the cache makes this stop growing in a steady training loop). */
  get bindGroupsCreated(): number {
    return this.bindGroups.created;
  }

  private kernel(source: string, label: string): Kernel {
    let k = this.kernels.get(source);
    if (!k) {
      const module = this.device.createShaderModule({ code: source, label });
      const layout = this.device.createBindGroupLayout({ entries: layoutEntries(parseBindings(source), label), label });
      const pipeline = this.device.createComputePipeline({
        layout: this.device.createPipelineLayout({ bindGroupLayouts: [layout], label }),
        compute: { module, entryPoint: 'main' }, label,
      });
      k = { id: this.kernels.size + 1, pipeline, layout };
      this.kernels.set(source, k);
      this.stats.pipelinesBuilt++;
    }
    return k;
  }

  /** Records one dispatch into the open batch. Nothing is submitted or awaited here. */
  dispatch(spec: DispatchSpec): void {
    this.checkAlive(spec.label);
    const [x, y = 1, z = 1] = spec.workgroups;
    if (x === 0 || y === 0 || z === 0) return;
    const maxWg = this.limits.maxComputeWorkgroupsPerDimension;
    if (x > maxWg || y > maxWg || z > maxWg) {
      throw new StepError(`${spec.label}: workgroup grid [${x}, ${y}, ${z}] exceeds the device limit ${maxWg} per dimension`);
    }
    const kernel = this.kernel(spec.source, spec.label);
    let uniformOffset = -1;
    const u = spec.uniforms;
    let padded = 0;
    if (u) {
      if (u.byteLength > MAX_UNIFORM_BLOCK) throw new StepError(`${spec.label}: uniforms of ${u.byteLength} bytes exceed ${MAX_UNIFORM_BLOCK}`);
      padded = Math.max(16, Math.ceil(u.byteLength / 16) * 16);
      if (this.arenaUsed + padded > UNIFORM_ARENA_BYTES) this.flush();
      uniformOffset = this.arenaUsed;
      this.arenaHost.set(new Uint8Array(u.buffer, u.byteOffset, u.byteLength), uniformOffset);
      this.arenaUsed = Math.ceil((uniformOffset + padded) / this.uniformAlign) * this.uniformAlign;
    }
    const ranges: BoundResource[] = spec.buffers.map((s) => ('view' in s ? { view: s.view } : { buffer: this.gpuBuffer(s), offset: 0, size: this.bindingSize(s) }));
    // the uniform block is bound at offset 0 with its size fixed per kernel; its place in the arena is a dynamic offset
    if (u) ranges.push({ buffer: this.arena, offset: 0, size: padded });
    const bindGroup = this.bindGroups.get(kernel.id, kernel.layout, ranges);
    this.encoder ??= this.device.createCommandEncoder();
    if (this.profiler) {
      // profiled: a pass of its own, whose begin and end write timestamps
      this.pass?.end();
      this.pass = this.encoder.beginComputePass({ timestampWrites: this.profiler.timestampWrites(spec.label) });
    }
    this.pass ??= this.encoder.beginComputePass();
    this.pass.setPipeline(kernel.pipeline);
    if (u) this.pass.setBindGroup(0, bindGroup, [uniformOffset]);
    else this.pass.setBindGroup(0, bindGroup);
    this.pass.dispatchWorkgroups(x, y, z);
    this.stats.dispatches++;
    if (++this.batchDispatches >= MAX_DISPATCHES_PER_SUBMIT || this.profiler?.full) this.flush();
  }

  /**
   * Runs `fn` with every dispatch timed on the device (timestamp queries; see profiler.ts) and
   * returns its result with the time per kernel label, the wall time, and the dispatches,
   * submits, readbacks, uploads and pipelines it cost. Needs the 'timestamp-query' feature.
   */
  async profile<T>(fn: () => Promise<T> | T): Promise<{ result: T; report: ProfileReport }> {
    this.checkAlive('profile');
    if (!this.hasFeature('timestamp-query')) throw new DeviceError(`profile: adapter "${this.adapter.description}" lacks the 'timestamp-query' feature`);
    if (this.profiler) throw new StepError('profile: a profile is already running on this backend (profiles do not nest)');
    this.flush();
    const before = { ...this.stats };
    const profiler = new DispatchProfiler(this.device, MAX_DISPATCHES_PER_SUBMIT);
    this.profiler = profiler;
    const t0 = performance.now();
    let result: T;
    try {
      result = await fn();
      await this.sync();
    } finally {
      this.flush();
      this.profiler = null;
    }
    const wallMs = performance.now() - t0;
    const times = await profiler.finish();
    const count = (k: keyof BackendStats) => this.stats[k] - before[k];
    return {
      result,
      report: { ...times, wallMs, dispatches: count('dispatches'), submits: count('submits'), readbacks: count('readbacks'), uploads: count('uploads'), copies: count('copies'), pipelinesBuilt: count('pipelinesBuilt') },
    };
  }

  /** Submits the open batch (if any) without waiting for it. */
  flush(): void {
    if (!this.encoder) return;
    this.pass?.end();
    this.profiler?.beforeFinish(this.encoder);
    if (this.arenaUsed > 0) this.device.queue.writeBuffer(this.arena, 0, this.arenaHost, 0, this.arenaUsed);
    this.device.queue.submit([this.encoder.finish()]);
    this.profiler?.afterSubmit(this.waitMode);
    this.stats.submits++;
    this.encoder = null;
    this.pass = null;
    this.arenaUsed = 0;
    this.batchDispatches = 0;
    this.bindGroups.collectIfDue();
  }

  write(storage: Storage, values: ArrayLike<number>): void {
    this.checkAlive('write');
    const bytes = Math.ceil(storage.allocation.bytes / 4) * 4;
    if (bytes === 0) return;
    const host = new ArrayBuffer(bytes);
    switch (storage.dtype) {
      case 'f32': new Float32Array(host).set(values); break;
      case 'i32': new Int32Array(host).set(values); break;
      case 'f16': {
        const h = new Uint16Array(host);
        for (let i = 0; i < storage.size; i++) h[i] = f32ToF16Bits(values[i]!);
        break;
      }
      default: throw new DTypeError(`write: ${storage.dtype} is not supported by WebGPU`);
    }
    this.flush(); // writeBuffer runs before unsubmitted work: submit what uses this buffer first
    this.device.queue.writeBuffer(this.gpuBuffer(storage), 0, host);
    this.stats.uploads++;
  }

  async read(storage: Storage): Promise<HostArray> {
    this.checkAlive('read');
    const out = hostArrayFor(storage.dtype, storage.size);
    const bytes = Math.ceil(storage.allocation.bytes / 4) * 4;
    if (bytes === 0) return out;
    const staging = this.device.createBuffer({ size: bytes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    this.tracker.onReserve(bytes);
    const id = this.tracker.onAlloc(bytes, 'staging', 'readback');
    try {
      this.encoder ??= this.device.createCommandEncoder();
      this.pass?.end();
      this.pass = null;
      this.encoder.copyBufferToBuffer(this.gpuBuffer(storage), 0, staging, 0, bytes);
      this.flush();
      this.stats.readbacks++;
      await awaitDevice(staging.mapAsync(GPUMapMode.READ), this.waitMode);
      this.bindGroups.noteWait();
      const mapped = staging.getMappedRange();
      switch (storage.dtype) {
        case 'f32': (out as Float32Array).set(new Float32Array(mapped, 0, storage.size)); break;
        case 'i32': (out as Int32Array).set(new Int32Array(mapped, 0, storage.size)); break;
        case 'f16': {
          const h = new Uint16Array(mapped, 0, storage.size);
          for (let i = 0; i < storage.size; i++) out[i] = f16BitsToF32(h[i]!);
          break;
        }
        default: throw new DTypeError(`read: ${storage.dtype} is not supported by WebGPU`);
      }
      staging.unmap();
    } finally {
      staging.destroy();
      this.tracker.onFree(id);
      this.tracker.onReserve(-bytes);
    }
    this.throwPendingError('read');
    return out;
  }

  async sync(): Promise<void> {
    this.checkAlive('sync');
    this.flush();
    await awaitDevice(this.device.queue.onSubmittedWorkDone(), this.waitMode);
    this.bindGroups.noteWait();
    this.throwPendingError('sync');
  }

  trim(): void {
    this.pool.trim();
    this.textures.trim();
  }

  get maxBufferBytes(): number {
    return this.pool.maxBufferBytes;
  }

  destroy(): void {
    if (this.lost) return;
    this.flush();
    this.pool.trim();
    this.textures.trim();
    this.lost = 'destroyed';
    this.device.destroy();
  }

  memory(): MemoryReport {
    return this.tracker.report();
  }

  timeline(): MemoryEvent[] {
    return this.tracker.timeline();
  }

  private checkAlive(op: string): void {
    if (this.lost) throw new DeviceError(`${op}: the WebGPU device is ${this.lost === 'destroyed' ? 'destroyed' : `lost (${this.lost})`}; create a new one with initDevice()`);
  }

  /** Surfaces a validation error Dawn reported asynchronously (e.g. a kernel that failed to compile). */
  private throwPendingError(op: string): void {
    if (this.firstError === null) return;
    const msg = this.firstError;
    this.firstError = null;
    throw new DeviceError(`${op}: WebGPU reported an error in earlier work: ${msg}`);
  }
}
