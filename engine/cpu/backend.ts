import type { Backend, BackendStats, Storage } from '../backend.js';
import type { DType, HostArray } from '../dtype.js';
import { bytesPerElement, f16BitsToF32, f32ToF16Bits, hostArrayFor } from '../dtype.js';
import type { Category, MemoryEvent, MemoryReport } from '../memory.js';
import { MemoryTracker } from '../memory.js';
import { BufferPool } from '../pool.js';

/** Typed view of a CPU storage in its storage type (f16 as raw bits). */
export type CpuView = Float32Array | Float64Array | Int32Array | Uint16Array;

export interface CpuBackendOptions {
  /** Largest single buffer; defaults to WebGPU's common binding limit so both backends fail alike. */
  maxBufferBytes?: number;
}

/** The reference backend: plain TypeScript loops over ArrayBuffers, same allocator as WebGPU. */
export class CpuBackend implements Backend {
  readonly name = 'cpu' as const;
  readonly tracker = new MemoryTracker();
  readonly description = 'cpu (TypeScript reference loops)';
  readonly stats: BackendStats = { dispatches: 0, submits: 0, pipelinesBuilt: 0, readbacks: 0, uploads: 0, copies: 0 };
  private readonly pool: BufferPool<ArrayBuffer>;

  constructor(options: CpuBackendOptions = {}) {
    this.pool = new BufferPool<ArrayBuffer>(this.tracker, (n) => new ArrayBuffer(n), () => {}, options.maxBufferBytes ?? 2 ** 27);
  }

  get maxBufferBytes(): number {
    return this.pool.maxBufferBytes;
  }

  checkDType(_dtype: DType, _op: string): void {
    // every dtype lives here
  }

  allocate(dtype: DType, size: number, category: Category, label: string): Storage {
    const allocation = this.pool.allocate(size * bytesPerElement(dtype), category, label);
    return { backend: this, allocation, dtype, size, refs: 1 };
  }

  free(storage: Storage): void {
    this.pool.release(storage.allocation as never);
  }

  /** The storage's elements in their storage type (f16 as Uint16 bits). */
  view(storage: Storage): CpuView {
    const buf = storage.allocation.buffer as ArrayBuffer;
    switch (storage.dtype) {
      case 'f32': return new Float32Array(buf, 0, storage.size);
      case 'f64': return new Float64Array(buf, 0, storage.size);
      case 'i32': return new Int32Array(buf, 0, storage.size);
      case 'f16': return new Uint16Array(buf, 0, storage.size);
    }
  }

  /** Reads element values as numbers (f16 decoded). */
  values(storage: Storage): HostArray {
    const v = this.view(storage);
    if (v instanceof Uint16Array) {
      const out = new Float32Array(v.length);
      for (let i = 0; i < v.length; i++) out[i] = f16BitsToF32(v[i]!);
      return out;
    }
    return v;
  }

  /** Stores numbers, rounding as the dtype does (f16 round-to-nearest-even, f32 fround, i32 truncation). */
  write(storage: Storage, values: ArrayLike<number>): void {
    const v = this.view(storage);
    if (v instanceof Uint16Array) {
      for (let i = 0; i < v.length; i++) v[i] = f32ToF16Bits(values[i]!);
    } else {
      for (let i = 0; i < v.length; i++) v[i] = values[i]!;
    }
    this.stats.uploads++;
  }

  async read(storage: Storage): Promise<HostArray> {
    this.stats.readbacks++;
    const out = hostArrayFor(storage.dtype, storage.size);
    out.set(this.values(storage));
    return out;
  }

  async sync(): Promise<void> {}

  trim(): void {
    this.pool.trim();
  }

  destroy(): void {
    this.pool.trim();
  }

  memory(): MemoryReport {
    return this.tracker.report();
  }

  timeline(): MemoryEvent[] {
    return this.tracker.timeline();
  }
}
