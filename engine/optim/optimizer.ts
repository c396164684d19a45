/**
 * The optimizer base: parameter groups, state allocation (category `optimizer`), the step that
 * clips and unscales gradients on the device, zeroGrad, state resets, and state save/load.
 * Subclasses (SGD, Adam, AdamW) name their state tensors and run their update kernel.
 *
 * Precision modes:
 * - `fp32`: f32 params and grads; the optimizer holds only its state (m, v / momentum).
 * - `mixed`: f16 params and grads; the optimizer also holds an f32 master copy of every param,
 *   updates it, and writes its f16 rounding into the param (2 + 2 + 12 bytes per parameter with Adam).
 */
import type { Backend } from '../backend.js';
import { clone, empty, fillInPlace, zeros } from '../creation.js';
import { bytesPerElement } from '../dtype.js';
import { DisposedError, DTypeError, ShapeError, StepError } from '../errors.js';
import { runKernel } from '../registry.js';
import { keep } from '../scope.js';
import { formatShape } from '../shape.js';
import { Tensor } from '../tensor.js';
import type { StepAttrs } from './kernels.js';
import { gradSqPartialsMultiKernel, optimFinalizeKernel } from './kernels.js';
import type { LossScalerOptions } from './loss-scaler.js';
import { LossScaler } from './loss-scaler.js';
import type { ResetOptions } from './reset.js';
import { checkResetOptions, resetStateTensor } from './reset.js';
import { loadOptimizerState, saveOptimizerState } from './state-io.js';

export type Precision = 'fp32' | 'mixed';


/** Hyperparameters every group has; `lr` changes during training (see setLrScale). */
export interface BaseHyper {
  lr: number;
  weightDecay: number;
}

/** A parameter group: its tensors, its hyperparameters (mutable), and the lr it started with. */
export type ParamGroup<H extends BaseHyper> = H & { readonly params: readonly Tensor[]; initialLr: number };

/** A group as passed to the constructor: tensors plus any hyperparameters that differ from the defaults. */
export type ParamGroupSpec<H extends BaseHyper> = Partial<H> & { params: readonly Tensor[] };

export interface OptimizerOptions {
  /** 'fp32' (default) or 'mixed' (f16 params and grads, f32 master weights in the optimizer). */
  precision?: Precision;
  /** Clip gradients to this global L2 norm (computed on the device); 0 or undefined: no clipping. */
  maxGradNorm?: number;
  /** Dynamic loss scaling: true for the defaults, or the scaler's options. Default off. */
  lossScaling?: boolean | LossScalerOptions;
  /**
   * State to adopt instead of allocating it afresh: the moments, master copy and applied step
   * count that another optimizer released (`releaseState`) for parameters that keep training,
   * e.g. the embeddings and head across a STEP stage boundary. Every entry must be a parameter of
   * this optimizer.
   */
  carry?: readonly CarriedState[];
}

/** One parameter's optimizer state handed from an optimizer to the next (see `releaseState`). */
export interface CarriedState {
  readonly param: Tensor;
  /** The f32 state tensors by name (m, v, momentum), now owned by whoever holds this. */
  readonly tensors: Map<string, Tensor>;
  readonly master: Tensor | null;
  /** Updates applied (steps the loss scaler skipped are not counted), as a checkpoint records them. */
  readonly appliedSteps: number;
}

export interface StepOptions {
  /** Also return the global gradient norm (unscaled, before clipping) as a 1-element device tensor. */
  returnGradNorm?: boolean;
}

export interface StepResult {
  /** The global gradient norm tensor when asked for (the caller disposes it), else null. */
  gradNorm: Tensor | null;
}

/** One parameter's optimizer state. `step` counts steps taken since its last step reset, skipped ones included. */
export interface ParamState {
  readonly param: Tensor;
  readonly group: number;
  /** f32 state tensors by name (e.g. m, v, momentum). */
  readonly tensors: Map<string, Tensor>;
  /** The f32 master copy in mixed precision, else null. */
  readonly master: Tensor | null;
  step: number;
  /** The loss scaler's skipped-step count at the last step reset (its skips since then are not steps). */
  skipBase: number;
}

export type OptimizerKind = 'sgd' | 'adam' | 'adamw' | 'galore-adamw';

/** The inputs every update kernel reads: the gradient and, when the step clips or scales the loss, the finalize status. */
export interface UpdateInputs {
  grad: Tensor;
  status?: Tensor;
}

/** A parameter's step count and skip base, as the update kernels read them (see kernels.ts). */
export function stepAttrs(s: ParamState): StepAttrs {
  return { step: s.step, skipBase: s.skipBase };
}

function describeParam(p: Tensor): string {
  return p.label || `#${p.id}`;
}

export abstract class Optimizer<H extends BaseHyper> {
  readonly precision: Precision;
  readonly groups: ParamGroup<H>[] = [];
  /** Global-norm clipping threshold; 0 disables. May be changed between steps. */
  maxGradNorm: number;
  readonly lossScaler: LossScaler | null;
  protected readonly states: ParamState[] = [];
  private backendRef: Backend | null = null;
  private disposed = false;
  /** States offered by `options.carry`, while the constructor adopts them. */
  private carrying: Map<Tensor, CarriedState> | null = null;

  constructor(
    readonly kind: OptimizerKind,
    params: readonly Tensor[] | readonly ParamGroupSpec<H>[],
    readonly defaults: H,
    options: OptimizerOptions = {},
  ) {
    this.precision = options.precision ?? 'fp32';
    if (this.precision !== 'fp32' && this.precision !== 'mixed') throw new StepError(`${kind}: precision must be 'fp32' or 'mixed', got ${JSON.stringify(this.precision)}`);
    this.maxGradNorm = options.maxGradNorm ?? 0;
    if (!(this.maxGradNorm >= 0) || !Number.isFinite(this.maxGradNorm)) throw new StepError(`${kind}: maxGradNorm must be a finite number >= 0, got ${options.maxGradNorm}`);
    const specs: ParamGroupSpec<H>[] = params.length > 0 && params[0] instanceof Tensor
      ? [{ params: params as readonly Tensor[] } as ParamGroupSpec<H>]
      : [...(params as readonly ParamGroupSpec<H>[])];
    if (specs.length === 0) throw new StepError(`${kind}: no parameters given`);
    const ls = options.lossScaling ?? false;
    this.carrying = new Map((options.carry ?? []).map((c) => [c.param, c]));
    try {
      for (const spec of specs) this.addParamGroup(spec);
      const left = [...this.carrying.values()];
      if (left.length) throw new StepError(`${kind}: carried state for ${left.map((c) => c.param.describe()).join(', ')}, which ${left.length > 1 ? 'are' : 'is'} not a parameter of this optimizer; carry only the state of parameters that keep training`);
      this.lossScaler = ls === false ? null : new LossScaler(ls === true ? {} : ls, this.device);
    } catch (e) {
      this.lossScaler = null;
      this.dispose(); // state kept for earlier groups (adopted state included) would otherwise leak
      throw e;
    } finally {
      this.carrying = null;
    }
  }

  /** Checks a group's hyperparameters; throws naming the optimizer, the group and the value. */
  protected abstract checkHyper(h: H, where: string): void;
  /** Names of the f32 state tensors a parameter of this group needs, in kernel order. */
  protected abstract stateNames(h: H): string[];
  /** Enqueues the update of one parameter. */
  protected abstract update(state: ParamState, inputs: UpdateInputs): void;
  /** Enqueues the updates of every parameter that has a gradient (default: one `update` each; AdamW batches them). */
  protected updateAll(batch: readonly (readonly [ParamState, UpdateInputs])[]): void {
    for (const [s, inputs] of batch) this.update(s, inputs);
  }
  /** The shape of state tensor `name` of `p` (default: the parameter's; GaLore's projected moments differ). */
  protected stateShape(p: Tensor, _name: string, _h: H): readonly number[] {
    return p.shape;
  }

  /** The backend every parameter lives on. */
  get device(): Backend {
    if (!this.backendRef) throw new StepError(`${this.kind}: no parameters`);
    return this.backendRef;
  }

  /** Adds a group (e.g. the new layers of a STEP stage) and allocates its state. */
  addParamGroup(spec: ParamGroupSpec<H>): void {
    this.checkAlive('addParamGroup');
    const where = `${this.kind} group ${this.groups.length}`;
    if (!spec || !Array.isArray(spec.params) || spec.params.length === 0) throw new StepError(`${where}: a group needs a non-empty 'params' array`);
    const { params, ...overrides } = spec;
    const hyper = { ...this.defaults, ...(overrides as unknown as Partial<H>) } as H;
    this.checkHyper(hyper, where);
    if (new Set(params).size !== params.length) throw new StepError(`${where}: a parameter appears twice in the group`);
    for (const p of params) this.checkParam(p, where);
    const group = { ...hyper, params: [...params], initialLr: hyper.lr } as ParamGroup<H>;
    const index = this.groups.length;
    this.groups.push(group);
    for (const p of params) this.states.push(this.allocateState(p, index, hyper));
  }

  private checkParam(p: Tensor, where: string): void {
    if (!(p instanceof Tensor)) throw new StepError(`${where}: parameters must be Tensors, got ${typeof p}`);
    p.use(`${where}`);
    if (!p.requiresGrad) {
      throw new StepError(`${where}: parameter ${p.describe()} has requiresGrad = false; frozen weights get no optimizer state (leave them out, or set requiresGrad = true)`);
    }
    const want = this.precision === 'mixed' ? 'f16' : 'f32';
    if (p.dtype !== want) {
      throw new DTypeError(`${where}: parameter ${p.describe()} is ${p.dtype} but precision '${this.precision}' needs ${want} parameters${p.dtype === 'f16' ? " (pass precision: 'mixed')" : ''}`);
    }
    if (this.states.some((s) => s.param === p) || this.groups.some((g) => g.params.includes(p))) {
      throw new StepError(`${where}: parameter ${p.describe()} appears twice`);
    }
    this.backendRef ??= p.backend;
    if (p.backend !== this.backendRef) throw new StepError(`${where}: parameter ${p.describe()} is on ${p.backend.name} but the others are on ${this.backendRef.name}`);
  }

  private allocateState(p: Tensor, group: number, hyper: H): ParamState {
    const carried = this.carrying?.get(p);
    if (carried) return this.adoptState(carried, group, hyper);
    const name = describeParam(p);
    const tensors = new Map<string, Tensor>();
    for (const s of this.stateNames(hyper)) {
      tensors.set(s, keep(zeros(this.stateShape(p, s, hyper), { device: p.backend, category: 'optimizer', label: `${this.kind}.${s}:${name}` })));
    }
    const master = this.precision === 'mixed'
      ? keep(clone(p, { dtype: 'f32', category: 'optimizer', label: `${this.kind}.master:${name}` }))
      : null;
    return { param: p, group, tensors, master, step: 0, skipBase: 0 };
  }

  /** Takes over a released state; the new loss scaler has skipped no step yet, so skipBase is 0. */
  private adoptState(c: CarriedState, group: number, hyper: H): ParamState {
    const where = `${this.kind}: carried state of ${c.param.describe()}`;
    const names = this.stateNames(hyper);
    if (names.join() !== [...c.tensors.keys()].join()) throw new StepError(`${where} holds [${[...c.tensors.keys()].join(', ')}], this optimizer needs [${names.join(', ')}]`);
    for (const t of c.tensors.values()) if (t.isDisposed || t.size !== c.param.size) throw new StepError(`${where}: a state tensor is disposed or of another size`);
    if ((c.master !== null) !== (this.precision === 'mixed')) throw new StepError(`${where}: ${c.master ? 'has' : 'lacks'} a master copy but this optimizer is '${this.precision}'`);
    this.carrying!.delete(c.param);
    return { param: c.param, group, tensors: c.tensors, master: c.master, step: c.appliedSteps, skipBase: 0 };
  }

  /**
   * Hands the state of `params` to the caller (for a next optimizer's `carry`): this optimizer
   * forgets them and will neither update nor free their state. Reads the loss scaler's skipped
   * count back once (mixed precision) to count the updates each parameter had.
   */
  async releaseState(params: readonly Tensor[]): Promise<CarriedState[]> {
    this.checkAlive('releaseState');
    const skipped = this.lossScaler ? (await this.lossScaler.read()).skippedSteps : 0;
    const out: CarriedState[] = [];
    for (const p of params) {
      const i = this.states.findIndex((x) => x.param === p);
      if (i < 0) throw new StepError(`${this.kind}.releaseState: ${p.describe()} is not a parameter of this optimizer (or was released already)`);
      const s = this.states[i]!;
      this.states.splice(i, 1);
      out.push({ param: p, tensors: s.tensors, master: s.master, appliedSteps: s.step - (skipped - s.skipBase) });
    }
    return out;
  }

  /** Every parameter's state, in group order (read-only use: tests, checkpoints, memory reports). */
  paramStates(): readonly ParamState[] {
    this.checkAlive('paramStates');
    return this.states;
  }

  /** Bytes of optimizer state on the device (equals the tracker's `optimizer` category for this optimizer). */
  stateBytes(): number {
    let n = 0;
    for (const s of this.states) {
      for (const t of s.tensors.values()) n += t.size * bytesPerElement(t.dtype);
      if (s.master) n += s.master.size * 4;
    }
    return n;
  }

  /** Sets every group's lr to its initial lr times `factor` (a schedule's value). */
  setLrScale(factor: number): void {
    if (!(factor >= 0) || !Number.isFinite(factor)) throw new StepError(`${this.kind}.setLrScale: factor must be a finite number >= 0, got ${factor}`);
    for (const g of this.groups) g.lr = g.initialLr * factor;
  }

  /**
   * Applies one update to every parameter whose grad is set, reading nothing back. With clipping
   * or loss scaling, gradients are first reduced to a global norm on the device; the update
   * kernels then scale them by clip / lossScale, and skip the step when the scaler saw inf/NaN.
   */
  step(options: StepOptions = {}): StepResult {
    this.checkAlive('step');
    this.groups.forEach((g, i) => {
      if (!(g.lr >= 0) || !Number.isFinite(g.lr)) throw new StepError(`${this.kind}.step: group ${i} has lr ${g.lr}; it must be a finite number >= 0`);
    });
    const active: [ParamState, Tensor][] = [];
    for (const s of this.states) {
      const g = s.param.grad;
      if (g === null) continue;
      this.checkGrad(s.param, g);
      active.push([s, g]);
    }
    const wantNorm = options.returnGradNorm ?? false;
    let status: Tensor | null = null;
    let norm: Tensor | null = null;
    if (active.length > 0 && (wantNorm || this.maxGradNorm > 0 || this.lossScaler)) {
      ({ status, norm } = this.gradStatus(active.map(([, g]) => g)));
    }
    try {
      for (const [s] of active) s.step++;
      this.updateAll(active.map(([s, g]) => [s, { grad: g, status: status ?? undefined }] as const));
    } finally {
      status?.dispose();
      if (!wantNorm) norm?.dispose();
    }
    return { gradNorm: wantNorm ? norm : null };
  }

  /** The finalize kernel's status (see kernels/optim.ts) and the global norm, both on the device. */
  private gradStatus(grads: Tensor[]): { status: Tensor; norm: Tensor } {
    const device = this.device;
    const groups = grads.map((g) => partialGroupsFor(g.size));
    const slots = groups.reduce((a, b) => a + b, 0);
    const partials = empty([2 * slots], { device, label: `${this.kind}.norm-partials` }, `${this.kind}.step`);
    try {
      // every gradient's partial sums, as many per dispatch as the device binds
      const bases = groups.map((_, k) => groups.slice(0, k).reduce((a, b) => a + b, 0));
      runKernel(gradSqPartialsMultiKernel, { inputs: { grads }, outputs: { partials }, attrs: { bases, groups } });
      const status = empty([4], { device, label: `${this.kind}.status` }, `${this.kind}.step`);
      const norm = empty([1], { device, label: 'grad norm' }, `${this.kind}.step`);
      const sc = this.lossScaler;
      runKernel(optimFinalizeKernel, {
        inputs: { partials }, outputs: { status, norm, scaler: sc?.state },
        attrs: { slots, maxNorm: this.maxGradNorm, growthFactor: sc?.growthFactor ?? 2, backoffFactor: sc?.backoffFactor ?? 0.5, growthInterval: sc?.growthInterval ?? 1 },
      });
      return { status, norm };
    } finally {
      partials.dispose();
    }
  }

  private checkGrad(p: Tensor, g: Tensor): void {
    const where = `${this.kind}.step`;
    if (g.isDisposed) throw new DisposedError(`${where}: the grad of ${p.describe()} was disposed; set it to null or zeroGrad() instead`);
    if (g.size !== p.size) throw new ShapeError(`${where}: grad ${formatShape(g.shape)} does not match parameter ${p.describe()}`);
    if (g.dtype !== 'f32' && g.dtype !== 'f16') throw new DTypeError(`${where}: grad of ${p.describe()} is ${g.dtype}; gradients must be f32 or f16`);
  }

  /** Zeroes every grad in place (grads keep accumulating from zero), or drops them (`setToNone`), freeing their memory. */
  zeroGrad(options: { setToNone?: boolean } = {}): void {
    this.checkAlive('zeroGrad');
    for (const s of this.states) {
      const g = s.param.grad;
      if (g === null) continue;
      if (options.setToNone) {
        g.dispose();
        s.param.grad = null;
      } else {
        fillInPlace(g, 0);
      }
    }
  }

  /**
   * Resets the state (not the master weights) of `params` (default: all) as ReLoRA does: zero,
   * random pruning or magnitude pruning; the step count restarts only with `resetStep`.
   * Magnitude pruning reads each state tensor back once; so does `resetStep` with a loss scaler.
   */
  async resetState(params: readonly Tensor[] | null, options: ResetOptions = {}): Promise<void> {
    this.checkAlive('resetState');
    const o = checkResetOptions(options, `${this.kind}.resetState`);
    const chosen = params === null ? this.states : params.map((p) => {
      const s = this.states.find((x) => x.param === p);
      if (!s) throw new StepError(`${this.kind}.resetState: ${p.describe()} is not a parameter of this optimizer`);
      return s;
    });
    for (const s of chosen) {
      for (const t of s.tensors.values()) await resetStateTensor(t, o.mode, o.p, o.generator);
    }
    if (o.resetStep) {
      const skipped = this.lossScaler ? (await this.lossScaler.read()).skippedSteps : 0;
      for (const s of chosen) { s.step = 0; s.skipBase = skipped; }
    }
  }

  /** Frees every state tensor and the loss scaler. The optimizer is unusable afterwards. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const s of this.states) {
      for (const t of s.tensors.values()) t.dispose();
      s.master?.dispose();
    }
    this.lossScaler?.dispose();
  }

  /** Writes the state (tensors, step counts, hyperparameters, loss scaler) to a safetensors file, atomically. */
  saveState(path: string): Promise<void> {
    this.checkAlive('saveState');
    return saveOptimizerState(this, path);
  }

  /** Restores a state written by saveState into this optimizer (same kind, precision and parameter shapes). */
  loadState(path: string): Promise<void> {
    this.checkAlive('loadState');
    return loadOptimizerState(this, path);
  }

  protected checkAlive(op: string): void {
    if (this.disposed) throw new DisposedError(`${this.kind}.${op}: the optimizer was disposed`);
  }
}

/** Workgroups (partial slots) of the global-norm reduction of an n-element gradient: ~64 elements per thread, at most 256. */
function partialGroupsFor(n: number): number {
  return Math.max(1, Math.min(256, Math.ceil(n / 4096)));
}
