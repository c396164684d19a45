/**
 * The few places where the engine must cooperate with autograd without depending on it (the
 * engine sits left of autograd in the layering). Autograd installs these on import; without it
 * no tensor can have a graph, so the engine's plain behaviour is the right one.
 */
import type { Tensor } from './tensor.js';

/** What a tensor knows of the graph node that produced it: when its last live output goes away. */
export interface GraphLink {
  /** Called once when a tensor this node produced is disposed (the node may then free its saved tensors). */
  outputDisposed(): void;
}

export interface AutogradHooks {
  /** `t.reshape(shape)` for a tensor that requires grad: a recorded (differentiable) view. */
  reshape(t: Tensor, shape: readonly number[]): Tensor;
  /**
   * Records `out = f(input)` with the given gradient rule when grad mode is on and `input`
   * requires grad; returns `out` (with its node attached, or untouched).
   */
  recordUnary(op: string, out: Tensor, input: Tensor, backward: (g: Tensor) => Tensor): Tensor;
}

let hooks: AutogradHooks | null = null;

export function installAutogradHooks(h: AutogradHooks): void {
  hooks = h;
}

export function autogradHooks(): AutogradHooks | null {
  return hooks;
}
