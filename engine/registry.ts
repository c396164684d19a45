import type { Backend, BackendName } from './backend.js';
import type { CpuBackend } from './cpu/backend.js';
import { DeviceMismatchError, StepError } from './errors.js';
import type { Tensor } from './tensor.js';
import type { WebGPUBackend } from './webgpu/backend.js';

/**
 * A kernel's operand names, in order: `'x'` is a tensor the caller must give, `'x?'` one it may
 * leave out, `'...xs'` (last only) a list of any length.
 */
export type OperandNames = readonly string[];

type RequiredName<N> = N extends `${string}?` | `...${string}` ? never : N;
type OptionalName<N> = N extends `...${string}` ? never : N extends `${infer B}?` ? B : never;
type ListName<N> = N extends `...${infer B}` ? B : never;

/** The tensors of a kernel's inputs (or outputs) by name, as the names declare them. */
export type Operands<N extends OperandNames> =
  { readonly [K in RequiredName<N[number]>]: Tensor } &
  { readonly [K in OptionalName<N[number]>]?: Tensor } &
  { readonly [K in ListName<N[number]>]: readonly Tensor[] };

/**
 * A kernel's signature: the op name, its operand names, and (as a type only) its attributes.
 * Callers and implementations both type-check against it; make one with `defineKernel`.
 */
export interface KernelDef<A, I extends OperandNames, O extends OperandNames> {
  readonly op: string;
  readonly inputs: I;
  readonly outputs: O;
  /** Carries the attribute type for the compiler; never set. */
  readonly attrsType?: A;
}

/** One call of a kernel: tensors already allocated by the op, by name, and plain attributes. */
export interface KernelCall<A, I extends OperandNames, O extends OperandNames> {
  readonly inputs: Operands<I>;
  readonly outputs: Operands<O>;
  readonly attrs: Readonly<A>;
}

/** The call type of a kernel definition. */
export type KernelCallOf<D> = D extends KernelDef<infer A, infer I, infer O> ? KernelCall<A, I, O> : never;

/** The untyped form of a call, for callers that know a kernel only by name: operands in declared order. */
export interface KernelArgs {
  readonly inputs: readonly Tensor[];
  readonly outputs: readonly Tensor[];
  readonly attrs: Readonly<Record<string, unknown>>;
}

export type KernelFn<B extends Backend, A, I extends OperandNames, O extends OperandNames> = (backend: B, call: KernelCall<A, I, O>) => void;

/** One op, one implementation per backend. */
export interface KernelImpls<A, I extends OperandNames, O extends OperandNames> {
  cpu?: KernelFn<CpuBackend, A, I, O>;
  webgpu?: KernelFn<WebGPUBackend, A, I, O>;
}

/** No attributes. */
export type NoAttrs = Record<string, never>;

/**
 * Declares a kernel: `defineKernel<Attrs>()('op', { inputs: ['x', 'bias?'], outputs: ['out'] })`.
 * (Two calls so that the attribute type is given while the operand names are inferred.)
 */
export function defineKernel<A extends object = NoAttrs>() {
  return <const I extends OperandNames, const O extends OperandNames>(op: string, operands: { inputs: I; outputs: O }): KernelDef<A, I, O> => {
    const names = [...operands.inputs, ...operands.outputs].map(bareName);
    if (new Set(names).size !== names.length) throw new StepError(`defineKernel(${op}): operand names must be distinct, got ${names.join(', ')}`);
    for (const list of [operands.inputs, operands.outputs]) {
      if (list.slice(0, -1).some((n) => n.startsWith('...'))) throw new StepError(`defineKernel(${op}): only the last operand may be a list ('...name'), got ${list.join(', ')}`);
    }
    return Object.freeze({ op, inputs: operands.inputs, outputs: operands.outputs });
  };
}

function bareName(n: string): string {
  return n.startsWith('...') ? n.slice(3) : n.endsWith('?') ? n.slice(0, -1) : n;
}

type AnyDef = KernelDef<unknown, OperandNames, OperandNames>;
type NamedOperands = Readonly<Record<string, Tensor | readonly Tensor[] | undefined>>;
/** A call as the registry handles it, whatever the kernel's types. */
type AnyCall = { readonly inputs: NamedOperands; readonly outputs: NamedOperands; readonly attrs: unknown };
type StoredImpls = { cpu?: (backend: CpuBackend, call: AnyCall) => void; webgpu?: (backend: WebGPUBackend, call: AnyCall) => void };

const registry = new Map<string, { def: AnyDef; impls: StoredImpls }>();

/** Registers (or extends) the implementations of a kernel. Registering a backend twice is an error. */
export function registerKernel<A, I extends OperandNames, O extends OperandNames>(def: KernelDef<A, I, O>, impls: KernelImpls<A, I, O>): void {
  const existing = registry.get(def.op);
  if (existing && existing.def !== (def as AnyDef)) throw new StepError(`registerKernel: op "${def.op}" is already defined by another defineKernel call; register against that definition, or name the op differently`);
  for (const b of Object.keys(impls) as BackendName[]) {
    if (existing?.impls[b]) throw new StepError(`registerKernel: op "${def.op}" already has a ${b} kernel`);
  }
  // the one place the typed implementations are erased: runKernel only passes calls checked against `def`
  registry.set(def.op, { def: def as AnyDef, impls: { ...existing?.impls, ...(impls as StoredImpls) } });
}

export function registeredKernels(): { op: string; backends: BackendName[] }[] {
  return [...registry].map(([op, { impls }]) => ({ op, backends: Object.keys(impls) as BackendName[] }));
}

/**
 * Runs a kernel on the backend its tensors live on. All tensors must share one backend and be
 * alive. Kernels only enqueue work: nothing waits for the device here.
 *
 * Typed: `runKernel(def, { inputs: { x }, outputs: { out }, attrs })`. By name (untyped, for
 * callers without the definition): `runKernel('op', { inputs: [x], outputs: [out], attrs })`,
 * operands in declared order, optional ones left out only from the end.
 */
export function runKernel<A, I extends OperandNames, O extends OperandNames>(def: KernelDef<A, I, O>, call: KernelCall<A, I, O>): void;
export function runKernel(op: string, args: KernelArgs): void;
export function runKernel(target: AnyDef | string, call: AnyCall | KernelArgs): void {
  const op = typeof target === 'string' ? target : target.op;
  const entry = registry.get(op);
  const def = typeof target === 'string' ? entry?.def : target;
  const positional = Array.isArray(call.inputs) || Array.isArray(call.outputs);
  const named = !positional ? call as AnyCall : def && fromPositional(def, call as KernelArgs);
  const all = def && named
    ? [...operandList(op, 'input', def.inputs, named.inputs), ...operandList(op, 'output', def.outputs, named.outputs)]
    : [...(call as KernelArgs).inputs, ...(call as KernelArgs).outputs];
  if (all.length === 0) throw new StepError(`runKernel(${op}): no tensors given`);
  const backend = all[0]!.use(op).backend;
  for (const t of all) {
    const s = t.use(op);
    if (s.backend !== backend) {
      throw new DeviceMismatchError(`${op}: ${all[0]!.describe()} is on ${backend.name} but ${t.describe()} is on ${s.backend.name}; move one with toDevice()`);
    }
  }
  if (!entry || !named) {
    throw new StepError(`${op}: no kernel registered under this name (did you import 'step-webgpu' or 'step-webgpu/kernels'?)`);
  }
  const fn = entry.impls[backend.name] as ((backend: Backend, call: AnyCall) => void) | undefined;
  if (!fn) throw new StepError(`${op}: no ${backend.name} kernel; it exists for ${Object.keys(entry.impls).join(', ')}`);
  fn(backend, named);
}

/** The tensors of one side of a named call, in declared order; throws naming a missing required operand. */
function operandList(op: string, side: string, names: OperandNames, operands: NamedOperands): Tensor[] {
  const out: Tensor[] = [];
  for (const n of names) {
    const v = operands[bareName(n)];
    if (v === undefined) {
      if (n.endsWith('?')) continue;
      throw new StepError(`${op}: ${side} "${bareName(n)}" is missing (the kernel takes ${side}s ${names.join(', ') || 'none'})`);
    }
    if (isList(v)) out.push(...v);
    else out.push(v);
  }
  return out;
}

function isList(v: Tensor | readonly Tensor[]): v is readonly Tensor[] {
  return Array.isArray(v);
}

/** Names the operands of a by-name call in declared order (a list operand takes the rest). */
function fromPositional(def: AnyDef, args: KernelArgs): AnyCall {
  const side = (names: OperandNames, list: readonly Tensor[], what: string) => {
    const out: Record<string, Tensor | readonly Tensor[]> = {};
    let k = 0;
    for (const n of names) {
      if (n.startsWith('...')) { out[bareName(n)] = list.slice(k); k = list.length; } else if (k < list.length) out[bareName(n)] = list[k++]!;
    }
    if (k < list.length) throw new StepError(`${def.op}: ${list.length} ${what}s given but the kernel takes ${names.length} (${names.join(', ') || 'none'})`);
    return out;
  };
  return { inputs: side(def.inputs, args.inputs, 'input'), outputs: side(def.outputs, args.outputs, 'output'), attrs: args.attrs };
}
