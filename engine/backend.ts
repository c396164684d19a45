import type { DType, HostArray } from './dtype.js';
import type { Category, MemoryReport, MemoryEvent, MemoryTracker } from './memory.js';
import type { Allocation } from './pool.js';

export type BackendName = 'cpu' | 'webgpu';

/** Device memory behind one or more tensors (reshapes share it). */
export interface Storage {
  readonly backend: Backend;
  readonly allocation: Allocation<unknown>;
  readonly dtype: DType;
  /** Elements held. */
  readonly size: number;
  /** Tensors that view this storage; it is freed when the last one is disposed. */
  refs: number;
}

/** Counters a benchmark or test reads to see how work reached the device. */
export interface BackendStats {
  dispatches: number;
  submits: number;
  pipelinesBuilt: number;
  readbacks: number;
  uploads: number;
  /** Device-side copies recorded into a batch (buffer to texture), beside the dispatches. */
  copies: number;
}

/** What every backend offers the engine and the kernels. */
export interface Backend {
  readonly name: BackendName;
  readonly tracker: MemoryTracker;
  /** One line naming the device, e.g. the adapter for WebGPU. */
  readonly description: string;
  readonly stats: BackendStats;
  /** The largest single tensor this backend can hold and bind, in bytes (larger ones fail with OutOfMemoryError). */
  readonly maxBufferBytes: number;
  /** Throws a DTypeError naming `op` if this backend cannot hold `dtype`. */
  checkDType(dtype: DType, op: string): void;
  allocate(dtype: DType, size: number, category: Category, label: string): Storage;
  free(storage: Storage): void;
  /** Copies host values into the storage (f16 rounds to nearest even). */
  write(storage: Storage, values: ArrayLike<number>): void;
  /** Reads the storage back to the host (the one place that waits on the device). */
  read(storage: Storage): Promise<HostArray>;
  /** Waits until every queued kernel has finished. */
  sync(): Promise<void>;
  /** Destroys cached free buffers. */
  trim(): void;
  /** Releases the device; tensors of this backend become unusable. */
  destroy(): void;
  memory(): MemoryReport;
  timeline(): MemoryEvent[];
}
