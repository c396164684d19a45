// Every kernel registers itself on import: whoever records ops may run any of them.
import '../kernels/index.js';
import { StepError } from '../engine/errors.js';
import { adoptByOutermostScope } from '../engine/scope.js';
import { Tensor } from '../engine/tensor.js';
import { isGradEnabled } from './grad-mode.js';

/**
 * One recorded op. `backward` receives the gradient of the op's output and returns one gradient
 * per input (null where the input needs none). Saved tensors are views the node holds (so
 * disposing the forward's own tensor frees nothing backward needs); they belong to the scope
 * that ran the forward, and the tape frees them the moment this node's backward has run.
 * Backward must therefore run before that scope ends.
 */
export class GradNode {
  private saved: Tensor[] = [];
  released = false;

  constructor(
    readonly op: string,
    readonly inputs: readonly Tensor[],
    readonly backwardFn: (grad: Tensor, saved: readonly Tensor[]) => (Tensor | null)[],
  ) {}

  /** Keeps a view of `t` alive for backward; intermediates are counted as `activation` memory. */
  save(t: Tensor): void {
    const view = t.reshape(t.shape as number[]);
    adoptByOutermostScope(view); // an inner scope may free the forward's intermediates, never what backward reads
    // an intermediate or an input batch kept for backward is activation memory; a parameter
    // (a leaf that wants a gradient) or a frozen weight keeps its own category
    const isParameterLeaf = t.requiresGrad && t.gradNode === null;
    if (view.category === 'temporary' && !isParameterLeaf) view.setCategory('activation');
    this.saved.push(view);
  }

  /** How many tensors this node keeps for backward (0 once released). */
  get savedCount(): number {
    return this.saved.length;
  }

  /** The saved views, or a clear error if backward already freed them or their scope ended. */
  savedFor(output: Tensor): readonly Tensor[] {
    if (this.released) {
      throw new StepError(`backward: the saved tensors of ${this.op} (producing ${output.describe()}) were already freed by an earlier backward(); pass { retainGraph: true } to the first backward to run it twice`);
    }
    for (const t of this.saved) {
      if (t.isDisposed) {
        throw new StepError(`backward: a tensor saved by ${this.op} (producing ${output.describe()}) was freed when the scope that ran the forward ended; call backward() inside that scope`);
      }
    }
    return this.saved;
  }

  release(): void {
    for (const t of this.saved) t.dispose();
    this.saved = [];
    this.released = true;
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
  output.requiresGrad = true;
  output.gradNode = node;
  return output;
}

/** A tensor that wants gradients: a leaf (parameter or input) with no node. */
export function isLeaf(t: Tensor): boolean {
  return t.gradNode === null;
}

