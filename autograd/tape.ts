// Every kernel registers itself on import: whoever records ops may run any of them.
import '../kernels/index.js';
import { installAutogradHooks } from '../engine/autograd-hooks.js';
import type { GraphLink } from '../engine/autograd-hooks.js';
import { StepError } from '../engine/errors.js';
import type { Tensor } from '../engine/tensor.js';
import { viewOf } from '../engine/tensor.js';
import { isGradEnabled } from './grad-mode.js';
import { holdSaved, readSaved, releaseSaved } from './saved.js';
import type { SavedSlot } from './saved.js';

/**
 * One recorded op. `backward` receives the gradient of the op's output and returns one gradient
 * per input (null where the input needs none).
 *
 * Lifetimes: the tensors a node saves are views the graph owns, not any scope. They are freed
 * when backward has used them, or as soon as no live tensor can reach the node any more: each
 * node counts its live outputs plus the not-yet-dropped nodes that consume them, and frees its
 * saved views when that count reaches zero (so a forward that is never backpropagated, e.g. a
 * metric, frees everything when its result is disposed). Scopes may therefore free a forward's
 * intermediates at any time: backward reads only what the nodes saved.
 */
export class GradNode implements GraphLink {
  private saved: SavedSlot[] = [];
  released = false;
  /** Live outputs + consuming nodes not yet dropped. */
  private refs = 0;
  private dropped = false;

  constructor(
    readonly op: string,
    readonly inputs: readonly Tensor[],
    /** `final`: the node's saved tensors are released right after this call (no retainGraph), so the rule may consume them. */
    readonly backwardFn: (grad: Tensor, saved: readonly Tensor[], final: boolean) => (Tensor | null)[],
  ) {
    for (const input of inputs) {
      const producer = input.gradNode as GradNode | null;
      if (producer) producer.refs++;
    }
  }

  /** Keeps a view of `t` alive for backward, or a promise when `t` is recomputable (see autograd/saved.ts). */
  save(t: Tensor, keepCategory = false): void {
    this.saved.push(holdSaved(t, keepCategory));
  }

  /** How many tensors this node keeps for backward (0 once released). */
  get savedCount(): number {
    return this.saved.length;
  }

  /** The saved views (promises rebuilt now), or a clear error if backward already freed them. */
  savedFor(output: Tensor): readonly Tensor[] {
    if (this.released) {
      throw new StepError(`backward: the saved tensors of ${this.op} (producing ${output.describe()}) were already freed by an earlier backward(); pass { retainGraph: true } to the first backward to run it twice`);
    }
    return this.saved.map(readSaved);
  }

  /** Frees the saved views and promises (idempotent). */
  release(): void {
    for (const slot of this.saved) releaseSaved(slot);
    this.saved = [];
    this.released = true;
  }

  outputDisposed(): void {
    if (--this.refs === 0) this.drop();
  }

  /** No live tensor reaches this node: free it and let go of its inputs' nodes (iteratively: graphs are deep). */
  private drop(): void {
    const stack: GradNode[] = [this];
    while (stack.length) {
      const node = stack.pop()!;
      if (node.dropped) continue;
      node.dropped = true;
      node.release();
      for (const input of node.inputs) {
        const producer = input.gradNode as GradNode | null;
        if (producer && --producer.refs === 0) stack.push(producer);
      }
    }
  }

  /** Attaches this node to `output`, which must not have a node yet. */
  attach(output: Tensor): void {
    if (output.gradNode !== null || this.inputs.includes(output)) {
      throw new StepError(`autograd: ${this.op} tried to record onto ${output.describe()}, which already belongs to a graph (an op must return a new tensor)`);
    }
    output.requiresGrad = true;
    output.gradNode = this;
    this.refs++;
  }
}

/** True when `op` should record: grad mode is on and some input wants a gradient. */
export function needsGrad(...inputs: (Tensor | null | undefined)[]): boolean {
  return isGradEnabled() && inputs.some((t) => t?.requiresGrad === true);
}

/**
 * Attaches a node to `output` (which then requires grad). `save` lists what backward reads;
 * pass null for what an input without requiresGrad would have needed, so frozen weights keep
 * nothing alive (e.g. a frozen linear does not save its input).
 */
export function record(
  op: string,
  output: Tensor,
  inputs: readonly Tensor[],
  save: readonly (Tensor | null)[],
  backwardFn: (grad: Tensor, saved: readonly Tensor[], final: boolean) => (Tensor | null)[],
  options: { keepCategory?: boolean } = {},
): Tensor {
  const node = new GradNode(op, inputs, backwardFn);
  for (const t of save) if (t) node.save(t, options.keepCategory);
  node.attach(output);
  return output;
}

/** A tensor that wants gradients: a leaf (parameter or input) with no node. */
export function isLeaf(t: Tensor): boolean {
  return t.gradNode === null;
}

installAutogradHooks({
  reshape(t, shape) {
    const out = viewOf(t, shape);
    if (!needsGrad(t)) return out;
    return record('reshape', out, [t], [], (g) => [viewOf(g, t.shape)]);
  },
  recordUnary(op, out, input, backward) {
    if (!needsGrad(input)) return out;
    return record(op, out, [input], [], (g) => [backward(g)]);
  },
});
