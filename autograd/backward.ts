import { clone, ones } from '../engine/creation.js';
import { ShapeError, StepError } from '../engine/errors.js';
import { keep, scopeSync } from '../engine/scope.js';
import { formatShape } from '../engine/shape.js';
import type { Tensor } from '../engine/tensor.js';
import { addScaledInPlace } from '../kernels/elementwise.js';
import { noGrad } from './grad-mode.js';
import { GradNode } from './tape.js';

export interface BackwardOptions {
  /** Gradient of the root; required when the root has more than one element. */
  grad?: Tensor;
  /** Keep saved tensors so backward can run again through the same graph. */
  retainGraph?: boolean;
}

const sameShape = (a: Tensor, b: Tensor) => a.rank === b.rank && a.shape.every((d, i) => d === b.shape[i]);

/** Nodes reachable from `root`, ordered so every node comes before the nodes of its inputs. */
function topoOrder(root: GradNode): GradNode[] {
  const order: GradNode[] = [];
  const visited = new Set<GradNode>();
  const stack: [GradNode, number][] = [[root, 0]];
  visited.add(root);
  while (stack.length) {
    const top = stack[stack.length - 1]!;
    const [node, next] = top;
    if (next < node.inputs.length) {
      top[1]++;
      const child = node.inputs[next]!.gradNode as GradNode | null;
      if (child && !visited.has(child)) {
        visited.add(child);
        stack.push([child, 0]);
      }
    } else {
      stack.pop();
      order.push(node);
    }
  }
  return order.reverse();
}

/** A tensor we may accumulate into in place: never a storage another tensor also views. */
function owned(g: Tensor): Tensor {
  if (g.storage.refs === 1) return g;
  const c = clone(g);
  g.dispose();
  return c;
}

function checkSeed(root: Tensor, grad: Tensor | undefined): Tensor {
  if (grad) {
    grad.use('backward');
    if (!sameShape(grad, root) || grad.dtype !== root.dtype) {
      throw new ShapeError(`backward: the output gradient is ${formatShape(grad.shape)} ${grad.dtype} but ${root.describe()} is ${formatShape(root.shape)} ${root.dtype}`);
    }
    return clone(grad, { category: 'temporary' });
  }
  if (root.size !== 1) {
    throw new ShapeError(`backward: ${root.describe()} has ${root.size} elements; pass { grad } (the gradient of the output) for a non-scalar`);
  }
  // the seed is not model state: it becomes `gradient` only if it lands in a leaf's .grad (accumulateLeaf)
  return ones(root.shape, { dtype: root.dtype, device: root.backend, category: 'temporary' });
}

/**
 * Runs reverse mode from `root`. With `targets`, returns the gradient of each target (leaf or
 * not) and leaves every `.grad` alone; without, accumulates into `.grad` of each leaf that
 * requires grad (category `gradient`, surviving scopes). Saved tensors are freed as each node
 * finishes; intermediate gradients as soon as they are consumed.
 */
function run(root: Tensor, options: BackwardOptions, targets: readonly Tensor[] | null, accumulate = targets === null): (Tensor | null)[] {
  root.use('backward');
  if (!root.requiresGrad) {
    throw new StepError(`backward: ${root.describe()} does not require grad: no input of the ops that made it has requiresGrad = true (or it was computed under noGrad)`);
  }
  const targetGrads = new Map<Tensor, Tensor | null>((targets ?? []).map((t) => [t, null]));
  const collect = (t: Tensor, g: Tensor): boolean => {
    if (!targetGrads.has(t)) return false;
    const prev = targetGrads.get(t);
    if (prev) { addScaledInPlace(prev, g); g.dispose(); } else targetGrads.set(t, owned(g));
    return true;
  };
  // a leaf's gradient goes to the caller (a target), into its .grad (accumulating), or away
  const toLeaf = (leaf: Tensor, g: Tensor): void => {
    if (targets && collect(leaf, g)) return;
    if (accumulate) accumulateLeaf(leaf, g); else g.dispose();
  };
  return noGrad(() => {
    const seed = checkSeed(root, options.grad);
    const rootNode = root.gradNode as GradNode | null;
    if (!rootNode) {
      // the root is itself a leaf
      toLeaf(root, seed);
      return finish(targets, targetGrads, root, !accumulate);
    }
    const grads = new Map<GradNode, Tensor>([[rootNode, seed]]);
    const outputs = new Map<GradNode, Tensor>([[rootNode, root]]);
    for (const node of topoOrder(rootNode)) {
      for (const input of node.inputs) if (input.gradNode) outputs.set(input.gradNode as GradNode, input);
      const g = grads.get(node);
      grads.delete(node);
      if (!g) { if (!options.retainGraph) node.release(); continue; }
      const output = outputs.get(node)!;
      if (targets && targetGrads.has(output)) {
        const copy = clone(g);
        if (!collect(output, copy)) copy.dispose();
      }
      // the rule's own intermediates are freed here; the gradients it returns survive
      const inputGrads = scopeSync(() => node.backwardFn(g, node.savedFor(output), !options.retainGraph));
      if (!options.retainGraph) node.release();
      const used = new Set<Tensor>();
      node.inputs.forEach((input, i) => {
        let gi = inputGrads[i] ?? null;
        if (!gi) return;
        if (!input.requiresGrad) { if (gi !== g && !used.has(gi)) gi.dispose(); return; }
        if (gi === g || used.has(gi)) gi = gi.reshape(gi.shape as number[]); // a second reference, never the same object
        used.add(gi);
        if (!sameShape(gi, input)) {
          throw new StepError(`backward: ${node.op} returned a gradient of shape ${formatShape(gi.shape)} for its input ${i} of shape ${formatShape(input.shape)} (a bug in its backward rule)`);
        }
        const child = input.gradNode as GradNode | null;
        if (child) {
          // copy-on-write: a gradient shared with another input (e.g. both sides of an add) is
          // copied only if a second contribution must be added into it
          let prev = grads.get(child);
          if (prev) {
            if (prev.storage.refs > 1) { const own = owned(prev); grads.set(child, own); prev = own; }
            addScaledInPlace(prev, gi);
            gi.dispose();
          } else grads.set(child, gi);
        } else {
          toLeaf(input, gi);
        }
      });
      g.dispose(); // views handed on in `used` keep its storage alive
    }
    for (const g of grads.values()) g.dispose();
    return finish(targets, targetGrads, root, !accumulate);
  });
}

function accumulateLeaf(leaf: Tensor, g: Tensor): void {
  if (leaf.grad && !leaf.grad.isDisposed) {
    addScaledInPlace(leaf.grad, g);
    g.dispose();
    return;
  }
  const mine = owned(g);
  mine.setCategory('gradient');
  leaf.grad = keep(mine);
}

/** The targets' gradients; `strict`: a target without one is an error, else null. */
function finish(targets: readonly Tensor[] | null, grads: Map<Tensor, Tensor | null>, root: Tensor, strict: boolean): (Tensor | null)[] {
  if (!targets) return [];
  return targets.map((t) => {
    const g = grads.get(t) ?? null;
    if (!strict) return g;
    if (!g && t.requiresGrad === false) {
      throw new StepError(`grad: ${t.describe()} does not require grad, so it has no gradient`);
    }
    if (!g) throw new StepError(`grad: ${t.describe()} is not part of the graph that produced ${root.describe()}`);
    return g;
  });
}

/**
 * Accumulates d(root)/d(leaf) into `leaf.grad` for every leaf that requires grad. A scalar root
 * needs no `grad`; any other root does. Run it inside the scope that ran the forward.
 */
export function backward(root: Tensor, options: BackwardOptions = {}): void {
  run(root, options, null);
}

/**
 * backward() for a graph whose `inputs` are leaves that stand for intermediates of an outer graph
 * (activation checkpointing recomputes a block from its saved input): every other leaf's gradient
 * accumulates into its `.grad` (category `gradient`), while each input's gradient is returned
 * (null when it has none), its category left as an intermediate's: it is not model state.
 */
export function backwardWithInputGrads(root: Tensor, inputs: readonly Tensor[], options: BackwardOptions = {}): (Tensor | null)[] {
  return run(root, options, inputs, true);
}

/** Gradients of `root` with respect to `inputs` (leaves or intermediates), without touching `.grad`. */
export function grad(root: Tensor, inputs: readonly Tensor[], options: BackwardOptions = {}): Tensor[] {
  for (const t of inputs) t.use('grad');
  return run(root, options, inputs) as Tensor[];
}
