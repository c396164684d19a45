import { AsyncLocalStorage } from 'node:async_hooks';

const mode = new AsyncLocalStorage<boolean>();

/** Whether ops record the graph here (false inside noGrad). */
export function isGradEnabled(): boolean {
  return mode.getStore() ?? true;
}

/** Runs fn without recording the graph (works across await: each async chain has its own mode). */
export function noGrad<T>(fn: () => T): T {
  return mode.run(false, fn);
}

/** Runs fn with recording forced on or off. */
export function withGradEnabled<T>(enabled: boolean, fn: () => T): T {
  return mode.run(enabled, fn);
}
