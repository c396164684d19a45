import type { Category } from './memory.js';
import { MemoryTracker } from './memory.js';
import { OutOfMemoryError, StepError } from './errors.js';

/**
 * Size classes: 256 B minimum, then four classes per power of two (x1, x1.25, x1.5, x1.75),
 * so a cached buffer wastes at most 25% and most shapes of one model share few classes.
 */
export function sizeClass(bytes: number): number {
  if (bytes <= 256) return 256;
  const pow = 2 ** Math.floor(Math.log2(bytes - 1));
  const step = pow / 4;
  return Math.ceil(bytes / step) * step;
}

/** One handed-out buffer: what the tracker knows of it plus the backend's buffer. */
export interface Allocation<B> {
  readonly id: number;
  readonly buffer: B;
  /** Exact bytes the caller asked for. */
  readonly bytes: number;
  /** Bytes of the underlying buffer (its size class). */
  readonly capacity: number;
}

/**
 * The one allocator of a backend: takes buffers from a size-class cache or creates them,
 * and reports everything to the tracker. Freed buffers return to the cache; `trim()` destroys
 * the cache. The backend decides when a freed buffer is safe to reuse (see `release`).
 */
export class BufferPool<B> {
  /** Free buffers per size class, highest serial first: `pop()` hands out the oldest buffer. */
  private readonly free = new Map<number, B[]>();
  /** Creation order of every buffer the pool holds (handed out or free). */
  private readonly serials = new Map<B, number>();
  private nextSerial = 0;
  private cachedBytes = 0;

  constructor(
    readonly tracker: MemoryTracker,
    private readonly create: (capacity: number) => B,
    private readonly destroy: (buffer: B) => void,
    /** Largest single buffer the device can bind; larger requests fail clearly. */
    readonly maxBufferBytes: number,
  ) {
    if (!Number.isSafeInteger(maxBufferBytes) || maxBufferBytes < 16) {
      throw new StepError(`backend option maxBufferBytes must be an integer of at least 16 bytes, got ${String(maxBufferBytes)}`);
    }
  }

  allocate(bytes: number, category: Category, label: string): Allocation<B> {
    if (bytes > this.maxBufferBytes) {
      throw new OutOfMemoryError(
        `${label || 'allocation'}: ${bytes} bytes exceed the device's largest bindable buffer ` +
        `(${this.maxBufferBytes} bytes); split the tensor (a table too large for one buffer: engine/row-blocks.ts)`);
    }
    const capacity = Math.max(bytes, Math.min(sizeClass(bytes), this.maxBufferBytes));
    let buffer = this.free.get(capacity)?.pop();
    if (buffer !== undefined) {
      this.cachedBytes -= capacity;
    } else {
      if (this.tracker.limit !== null && this.tracker.report().reserved + capacity > this.tracker.limit) this.trim();
      this.tracker.checkLimit(capacity, `${label || 'allocation'} (${category}, ${bytes} bytes)`);
      buffer = this.create(capacity);
      this.serials.set(buffer, this.nextSerial++);
      this.tracker.onReserve(capacity);
    }
    const id = this.tracker.onAlloc(bytes, category, label);
    return { id, buffer, bytes, capacity };
  }

  /**
   * Gives a buffer back; it may be handed out again by the next `allocate`. A size class hands out
   * its oldest free buffer (not the last freed): a training step then gets the same buffers in the
   * same roles every step, whatever order the previous step freed them in, so the WebGPU backend's
   * cached bind groups hit instead of being created anew (~60 us each, half a step's dispatches at
   * `tiny` with last-freed-first).
   */
  release(allocation: Allocation<B>): void {
    this.tracker.onFree(allocation.id);
    const list = this.free.get(allocation.capacity) ?? [];
    const serial = this.serials.get(allocation.buffer) ?? -1;
    // keep the list sorted by serial, highest first (lists are short: binary search, one splice)
    let lo = 0, hi = list.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((this.serials.get(list[mid]!) ?? -1) > serial) lo = mid + 1;
      else hi = mid;
    }
    list.splice(lo, 0, allocation.buffer);
    this.free.set(allocation.capacity, list);
    this.cachedBytes += allocation.capacity;
  }

  /** Destroys every cached (free) buffer; reserved drops to allocated-by-class. */
  trim(): void {
    for (const [capacity, list] of this.free) {
      for (const b of list) {
        this.serials.delete(b);
        this.destroy(b);
        this.tracker.onReserve(-capacity);
      }
    }
    this.free.clear();
    this.cachedBytes = 0;
  }

  get cached(): number {
    return this.cachedBytes;
  }
}
