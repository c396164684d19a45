/**
 * Helpers shared by the fused LLaMA kernel families (softmax, cross-entropy, RMSNorm, RoPE, SwiGLU):
 * the WGSL row reductions, input checks, and the cpu store of f64 results into any float storage.
 */
import type { Storage } from '../engine/backend.js';
import type { CpuBackend } from '../engine/cpu/backend.js';
import { f32ToF16Bits } from '../engine/dtype.js';
import { DTypeError, ShapeError, StepError } from '../engine/errors.js';
import { formatShape } from '../engine/shape.js';
import type { Tensor } from '../engine/tensor.js';
import type { WebGPUBackend } from '../engine/webgpu/backend.js';
import { wgslType } from './wgsl.js';

// ---------------------------------------------------------------------------------------------
// Row reductions in WGSL
// ---------------------------------------------------------------------------------------------

/**
 * How a workgroup reduces one row: `subgroup` makes the workgroup exactly one subgroup and uses
 * subgroupAdd/subgroupMax (no shared memory, no barriers: the fast path on llvmpipe, where
 * barriers become coroutines); `workgroup` uses 64 threads and a shared-memory tree (portable).
 */
export type RowReduction = 'subgroup' | 'workgroup';

let forcedReduction: RowReduction | null = null;

/** Forces one strategy (tests use it to cover both paths on one adapter); null restores the automatic choice. */
export function forceRowReduction(kind: RowReduction | null): void {
  forcedReduction = kind;
}

export interface RowPlan {
  kind: RowReduction;
  /** Threads per workgroup (= per row). */
  width: number;
}

/**
 * The adapter's subgroup size when it is fixed (min = max), else null. A 1-D workgroup of exactly
 * that size then runs as one subgroup (as every Vulkan, Metal and D3D driver packs compute
 * invocations); adapters with a range of sizes take the shared-memory path.
 */
function fixedSubgroupSize(backend: WebGPUBackend): number | null {
  const { subgroupMinSize: min, subgroupMaxSize: max } = backend.adapter;
  if (!backend.hasFeature('subgroups') || min === undefined || min !== max) return null;
  return min >= 4 && min <= 128 ? min : null;
}

/** The strategies this backend can run (tests cover each). */
export function availableRowReductions(backend: WebGPUBackend): RowReduction[] {
  return fixedSubgroupSize(backend) !== null ? ['subgroup', 'workgroup'] : ['workgroup'];
}

/** The reduction strategy for this backend: subgroups when their size is fixed, else shared memory. */
export function rowPlan(backend: WebGPUBackend): RowPlan {
  const sg = fixedSubgroupSize(backend);
  const kind = forcedReduction ?? (sg !== null ? 'subgroup' : 'workgroup');
  if (kind === 'subgroup') {
    if (sg === null) throw new StepError(`row reduction: subgroups were forced but adapter "${backend.adapter.description}" has no fixed subgroup size`);
    return { kind, width: sg };
  }
  return { kind, width: 64 };
}

/** The most negative finite f32: the start of a running max (WGSL constants cannot be -inf). */
export const F32_LOWEST = '-0x1.fffffep+127f';

/**
 * WGSL declarations for a row kernel: `WG` (threads per row) and `row_sum(v, lane)`,
 * `row_max(v, lane)` that return the reduction over the workgroup to every thread.
 * Call them from uniform control flow only (every thread of the workgroup, same number of times).
 */
export function rowReduceWGSL(plan: RowPlan): string {
  if (plan.kind === 'subgroup') {
    return `const WG: u32 = ${plan.width}u;
fn row_sum(v: f32, lane: u32) -> f32 { return subgroupAdd(v); }
fn row_max(v: f32, lane: u32) -> f32 { return subgroupMax(v); }`;
  }
  const tree = (op: string) => `red[lane] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lane < s) { red[lane] = ${op}; }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier(); // red is reused by the next reduction
  return r;`;
  return `const WG: u32 = ${plan.width}u;
var<workgroup> red: array<f32, ${plan.width}>;
fn row_sum(v: f32, lane: u32) -> f32 {
  ${tree('red[lane] + red[lane + s]')}
}
fn row_max(v: f32, lane: u32) -> f32 {
  ${tree('max(red[lane], red[lane + s])')}
}`;
}

/** `enable f16;` when any of these WGSL types is f16. */
export function enableF16(...types: string[]): string {
  return types.includes('f16') ? 'enable f16;\n' : '';
}

/** The `enable` lines a row kernel over these WGSL types needs. */
export function rowEnables(plan: RowPlan, ...types: string[]): string {
  return `${enableF16(...types)}${plan.kind === 'subgroup' ? 'enable subgroups;\n' : ''}`;
}

/** Entry-point parameters of a row kernel, and the WGSL that sets `row` and `lane` (one workgroup per row). */
export const ROW_PARAMS = '@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u';
export const ROW_INDEX = 'let row = wid.y * nwg.x + wid.x;\n  let lane = lid.x;';

/** The workgroup grid for `rows` rows (one workgroup each), folded into y past 65535. */
export function rowGrid(rows: number): [number, number] {
  if (rows <= 65535) return [rows, 1];
  return [65535, Math.ceil(rows / 65535)];
}

/** WGSL type of a float storage (f64 is rejected by the backend before a kernel runs). */
export function floatType(s: Storage): string {
  return wgslType(s.dtype);
}

// ---------------------------------------------------------------------------------------------
// Checks shared by the op functions
// ---------------------------------------------------------------------------------------------

/** Throws unless `t` is alive and has a float dtype. */
export function checkFloat(op: string, name: string, t: Tensor): void {
  t.use(op);
  if (t.dtype === 'i32') {
    throw new DTypeError(`${op}: ${name} ${t.describe()} is i32; expected a float tensor (f32, f16, or f64 on cpu)`);
  }
}

/** Throws unless `a` and `b` have the same shape and dtype. */
export function checkSameShapeAndDType(op: string, names: [string, string], a: Tensor, b: Tensor): void {
  if (a.shape.length !== b.shape.length || a.shape.some((d, i) => d !== b.shape[i])) {
    throw new ShapeError(`${op}: ${names[0]} ${formatShape(a.shape)} and ${names[1]} ${formatShape(b.shape)} must have the same shape`);
  }
  if (a.dtype !== b.dtype) {
    throw new DTypeError(`${op}: ${names[0]} is ${a.dtype} but ${names[1]} is ${b.dtype}; cast one with clone(t, { dtype })`);
  }
}

/** Throws unless `v` is a finite number > 0, >= 0, or an index (an integer in [0, 2^24), exact in f32). */
export function checkNumberOption(op: string, name: string, v: unknown, kind: 'positive' | 'nonnegative' | 'index'): number {
  const ok = typeof v === 'number' && Number.isFinite(v)
    && (kind === 'positive' ? v > 0 : kind === 'nonnegative' ? v >= 0 : Number.isSafeInteger(v) && v >= 0 && v < 2 ** 24);
  if (!ok) {
    const want = kind === 'positive' ? 'a finite number > 0' : kind === 'nonnegative' ? 'a finite number >= 0' : 'an integer in [0, 2^24)';
    throw new StepError(`${op}: ${name} must be ${want}, got ${String(v)}`);
  }
  return v as number;
}

/** The last dimension and the number of rows before it (rank >= 1). */
export function rowsAndCols(op: string, name: string, t: Tensor): { rows: number; cols: number } {
  if (t.rank < 1) throw new ShapeError(`${op}: ${name} ${t.describe()} is a scalar; expected at least one dimension`);
  const cols = t.shape[t.rank - 1]!;
  return { rows: t.shape.slice(0, -1).reduce((a, d) => a * d, 1), cols };
}

// ---------------------------------------------------------------------------------------------
// cpu helpers
// ---------------------------------------------------------------------------------------------

/** A function that stores a number at index i of a float storage, rounding once as the dtype does. */
export function cpuStore(backend: CpuBackend, s: Storage): (i: number, v: number) => void {
  const view = backend.view(s);
  if (s.dtype === 'f16') return (i, v) => { view[i] = f32ToF16Bits(v); };
  return (i, v) => { view[i] = v; };
}
