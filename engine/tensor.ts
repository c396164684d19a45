import type { GraphLink } from './autograd-hooks.js';
import { autogradHooks } from './autograd-hooks.js';
import type { Backend, Storage } from './backend.js';
import type { DType, HostArray } from './dtype.js';
import { DisposedError, ShapeError } from './errors.js';
import type { Category } from './memory.js';
import { assertCategory } from './memory.js';
import { trackInScope } from './scope.js';
import type { Shape } from './shape.js';
import { formatShape, resolveReshape, sizeOf } from './shape.js';

let nextTensorId = 1;

/**
 * An n-dimensional array on one backend. Cheap to create: the data lives in a `Storage`
 * that reshapes share. Every tensor belongs to the innermost open `scope()`, if any.
 */
export class Tensor {
  readonly id = nextTensorId++;
  readonly shape: Shape;
  readonly size: number;
  /** Shown in errors and in the memory tracker's labels. */
  readonly label: string;
  private storageRef: Storage | null;
  /**
   * Autograd slots. The engine only holds them; `autograd/` gives them meaning: whether a
   * gradient is wanted, the accumulated gradient (category `gradient`), and the tape node that
   * produced this tensor.
   */
  requiresGrad = false;
  grad: Tensor | null = null;
  gradNode: GraphLink | null = null;

  /** Prefer the creation functions (`zeros`, `fromArray`, ...); this wraps a storage you own. */
  constructor(storage: Storage, shape: Shape, label = '') {
    if (sizeOf(shape) !== storage.size) {
      throw new ShapeError(`Tensor: shape ${formatShape(shape)} has ${sizeOf(shape)} elements but its storage holds ${storage.size}`);
    }
    this.storageRef = storage;
    this.shape = shape;
    this.size = storage.size;
    this.label = label;
    trackInScope(this);
  }

  get dtype(): DType {
    return this.storage.dtype;
  }

  get backend(): Backend {
    return this.storage.backend;
  }

  get rank(): number {
    return this.shape.length;
  }

  get isDisposed(): boolean {
    return this.storageRef === null;
  }

  /** The memory category of this tensor's storage. */
  get category(): Category {
    const s = this.storage;
    return s.backend.tracker.categoryOf(s.allocation.id)!;
  }

  /** Moves the storage to another memory category (shared by every view of it). */
  setCategory(category: Category): this {
    const s = this.use('setCategory');
    s.backend.tracker.retag(s.allocation.id, assertCategory(category, 'setCategory'));
    return this;
  }

  /** The storage, or a DisposedError naming this tensor and `op`. */
  use(op: string): Storage {
    if (this.storageRef === null) {
      throw new DisposedError(`${op}: ${this.describe()} was used after dispose()`);
    }
    return this.storageRef;
  }

  get storage(): Storage {
    return this.use('storage');
  }

  describe(): string {
    const name = this.label ? `"${this.label}"` : `#${this.id}`;
    return `tensor ${name} ${formatShape(this.shape)}`;
  }

  /**
   * A view with another shape over the same storage (no copy). One dimension may be -1.
   * Differentiable: on a tensor that requires grad (with grad mode on) it records like `reshape()`.
   */
  reshape(shape: readonly number[]): Tensor {
    this.use('reshape');
    const hooks = this.requiresGrad ? autogradHooks() : null;
    return hooks ? hooks.reshape(this, shape) : viewOf(this, shape);
  }

  /** A view of the same storage outside any graph: requiresGrad false, no gradient flows back (as PyTorch's detach()). */
  detach(): Tensor {
    return viewOf(this, this.shape);
  }

  /** Copies the values to the host: f32 and f16 as Float32Array, i32 as Int32Array, f64 as Float64Array. */
  async toArray(): Promise<HostArray> {
    const s = this.use('toArray');
    return s.backend.read(s);
  }

  /** The one value of a single-element tensor. */
  async item(): Promise<number> {
    if (this.size !== 1) throw new ShapeError(`item: ${this.describe()} has ${this.size} elements, expected 1`);
    return (await this.toArray())[0]!;
  }

  /** Frees this view; the storage goes back to the pool when its last view is disposed. Idempotent. */
  dispose(): void {
    const s = this.storageRef;
    if (s === null) return;
    this.storageRef = null;
    if (--s.refs === 0) s.backend.free(s);
    this.gradNode?.outputDisposed(); // the graph behind this tensor may now be unreachable
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  toString(): string {
    return `Tensor(${formatShape(this.shape)}, ${this.isDisposed ? 'disposed' : `${this.dtype}, ${this.backend.name}`}${this.label ? `, "${this.label}"` : ''})`;
  }
}

/** A view with another shape over `t`'s storage that no graph records (the raw form of `reshape`). */
export function viewOf(t: Tensor, shape: readonly number[]): Tensor {
  const s = t.use('reshape');
  const target = resolveReshape(t.shape, shape, `reshape of ${t.describe()}`);
  s.refs++;
  return new Tensor(s, target, t.label);
}
