import type { Backend } from './backend.js';
import { getDevice } from './device.js';
import type { MemoryEvent, MemoryReport } from './memory.js';

/** Memory of a backend (default: the current device): live, peak, allocated vs reserved, per category. */
export function memory(device: Backend = getDevice()): MemoryReport {
  return device.memory();
}

/** Starts a new peak window at the current live bytes. */
export function resetPeak(device: Backend = getDevice()): void {
  device.tracker.resetPeak();
}

/** Caps reserved bytes; an allocation beyond it (after the pool's cache is freed) throws OutOfMemoryError. */
export function setMemoryLimit(bytes: number | null, device: Backend = getDevice()): void {
  if (bytes !== null && (!Number.isSafeInteger(bytes) || bytes < 0)) {
    throw new RangeError(`setMemoryLimit: limit must be a non-negative integer number of bytes or null, got ${bytes}`);
  }
  device.tracker.limit = bytes;
}

/** The last events (alloc, free, retag) of the tracker, oldest first. */
export function memoryTimeline(device: Backend = getDevice()): MemoryEvent[] {
  return device.timeline();
}
