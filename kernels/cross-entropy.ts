/**
 * Cross-entropy of logits [N, V] against integer targets [N] (log-softmax fused in), mean over the
 * tokens whose target is not `ignoreIndex`, and its backward:
 *
 *   lse_i  = log sum_v exp(logits_iv)
 *   loss   = (1 / count) * sum_{i: t_i != ignore} (lse_i - logits_{i, t_i})   (f32 scalar; f64 for f64 logits)
 *   dlogits_iv = gradScale * (softmax(logits_i)_v - [v == t_i]) / count, 0 on ignored rows
 *
 * Memory: the forward keeps only a per-row loss [N] (f32); the backward writes dlogits (the one
 * logits-sized buffer) and recomputes each row's max and sum in the same kernel.
 *
 * Choices, stated once:
 * - Every target ignored (or N = 0): the loss is 0 and dlogits is 0. PyTorch returns NaN (0/0);
 *   a batch that is all padding should not poison a training run, and 0 is the limit of the
 *   mean's gradient contribution.
 * - A target outside [0, V) that is not ignoreIndex: the cpu kernel throws, naming the row and
 *   value. WebGPU cannot throw without a readback, so that row's loss and gradient row are NaN,
 *   which makes the mean loss NaN: the error surfaces at the first loss read, never silently.
 * - The count of non-ignored tokens is summed in f32 on WebGPU: exact up to 2^24 tokens per batch.
 * - `reduction: 'sum'` drops the 1 / count (loss = the sum, dlogits scaled by gradScale alone): the
 *   fused LM head (autograd/ops/linear-cross-entropy.ts) sums row chunks and divides once by the
 *   count of the whole batch.
 */
import type { CpuBackend } from '../engine/cpu/backend.js';
import { empty } from '../engine/creation.js';
import { DTypeError, ShapeError, StepError } from '../engine/errors.js';
import type { Category } from '../engine/memory.js';
import type { KernelCallOf } from '../engine/registry.js';
import { defineKernel, registerKernel, runKernel } from '../engine/registry.js';
import type { Tensor } from '../engine/tensor.js';
import type { WebGPUBackend } from '../engine/webgpu/backend.js';
import {
  checkFloat, cpuStore, F32_LOWEST, floatType, ROW_INDEX, ROW_PARAMS, rowEnables, rowGrid, rowPlan, rowReduceWGSL,
} from './fused-shared.js';
import { packUniforms } from './wgsl.js';

interface CeAttrs { n: number; v: number; ignore: number; sum: boolean }
/** `gradScale` (a number) is the upstream gradient when no gradScale tensor is given. */
interface CeBackwardAttrs extends CeAttrs { gradScale: number }

/** loss = mean over non-ignored rows; rowLoss is scratch of the WebGPU passes, allocated by the op on both backends. */
const crossEntropyKernel = defineKernel<CeAttrs>()('crossEntropy', { inputs: ['logits', 'targets'], outputs: ['loss', 'rowLoss'] });
/** gradScale: the upstream gradient as a one-element tensor (else attrs.gradScale); scale is scratch. */
const crossEntropyBackwardKernel = defineKernel<CeBackwardAttrs>()('crossEntropyBackward', { inputs: ['logits', 'targets', 'gradScale?'], outputs: ['dlogits', 'scale'] });

export interface CrossEntropyOptions {
  /** Targets equal to this are skipped (default -100, as in PyTorch). */
  ignoreIndex?: number;
  /** 'mean' (default): divide by the count of non-ignored targets; 'sum': do not. */
  reduction?: 'mean' | 'sum';
  /** Memory category of the output (default `temporary`). */
  category?: Category;
}

export interface CrossEntropyBackwardOptions extends CrossEntropyOptions {
  /**
   * The upstream gradient of the loss (default 1): a number, or a one-element f32 (or, on cpu,
   * f64) tensor on the logits' device (what autograd holds, so nothing is read back).
   */
  gradScale?: number | Tensor;
}

function checkInputs(op: string, logits: Tensor, targets: Tensor, options: CrossEntropyOptions): CeAttrs {
  const ignoreIndex: unknown = options.ignoreIndex ?? -100, reduction: unknown = options.reduction ?? 'mean';
  checkFloat(op, 'logits', logits);
  targets.use(op);
  if (logits.rank !== 2) throw new ShapeError(`${op}: logits must be [N, V], got ${logits.describe()}; reshape [B, T, V] to [B*T, V] (a free view)`);
  const [n, v] = logits.shape as [number, number];
  if (targets.dtype !== 'i32') throw new DTypeError(`${op}: targets must be i32, got ${targets.dtype} (${targets.describe()})`);
  if (targets.rank !== 1 || targets.shape[0] !== n) {
    throw new ShapeError(`${op}: targets ${targets.describe()} must be [N] = [${n}] for logits ${logits.describe()}`);
  }
  if (n > 0 && v === 0) throw new ShapeError(`${op}: logits ${logits.describe()} have no classes (V = 0)`);
  if (typeof ignoreIndex !== 'number' || !Number.isSafeInteger(ignoreIndex) || ignoreIndex < -(2 ** 31) || ignoreIndex >= 2 ** 31) {
    throw new StepError(`${op}: ignoreIndex must be a 32-bit integer, got ${String(ignoreIndex)}`);
  }
  if (reduction !== 'mean' && reduction !== 'sum') throw new StepError(`${op}: reduction must be 'mean' or 'sum', got ${String(reduction)}`);
  return { n, v, ignore: ignoreIndex, sum: reduction === 'sum' };
}

/** Mean (or, with reduction 'sum', summed) cross-entropy over the non-ignored tokens: a scalar f32 tensor. */
export function crossEntropy(logits: Tensor, targets: Tensor, options: CrossEntropyOptions = {}): Tensor {
  const op = 'crossEntropy';
  const attrs = checkInputs(op, logits, targets, options);
  // f32, or f64 for f64 logits (cpu gradient checks)
  const loss = empty([], { dtype: logits.dtype === 'f64' ? 'f64' : 'f32', device: logits.backend, category: options.category }, op);
  const rowLoss = empty([attrs.n], { dtype: 'f32', device: logits.backend }, `${op} row losses`);
  try {
    runKernel(crossEntropyKernel, { inputs: { logits, targets }, outputs: { loss, rowLoss }, attrs });
  } finally {
    rowLoss.dispose();
  }
  return loss;
}

/** dlogits [N, V] of the mean (or summed) cross-entropy (same dtype as the logits). */
export function crossEntropyBackward(logits: Tensor, targets: Tensor, options: CrossEntropyBackwardOptions = {}): Tensor {
  const op = 'crossEntropyBackward';
  const attrs = checkInputs(op, logits, targets, options);
  const g = options.gradScale ?? 1;
  if (typeof g === 'number') {
    if (!Number.isFinite(g)) throw new StepError(`${op}: gradScale must be finite, got ${g}`);
  } else {
    g.use(op);
    if (g.size !== 1 || (g.dtype !== 'f32' && g.dtype !== 'f64')) throw new ShapeError(`${op}: gradScale ${g.describe()} must be a one-element f32 tensor (f64 on cpu), got ${g.dtype}`);
  }
  const dlogits = empty(logits.shape, { dtype: logits.dtype, device: logits.backend, category: options.category }, op);
  const scale = empty([1], { dtype: 'f32', device: logits.backend }, `${op} scale`);
  try {
    runKernel(crossEntropyBackwardKernel, {
      inputs: { logits, targets, gradScale: typeof g === 'number' ? undefined : g }, outputs: { dlogits, scale },
      attrs: { ...attrs, gradScale: typeof g === 'number' ? g : 0 },
    });
  } finally {
    scale.dispose();
  }
  return dlogits;
}

/** Targets as numbers, checking each is ignored or a class index. */
function checkedTargets(backend: CpuBackend, op: string, targets: Tensor, a: CeAttrs): ArrayLike<number> {
  const t = backend.values(targets.storage);
  for (let i = 0; i < a.n; i++) {
    const k = t[i]!;
    if (k !== a.ignore && (k < 0 || k >= a.v)) {
      throw new StepError(`${op}: target ${k} at row ${i} is outside [0, ${a.v}) and is not ignoreIndex ${a.ignore}; check the tokenizer's vocabulary size against the model's`);
    }
  }
  return t;
}

/** log sum exp of one row, in f64. */
function rowLse(x: ArrayLike<number>, base: number, v: number): number {
  let m = -Infinity;
  for (let j = 0; j < v; j++) m = Math.max(m, x[base + j]!);
  let s = 0;
  for (let j = 0; j < v; j++) s += Math.exp(x[base + j]! - m);
  return m + Math.log(s);
}

function forwardCpu(backend: CpuBackend, { inputs, outputs, attrs: a }: KernelCallOf<typeof crossEntropyKernel>): void {
  const x = backend.values(inputs.logits.storage);
  const t = checkedTargets(backend, 'crossEntropy', inputs.targets, a);
  let sum = 0, count = 0;
  for (let i = 0; i < a.n; i++) {
    if (t[i] === a.ignore) continue;
    sum += rowLse(x, i * a.v, a.v) - x[i * a.v + t[i]!]!;
    count++;
  }
  cpuStore(backend, outputs.loss.storage)(0, count === 0 ? 0 : a.sum ? sum : sum / count);
}

function backwardCpu(backend: CpuBackend, { inputs, outputs, attrs: a }: KernelCallOf<typeof crossEntropyBackwardKernel>): void {
  const x = backend.values(inputs.logits.storage);
  const t = checkedTargets(backend, 'crossEntropyBackward', inputs.targets, a);
  const g = inputs.gradScale ? backend.values(inputs.gradScale.storage)[0]! : a.gradScale;
  let count = 0;
  for (let i = 0; i < a.n; i++) if (t[i] !== a.ignore) count++;
  const rowScale = a.sum ? g : g / count;
  const store = cpuStore(backend, outputs.dlogits.storage);
  for (let i = 0; i < a.n; i++) {
    const base = i * a.v;
    if (t[i] === a.ignore) {
      for (let j = 0; j < a.v; j++) store(base + j, 0);
      continue;
    }
    const lse = rowLse(x, base, a.v);
    for (let j = 0; j < a.v; j++) store(base + j, rowScale * (Math.exp(x[base + j]! - lse) - (j === t[i] ? 1 : 0)));
  }
}

/** WGSL for a NaN (the marker of an out-of-range target): a constant NaN is a shader error, a private variable is not. */
const NAN = 'bitcast<f32>(nan_bits)';
const NAN_DECL = 'var<private> nan_bits: u32 = 0x7fc00000u;';

/** The shared first pass of a row: running max m and sum s of exp(v - m), combined over the workgroup. */
const ROW_STATS = `var m = ${F32_LOWEST};
  var s = 0.0;
  for (var j = lane; j < u.v; j += WG) {
    let x = f32(logits[base + j]);
    let d = exp(-abs(x - m));
    s = select(s + d, s * d + 1.0, x > m);
    m = max(m, x);
  }
  let gm = row_max(m, lane);
  let gs = row_sum(s * exp(m - gm), lane);`;

/** Per-row loss (0 when ignored, NaN when the target is out of range). */
function rowLossSource(b: WebGPUBackend, t: string): string {
  const plan = rowPlan(b);
  return `${rowEnables(plan, t)}
struct U { n: u32, v: u32, ignore: i32 }
@group(0) @binding(0) var<storage, read> logits: array<${t}>;
@group(0) @binding(1) var<storage, read> targets: array<i32>;
@group(0) @binding(2) var<storage, read_write> row_loss: array<f32>;
@group(0) @binding(3) var<uniform> u: U;
${NAN_DECL}
${rowReduceWGSL(plan)}
@compute @workgroup_size(WG) fn main(${ROW_PARAMS}) {
  ${ROW_INDEX}
  if (row >= u.n) { return; }
  let base = row * u.v;
  ${ROW_STATS}
  if (lane != 0u) { return; }
  let k = targets[row];
  if (k == u.ignore) { row_loss[row] = 0.0; }
  else if (k < 0 || u32(k) >= u.v) { row_loss[row] = ${NAN}; }
  else { row_loss[row] = gm + log(gs) - f32(logits[base + u32(k)]); }
}`;
}

/**
 * One workgroup sums the row losses and counts the non-ignored targets (a fixed order, so the
 * result is deterministic). mode 'mean' writes sum / count; mode 'scale' writes g / count; `sum`
 * drops the division.
 */
function reduceSource(b: WebGPUBackend, mode: 'mean' | 'scale-uniform' | 'scale-tensor', sum: boolean): string {
  const plan = rowPlan(b);
  const inputs = mode === 'mean'
    ? ['row_loss: array<f32>', 'targets: array<i32>']
    : mode === 'scale-tensor' ? ['targets: array<i32>', 'g: array<f32>'] : ['targets: array<i32>'];
  const decls = inputs.map((d, i) => `@group(0) @binding(${i}) var<storage, read> ${d};`).join('\n');
  const div = sum ? '' : ' / count';
  const result = mode === 'mean' ? `row_sum(acc, lane)${div}` : mode === 'scale-tensor' ? `g[0]${div}` : `u.g${div}`;
  return `${rowEnables(plan)}
struct U { n: u32, ignore: i32, g: f32 }
${decls}
@group(0) @binding(${inputs.length}) var<storage, read_write> out: array<f32>;
@group(0) @binding(${inputs.length + 1}) var<uniform> u: U;
${rowReduceWGSL(plan)}
@compute @workgroup_size(WG) fn main(${ROW_PARAMS}) {
  let lane = lid.x;
  var acc = 0.0;
  var c = 0.0;
  for (var j = lane; j < u.n; j += WG) {
    if (targets[j] != u.ignore) { c += 1.0; ${mode === 'mean' ? 'acc += row_loss[j];' : ''} }
  }
  let count = row_sum(c, lane);
  let r = ${result};
  if (lane == 0u) { out[0] = select(0.0, r, count > 0.0); }
}`;
}

/** dlogits rows: (softmax - onehot) * scale[0]; zeros on ignored rows, NaN on out-of-range targets. */
function gradSource(b: WebGPUBackend, t: string): string {
  const plan = rowPlan(b);
  return `${rowEnables(plan, t)}
struct U { n: u32, v: u32, ignore: i32 }
@group(0) @binding(0) var<storage, read> logits: array<${t}>;
@group(0) @binding(1) var<storage, read> targets: array<i32>;
@group(0) @binding(2) var<storage, read> scale: array<f32>;
@group(0) @binding(3) var<storage, read_write> dlogits: array<${t}>;
@group(0) @binding(4) var<uniform> u: U;
${NAN_DECL}
${rowReduceWGSL(plan)}
@compute @workgroup_size(WG) fn main(${ROW_PARAMS}) {
  ${ROW_INDEX}
  if (row >= u.n) { return; }
  let base = row * u.v;
  ${ROW_STATS}
  let k = targets[row];
  let bad = k != u.ignore && (k < 0 || u32(k) >= u.v);
  let g = select(scale[0], 0.0, k == u.ignore);
  let inv = 1.0 / gs;
  for (var j = lane; j < u.v; j += WG) {
    let p = exp(f32(logits[base + j]) - gm) * inv - select(0.0, 1.0, i32(j) == k);
    dlogits[base + j] = ${t}(select(p * g, ${NAN}, bad));
  }
}`;
}

registerKernel(crossEntropyKernel, {
  cpu: forwardCpu,
  webgpu(backend, { inputs, outputs, attrs: a }) {
    const logits = inputs.logits.storage, targets = inputs.targets.storage;
    const loss = outputs.loss.storage, rowLoss = outputs.rowLoss.storage;
    backend.dispatch({
      label: 'crossEntropy rows',
      source: rowLossSource(backend, floatType(logits)),
      buffers: [logits, targets, rowLoss],
      uniforms: packUniforms([['u32', a.n], ['u32', a.v], ['i32', a.ignore]]),
      workgroups: rowGrid(a.n),
    });
    backend.dispatch({
      label: 'crossEntropy mean',
      source: reduceSource(backend, 'mean', a.sum),
      buffers: [rowLoss, targets, loss],
      uniforms: packUniforms([['u32', a.n], ['i32', a.ignore], ['f32', 0]]),
      workgroups: [1],
    });
  },
});

registerKernel(crossEntropyBackwardKernel, {
  cpu: backwardCpu,
  webgpu(backend, { inputs, outputs, attrs: a }) {
    const logits = inputs.logits.storage, targets = inputs.targets.storage;
    const dlogits = outputs.dlogits.storage, scale = outputs.scale.storage;
    const g = inputs.gradScale?.storage;
    backend.dispatch({
      label: 'crossEntropyBackward scale',
      source: reduceSource(backend, g ? 'scale-tensor' : 'scale-uniform', a.sum),
      buffers: g ? [targets, g, scale] : [targets, scale],
      uniforms: packUniforms([['u32', a.n], ['i32', a.ignore], ['f32', g ? 0 : a.gradScale]]),
      workgroups: [1],
    });
    backend.dispatch({
      label: 'crossEntropyBackward',
      source: gradSource(backend, floatType(logits)),
      buffers: [logits, targets, scale, dlogits],
      uniforms: packUniforms([['u32', a.n], ['u32', a.v], ['i32', a.ignore]]),
      workgroups: rowGrid(a.n),
    });
  },
});
