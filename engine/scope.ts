import { AsyncLocalStorage } from 'node:async_hooks';

/** What a scope needs of a tensor; kept minimal so the scope knows nothing else of it. */
export interface Scoped {
  readonly isDisposed: boolean;
  dispose(): void;
}

interface ScopeFrame {
  readonly parent: ScopeFrame | undefined;
  readonly tracked: Set<Scoped>;
  closed: boolean;
}

const current = new AsyncLocalStorage<ScopeFrame>();
const kept = new WeakSet<Scoped>();

/** Called by every tensor constructor: the innermost open scope will free it. */
export function trackInScope(t: Scoped): void {
  let frame = current.getStore();
  while (frame && frame.closed) frame = frame.parent; // late async continuation: hand to the outer scope
  frame?.tracked.add(t);
}

/** Lets a tensor outlive every enclosing scope; the caller disposes it. */
export function keep<T extends Scoped>(t: T): T {
  kept.add(t);
  for (let f = current.getStore(); f; f = f.parent) f.tracked.delete(t);
  return t;
}

function collectReturned(value: unknown, out: Set<Scoped>, seen = new Set<unknown>()): void {
  if (value === null || typeof value !== 'object' || seen.has(value)) return;
  seen.add(value);
  if (typeof (value as Scoped).dispose === 'function' && 'isDisposed' in (value as object)) {
    out.add(value as Scoped);
    return;
  }
  if (Array.isArray(value)) {
    for (const v of value) collectReturned(v, out, seen);
  } else if (value instanceof Map) {
    for (const v of value.values()) collectReturned(v, out, seen);
  } else if (Object.getPrototypeOf(value) === Object.prototype) {
    for (const v of Object.values(value)) collectReturned(v, out, seen);
  }
}

function close(frame: ScopeFrame, result: unknown): void {
  frame.closed = true;
  const returned = new Set<Scoped>();
  collectReturned(result, returned);
  let parent = frame.parent;
  while (parent && parent.closed) parent = parent.parent;
  for (const t of frame.tracked) {
    if (returned.has(t)) parent?.tracked.add(t);
    else if (!kept.has(t) && !t.isDisposed) t.dispose();
  }
  frame.tracked.clear();
}

/**
 * Runs `fn` and frees every tensor created inside it, except those it returns (found in
 * arrays, Maps and plain objects), which move to the enclosing scope, and those passed to
 * `keep()`. Works across `await`: each async call chain has its own scope stack.
 * Also frees on throw.
 */
export async function scope<T>(fn: () => Promise<T> | T): Promise<T> {
  const frame: ScopeFrame = { parent: current.getStore(), tracked: new Set(), closed: false };
  let result: T;
  try {
    result = await current.run(frame, fn);
  } catch (e) {
    close(frame, undefined);
    throw e;
  }
  close(frame, result);
  return result;
}

/** The synchronous form of `scope`, for code with no `await` inside. */
export function scopeSync<T>(fn: () => T): T {
  const frame: ScopeFrame = { parent: current.getStore(), tracked: new Set(), closed: false };
  let result: T;
  try {
    result = current.run(frame, fn);
  } catch (e) {
    close(frame, undefined);
    throw e;
  }
  if (result instanceof Promise) {
    close(frame, undefined);
    throw new TypeError('scopeSync: the function returned a Promise; use `await scope(fn)` for async code');
  }
  close(frame, result);
  return result;
}

/** Tensors tracked by the innermost open scope (for tests and debugging). */
export function scopeSize(): number {
  return current.getStore()?.tracked.size ?? 0;
}
