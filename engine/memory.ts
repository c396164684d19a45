import { OutOfMemoryError } from './errors.js';
import { PeakWindow } from './peak-window.js';

/** What a device buffer holds. Every allocation carries exactly one. */
export type Category = 'parameter' | 'frozen' | 'gradient' | 'optimizer' | 'activation' | 'temporary' | 'staging';

export const CATEGORIES: readonly Category[] = [
  'parameter', 'frozen', 'gradient', 'optimizer', 'activation', 'temporary', 'staging',
];

export type ByCategory = Record<Category, number>;

/** The categories of model state: weights (trainable and frozen), their gradients and optimizer state. */
export const MODEL_STATE_CATEGORIES: readonly Category[] = ['parameter', 'frozen', 'gradient', 'optimizer'];

export function zeroByCategory(): ByCategory {
  return { parameter: 0, frozen: 0, gradient: 0, optimizer: 0, activation: 0, temporary: 0, staging: 0 };
}

export function assertCategory(category: unknown, op: string): Category {
  if (typeof category !== 'string' || !(CATEGORIES as readonly string[]).includes(category)) {
    throw new TypeError(`${op}: unknown memory category ${JSON.stringify(category)}; valid: ${CATEGORIES.join(', ')}`);
  }
  return category as Category;
}

export interface MemoryEvent {
  /** Sequence number of the event since the tracker was created. */
  seq: number;
  kind: 'alloc' | 'free' | 'retag';
  category: Category;
  bytes: number;
  label: string;
  /** Allocated bytes (all categories) right after the event. */
  allocated: number;
}

export interface MemoryReport {
  /** Exact bytes of live allocations, all categories. */
  allocated: number;
  /** Bytes of device buffers held, in use or cached by the pool (>= allocated). */
  reserved: number;
  /** Live allocations. */
  count: number;
  /** Exact live bytes per category. */
  live: ByCategory;
  /** Peak of `allocated` since the last resetPeak(), with the per-category split at that moment. */
  peak: { total: number; breakdown: ByCategory };
  /**
   * Peak of tensor bytes (every category but `staging`, which holds the backend's own readback
   * and uniform buffers and so differs between backends), with its split at that moment.
   */
  peakTensors: { total: number; breakdown: ByCategory };
  /**
   * Peak of model-state bytes (parameter + frozen + gradient + optimizer, MODEL_STATE_CATEGORIES)
   * live at the same moment, with the per-category split at that moment (other categories 0).
   */
  peakModelState: { total: number; breakdown: ByCategory };
  /** Each category's own maximum since the last resetPeak() (need not be simultaneous). */
  peakByCategory: ByCategory;
  /** Peak of `reserved` since the last resetPeak(). */
  peakReserved: number;
  /** The limit on reserved bytes, or null. */
  limit: number | null;
}

interface Live { bytes: number; category: Category; label: string }

/**
 * Counts device memory to the byte. It does not allocate: the allocator reports every buffer
 * it hands out (`onAlloc`/`onFree`) and every buffer it creates or destroys (`onReserve`).
 */
export class MemoryTracker {
  private readonly liveByCat = zeroByCategory();
  /** The tracker's own peaks, since creation or the last resetPeak(). */
  private readonly peaks = new PeakWindow(this.liveByCat);
  /** Windows opened by openPeakWindow() and not yet closed. */
  private readonly windows = new Set<PeakWindow>();
  private allocatedBytes = 0;
  private reservedBytes = 0;
  private peakReservedBytes = 0;
  private seq = 0;
  private nextId = 1;
  private readonly lives = new Map<number, Live>();
  private readonly events: MemoryEvent[] = [];
  private eventStart = 0;
  /** Limit on reserved bytes; null for none. */
  limit: number | null = null;

  constructor(readonly timelineCapacity = 4096) {}

  /** Records an allocation and returns its id. */
  onAlloc(bytes: number, category: Category, label: string): number {
    const id = this.nextId++;
    this.lives.set(id, { bytes, category, label });
    this.liveByCat[category] += bytes;
    this.allocatedBytes += bytes;
    this.observe(category, false);
    this.record('alloc', category, bytes, label);
    return id;
  }

  onFree(id: number): void {
    const live = this.lives.get(id);
    if (!live) throw new Error(`MemoryTracker: allocation ${id} freed twice or never allocated`);
    this.lives.delete(id);
    this.liveByCat[live.category] -= live.bytes;
    this.allocatedBytes -= live.bytes;
    this.record('free', live.category, live.bytes, live.label);
  }

  /** Moves a live allocation to another category (e.g. a saved tensor becoming an activation). */
  retag(id: number, category: Category): void {
    const live = this.lives.get(id);
    if (!live) throw new Error(`MemoryTracker: retag of unknown allocation ${id}`);
    if (live.category === category) return;
    this.liveByCat[live.category] -= live.bytes;
    live.category = category;
    this.liveByCat[category] += live.bytes;
    this.observe(category, true); // a retag into a model-state category can raise its peak
    this.record('retag', category, live.bytes, live.label);
  }

  categoryOf(id: number): Category | undefined {
    return this.lives.get(id)?.category;
  }

  /** Throws OutOfMemoryError if reserving `extra` more bytes would pass the limit. */
  checkLimit(extra: number, what: string): void {
    if (this.limit === null || this.reservedBytes + extra <= this.limit) return;
    throw new OutOfMemoryError(this.describeOOM(extra, what));
  }

  onReserve(delta: number): void {
    this.reservedBytes += delta;
    if (this.reservedBytes > this.peakReservedBytes) this.peakReservedBytes = this.reservedBytes;
  }

  resetPeak(): void {
    this.peaks.restart(this.liveByCat);
    this.peakReservedBytes = this.reservedBytes;
  }

  /**
   * A measurement window whose peaks start at the bytes live now and follow every allocation
   * until its close(); the tracker's own peak is untouched (a run's whole-life peak stays whole).
   */
  openPeakWindow(): PeakWindow {
    const window: PeakWindow = new PeakWindow(this.liveByCat, () => this.windows.delete(window));
    this.windows.add(window);
    return window;
  }

  report(): MemoryReport {
    return {
      allocated: this.allocatedBytes,
      reserved: this.reservedBytes,
      count: this.lives.size,
      live: { ...this.liveByCat },
      ...this.peaks.report(),
      peakReserved: this.peakReservedBytes,
      limit: this.limit,
    };
  }

  /** The last `timelineCapacity` events, oldest first. */
  timeline(): MemoryEvent[] {
    return [...this.events.slice(this.eventStart), ...this.events.slice(0, this.eventStart)];
  }

  /** Live allocations grouped by label, largest first. */
  topLabels(n: number): { label: string; category: Category; bytes: number; count: number }[] {
    const groups = new Map<string, { label: string; category: Category; bytes: number; count: number }>();
    for (const l of this.lives.values()) {
      const key = `${l.category}\u0000${l.label}`;
      const g = groups.get(key) ?? { label: l.label, category: l.category, bytes: 0, count: 0 };
      g.bytes += l.bytes;
      g.count++;
      groups.set(key, g);
    }
    return [...groups.values()].sort((a, b) => b.bytes - a.bytes).slice(0, n);
  }

  private observe(changed: Category, retagged: boolean): void {
    this.peaks.observe(this.liveByCat, this.allocatedBytes, changed, retagged);
    for (const w of this.windows) w.observe(this.liveByCat, this.allocatedBytes, changed, retagged);
  }

  private describeOOM(extra: number, what: string): string {
    const cats = CATEGORIES.filter((c) => this.liveByCat[c] > 0)
      .sort((a, b) => this.liveByCat[b] - this.liveByCat[a])
      .map((c) => `${c} ${formatBytes(this.liveByCat[c])}`);
    const labels = this.topLabels(5).map((l) => `${l.label || '(unlabelled)'} [${l.category}] ${formatBytes(l.bytes)} in ${l.count}`);
    return `out of memory: ${what} needs ${formatBytes(extra)} more but ${formatBytes(this.reservedBytes)} of the ` +
      `${formatBytes(this.limit ?? 0)} limit is reserved (${formatBytes(this.allocatedBytes)} allocated). ` +
      `Live by category: ${cats.join(', ') || 'none'}. Largest: ${labels.join('; ') || 'none'}. ` +
      `Free tensors you no longer need (scopes, dispose()), use a smaller batch, or raise the limit.`;
  }

  private record(kind: MemoryEvent['kind'], category: Category, bytes: number, label: string): void {
    const event: MemoryEvent = { seq: this.seq++, kind, category, bytes, label, allocated: this.allocatedBytes };
    if (this.events.length < this.timelineCapacity) {
      this.events.push(event);
    } else if (this.timelineCapacity > 0) {
      this.events[this.eventStart] = event;
      this.eventStart = (this.eventStart + 1) % this.timelineCapacity;
    }
  }
}

export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes;
  let i = -1;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${v.toFixed(2)} ${units[i]}`;
}
