/**
 * Taming Dawn's wait loop. While a `mapAsync()` or `onSubmittedWorkDone()` promise is pending,
 * dawn.node re-schedules its device tick with the global `setImmediate`, so the JS thread spins
 * at 100% and takes a core from the software rasterizer (measured: ~1.8x wall-clock on 2 cores,
 * see shared/notes/lavapipe-performance.md). While we wait, `setImmediate` is swapped for one
 * that spins for the first `spinMs` of the wait (short round trips stay fast) and then defers
 * by a 1 ms timer ("episode" mode). `spin` leaves Dawn alone (for before/after benchmarks).
 */
export type WaitMode = 'episode' | 'spin';

const SPIN_MS = 2;
let waiting = 0;
let original: typeof setImmediate | null = null;
let episodeStart = 0;

function install(): void {
  original = globalThis.setImmediate;
  const spin = original;
  episodeStart = performance.now();
  const throttled = ((fn: (...args: unknown[]) => void, ...args: unknown[]) => {
    if (performance.now() - episodeStart < SPIN_MS) return spin(fn, ...args);
    return setTimeout(fn, 1, ...args);
  }) as unknown as typeof setImmediate;
  globalThis.setImmediate = throttled;
}

function uninstall(): void {
  if (original) globalThis.setImmediate = original;
  original = null;
}

/** Awaits a device promise without letting Dawn's tick loop spin a core (in `episode` mode). */
export async function awaitDevice<T>(promise: Promise<T>, mode: WaitMode): Promise<T> {
  if (mode === 'spin') return promise;
  if (waiting++ === 0) install();
  try {
    return await promise;
  } finally {
    if (--waiting === 0) uninstall();
  }
}
