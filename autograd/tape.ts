// Every kernel registers itself on import: whoever records ops may run any of them.
import '../kernels/index.js';
import { installAutogradHooks } from '../engine/autograd-hooks.js';
import type { GraphLink } from '../engine/autograd-hooks.js';
import type { Storage } from '../engine/backend.js';
import { StepError } from '../engine/errors.js';
import type { Category } from '../engine/memory.js';
import { keep } from '../engine/scope.js';
import { Tensor, viewOf } from '../engine/tensor.js';
import { isGradEnabled, noGrad } from './grad-mode.js';

/**
 * Storages that saved views retagged as `activation`: how many saved views hold each, and the
 * category to give back when the last one is released (an input batch is `temporary` again
 * once backward no longer needs it).
 */
const retagged = new WeakMap<Storage, { views: number; previous: Category }>();

/**
 * An op output that backward can rebuild from what its own node saved (an RMSNorm's output from
 * its input, SwiGLU's product from gate and up). A consumer that would save it (the linears after
 * a norm, the down projection) keeps a promise instead, so the output's storage dies with the
 * forward's scope. The first consumer whose backward reads it rebuilds it once, with the same
 * kernel, so the values are bit-identical; the copy lives until the last consumer is done.
 */
class Recomputable {
  private users = 0;
  private value: Tensor | null = null;

  constructor(readonly producer: GradNode, private readonly rebuild: (saved: readonly Tensor[]) => Tensor) {}

  /**
   * True when `consumer` may keep a promise for `t`: `t` is its input and reaches the producer
   * through reshapes only, so the producer's saved tensors outlive the consumer (a node is freed
   * only after the nodes that consume it). A detached view, for one, is saved as usual.
   */
  canServe(consumer: GradNode, t: Tensor): boolean {
    if (this.producer.released || !consumer.inputs.includes(t)) return false;
    let node = t.gradNode as GradNode | null;
    while (node && node !== this.producer && node.op === 'reshape') node = node.inputs[0]!.gradNode as GradNode | null;
    return node === this.producer;
  }

  hold(): void {
    this.users++;
  }

  /** The rebuilt output (one copy shared by every consumer), owned by this promise. */
  get(): Tensor {
    this.value ??= keep(noGrad(() => this.rebuild(this.producer.savedFor(null))));
    return this.value;
  }

  letGo(): void {
    if (--this.users > 0) return;
    this.value?.dispose();
    this.value = null;
  }
}

/** Outputs that can be recomputed, by storage (a consumer often saves a reshaped view). */
const recomputables = new WeakMap<Storage, Recomputable>();

/** A saved slot: a graph-owned view, or a promise of a recomputable output (viewed once read). */
type Saved = Tensor | { from: Recomputable; shape: readonly number[]; view: Tensor | null };

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
  private saved: Saved[] = [];
  released = false;
  /** Live outputs + consuming nodes not yet dropped. */
  private refs = 0;
  private dropped = false;

  constructor(
    readonly op: string,
    readonly inputs: readonly Tensor[],
    readonly backwardFn: (grad: Tensor, saved: readonly Tensor[]) => (Tensor | null)[],
  ) {
    for (const input of inputs) {
      const producer = input.gradNode as GradNode | null;
      if (producer) producer.refs++;
    }
  }

  /** Keeps a view of `t` alive for backward; intermediates and input batches count as `activation` while saved. */
  save(t: Tensor): void {
    const promise = recomputables.get(t.storage);
    if (promise?.canServe(this, t)) {
      promise.hold();
      this.saved.push({ from: promise, shape: t.shape, view: null });
      return;
    }
    const view = keep(viewOf(t, t.shape)); // owned by this node, never by a scope
    // a parameter (a leaf that wants a gradient) or a frozen weight keeps its own category
    const isParameterLeaf = t.requiresGrad && t.gradNode === null;
    const storage = view.storage;
    const entry = retagged.get(storage);
    if (entry) entry.views++;
    else if (view.category === 'temporary' && !isParameterLeaf) {
      retagged.set(storage, { views: 1, previous: 'temporary' });
      view.setCategory('activation');
    }
    this.saved.push(view);
  }

  /** How many tensors this node keeps for backward (0 once released). */
  get savedCount(): number {
    return this.saved.length;
  }

  /** The saved views (promises rebuilt now), or a clear error if backward already freed them. */
  savedFor(output: Tensor | null): readonly Tensor[] {
    if (this.released) {
      const what = output ? `producing ${output.describe()}` : 'whose output a later op recomputes';
      throw new StepError(`backward: the saved tensors of ${this.op} (${what}) were already freed by an earlier backward(); pass { retainGraph: true } to the first backward to run it twice`);
    }
    return this.saved.map((s) => {
      if (s instanceof Tensor) return s;
      s.view ??= keep(viewOf(s.from.get(), s.shape)); // owned by this node, like a saved view
      return s.view;
    });
  }

  /** Frees the saved views (idempotent); a storage they alone kept as `activation` gets its category back. */
  release(): void {
    for (const t of this.saved) {
      if (!(t instanceof Tensor)) {
        t.view?.dispose();
        t.from.letGo();
        continue;
      }
      const storage = t.storage;
      const entry = retagged.get(storage);
      if (entry && --entry.views === 0) {
        retagged.delete(storage);
        if (storage.refs > 1) t.setCategory(entry.previous); // someone else still holds it
      }
      t.dispose();
    }
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
  backwardFn: (grad: Tensor, saved: readonly Tensor[]) => (Tensor | null)[],
): Tensor {
  const node = new GradNode(op, inputs, backwardFn);
  for (const t of save) if (t) node.save(t);
  node.attach(output);
  return output;
}

/**
 * `record`, and marks `output` as rebuildable by `rebuild(saved)` from what the node saves: ops
 * that consume it then save nothing for it (see Recomputable). `rebuild` must give the very
 * values of `output` (the same kernel on the same inputs).
 */
export function recordRecomputable(
  op: string,
  output: Tensor,
  inputs: readonly Tensor[],
  save: readonly (Tensor | null)[],
  backwardFn: (grad: Tensor, saved: readonly Tensor[]) => (Tensor | null)[],
  rebuild: (saved: readonly Tensor[]) => Tensor,
): Tensor {
  record(op, output, inputs, save, backwardFn);
  recomputables.set(output.storage, new Recomputable(output.gradNode as GradNode, rebuild));
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
