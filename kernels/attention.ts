/**
 * Fused scaled dot-product attention (FlashAttention-2) with grouped KV heads, and its backward.
 *
 *   forward:  o_i = sum_j p_ij v_j,  p_ij = exp(s_ij - lse_i),  s_ij = scale * q_i . k_j,  lse_i = log sum_j exp(s_ij)
 *   backward: delta_i = dO_i . o_i,  ds_ij = p_ij * (dO_i . v_j - delta_i)
 *             dq_i = scale * sum_j ds_ij k_j,  dk_j = scale * sum_i ds_ij q_i,  dv_j = sum_i p_ij dO_i
 *
 * q [B, H, Tq, D], k and v [B, Hkv, Tk, D], or all three [B, T, heads, D] with `layout: 'bthd'`
 * (as the projections make them: no permute copies either way) (H a multiple of Hkv; query head h reads KV head
 * h / (H / Hkv), Hugging Face's repeat_kv order, without copies); sums over j run over the keys
 * row i sees (causal: j <= i + offset). The forward never holds scores in memory: it walks the
 * keys with a running max and sum and writes o and lse [B, H, Tq] (f32; f64 on cpu for f64 inputs).
 * The backward recomputes p from lse; dk and dv of a KV head sum its group's query heads inside
 * one kernel (no atomics: deterministic). The WebGPU kernels are in attention-wgsl.ts; the cpu
 * kernels here are the reference (f64 arithmetic, rounded once when stored).
 */
import type { CpuBackend } from '../engine/cpu/backend.js';
import { empty } from '../engine/creation.js';
import { DeviceMismatchError, DTypeError, ShapeError, StepError } from '../engine/errors.js';
import type { Category } from '../engine/memory.js';
import type { KernelCallOf } from '../engine/registry.js';
import { defineKernel, registerKernel, runKernel } from '../engine/registry.js';
import { formatShape } from '../engine/shape.js';
import type { Tensor } from '../engine/tensor.js';
import type { WebGPUBackend } from '../engine/webgpu/backend.js';
import type { AttentionShape, AttentionVariant, RowStrides } from './attention-wgsl.js';
import { attentionDkvSource, attentionDqSource, attentionForwardSource, attentionUniforms } from './attention-wgsl.js';
import { cachedSource } from './wgsl.js';
import { cpuStore } from './fused-shared.js';
import { fixedSubgroupSize } from './matmul-webgpu.js';

interface AttentionAttrs extends AttentionShape { D: number }

const forwardKernel = defineKernel<AttentionAttrs>()('flashAttention', { inputs: ['q', 'k', 'v'], outputs: ['out', 'lse'] });
/** delta (rowsum(dO * O), [B, H, Tq]) is scratch, allocated by the op on both backends so both count the same bytes. */
const backwardKernel = defineKernel<AttentionAttrs>()('flashAttentionBackward', {
  inputs: ['q', 'k', 'v', 'out', 'lse', 'dOut'], outputs: ['dq', 'dk', 'dv', 'delta'],
});

export interface FlashAttentionOptions {
  /**
   * Where the heads sit: 'bhtd' = q [B, H, Tq, D], k, v [B, Hkv, Tk, D] (default); 'bthd' =
   * q [B, Tq, H, D], k, v [B, Tk, Hkv, D]. The output is in q's layout; lse is [B, H, Tq] in both.
   */
  layout?: 'bhtd' | 'bthd';
  /** Mask key j for query row i when j > i + positionOffset (default true). */
  causal?: boolean;
  /** Multiplier of q k^T (default 1 / sqrt(D)). */
  scale?: number;
  /** Position of the first query row among the keys (causal only; default 0; Tk - Tq for a KV cache). */
  positionOffset?: number;
  /** Memory category of the outputs (default `temporary`). */
  category?: Category;
}

/** Checks q, k, v and the options; returns the kernel attributes. */
export function attentionAttrs(op: string, q: Tensor, k: Tensor, v: Tensor, options: FlashAttentionOptions, { allowEmpty = false } = {}): AttentionAttrs {
  q.use(op); k.use(op); v.use(op);
  const shapes = `q ${formatShape(q.shape)}, k ${formatShape(k.shape)}, v ${formatShape(v.shape)}`;
  const layout = options.layout ?? 'bhtd';
  if (layout !== 'bhtd' && layout !== 'bthd') throw new StepError(`${op}: layout must be 'bhtd' or 'bthd', got ${JSON.stringify(layout)}`);
  const bthd = layout === 'bthd';
  if (q.rank !== 4 || k.rank !== 4 || v.rank !== 4) throw new ShapeError(`${op}: ${shapes}: q, k and v must be ${bthd ? '[B, T, heads, D]' : '[B, heads, T, D]'}`);
  if (q.backend !== k.backend || q.backend !== v.backend) throw new DeviceMismatchError(`${op}: ${shapes}: q, k and v live on different backends; move them with toDevice()`);
  if (q.dtype !== k.dtype || q.dtype !== v.dtype || q.dtype === 'i32') {
    throw new DTypeError(`${op}: ${shapes}: dtypes ${q.dtype}, ${k.dtype}, ${v.dtype}; all three must be one float dtype`);
  }
  // [B, heads, T, D] as stored, or [B, T, heads, D] read as such
  const dims = (t: Tensor) => { const [b, x, y, d] = t.shape as [number, number, number, number]; return bthd ? [b, y, x, d] : [b, x, y, d]; };
  const [B, H, Tq, D] = dims(q) as [number, number, number, number];
  const [kB, Hkv, Tk, kD] = dims(k) as [number, number, number, number];
  if (k.shape.join() !== v.shape.join()) throw new ShapeError(`${op}: ${shapes}: k and v must have one shape`);
  if (kB !== B || kD !== D) throw new ShapeError(`${op}: ${shapes}: k and v must share q's batch ${B} and head size ${D}`);
  if (Hkv === 0 || H % Hkv !== 0) throw new ShapeError(`${op}: ${shapes}: q's ${H} heads must be a multiple of k's ${Hkv} KV heads`);
  const causal = options.causal ?? true;
  const offset = options.positionOffset ?? 0;
  if (!Number.isInteger(offset) || offset < 0) throw new ShapeError(`${op}: positionOffset ${offset} must be a non-negative integer`);
  if (!causal && offset !== 0) throw new ShapeError(`${op}: positionOffset ${offset} only applies with causal: true`);
  const scale = options.scale ?? 1 / Math.sqrt(D);
  if (!Number.isFinite(scale)) throw new ShapeError(`${op}: scale ${scale} must be a finite number`);
  if (!allowEmpty && (D === 0 || (Tk === 0 && Tq > 0))) throw new ShapeError(`${op}: ${shapes}: the head size and (with queries) the key count must be at least 1`);
  const rows = (heads: number, T: number): RowStrides => (bthd ? [T * heads, 1, heads] : [heads * T, T, 1]);
  return { B, H, Hkv, Tq, Tk, D, causal, offset, scale, qRows: rows(H, Tq), kRows: rows(Hkv, Tk) };
}

/** The shape of lse and delta: [B, H, Tq] in either layout. */
const statsShape = (a: AttentionAttrs): number[] => [a.B, a.H, a.Tq];

/** The dtype of lse and delta: f64 for f64 inputs (gradient checks), else f32. */
const statsDType = (q: Tensor) => (q.dtype === 'f64' ? 'f64' : 'f32');

/** softmax(q k^T * scale [causal]) v -> { out [B, H, Tq, D] (q's dtype), lse [B, H, Tq] } for q [B, H, Tq, D], k, v [B, Hkv, Tk, D]. */
export function flashAttention(q: Tensor, k: Tensor, v: Tensor, options: FlashAttentionOptions = {}): { out: Tensor; lse: Tensor } {
  const op = 'flashAttention';
  const attrs = attentionAttrs(op, q, k, v, options);
  const device = q.backend, category = options.category;
  const out = empty(q.shape, { dtype: q.dtype, device, category }, op);
  const lse = empty(statsShape(attrs), { dtype: statsDType(q), device, category }, `${op} lse`);
  runKernel(forwardKernel, { inputs: { q, k, v }, outputs: { out, lse }, attrs });
  return { out, lse };
}

/** Gradients of flashAttention from its saved q, k, v, out, lse and the upstream dOut (out's shape and dtype). */
export function flashAttentionBackward(
  q: Tensor, k: Tensor, v: Tensor, out: Tensor, lse: Tensor, dOut: Tensor, options: FlashAttentionOptions = {},
): { dq: Tensor; dk: Tensor; dv: Tensor } {
  const op = 'flashAttentionBackward';
  const attrs = attentionAttrs(op, q, k, v, options);
  for (const [name, t, shape, dtype] of [['out', out, q.shape, q.dtype], ['dOut', dOut, q.shape, q.dtype], ['lse', lse, statsShape(attrs), statsDType(q)]] as const) {
    t.use(op);
    if (t.shape.join() !== shape.join() || t.dtype !== dtype) {
      throw new ShapeError(`${op}: ${name} ${t.describe()} must be ${formatShape(shape)} ${dtype} for q ${q.describe()}`);
    }
  }
  const device = q.backend, category = options.category;
  const dq = empty(q.shape, { dtype: q.dtype, device, category }, op);
  const dk = empty(k.shape, { dtype: k.dtype, device, category }, op);
  const dv = empty(v.shape, { dtype: v.dtype, device, category }, op);
  const delta = empty(statsShape(attrs), { dtype: statsDType(q), device }, `${op} delta`);
  try {
    runKernel(backwardKernel, { inputs: { q, k, v, out, lse, dOut }, outputs: { dq, dk, dv, delta }, attrs });
  } finally {
    delta.dispose();
  }
  return { dq, dk, dv };
}

// ---------------------------------------------------------------------------------------------
// cpu reference
// ---------------------------------------------------------------------------------------------

/** Keys row i sees: j < visible(i). */
const visible = (a: AttentionAttrs, i: number): number => (a.causal ? Math.min(a.Tk, i + a.offset + 1) : a.Tk);

/**
 * Calls fn once per (batch, head) with that head's rows: qRow(i), query i's row in q (times D:
 * offsets; o, dO and dq alike), lRow(i), its index in lse and delta, keyRow(j), key j's row in k and
 * v, and kv, the index of its KV head (b * Hkv + head / G).
 */
function eachHead(a: AttentionAttrs, fn: (qRow: (i: number) => number, lRow: (i: number) => number, keyRow: (j: number) => number, kv: number) => void): void {
  const G = a.H / a.Hkv;
  const [qB, qH, qT] = a.qRows, [kB, kH, kT] = a.kRows;
  for (let b = 0; b < a.B; b++) {
    for (let h = 0; h < a.H; h++) {
      const hk = Math.floor(h / G), kv0 = b * kB + hk * kH, q0 = b * qB + h * qH, l0 = (b * a.H + h) * a.Tq;
      fn((i) => q0 + i * qT, (i) => l0 + i, (j) => kv0 + j * kT, b * a.Hkv + hk);
    }
  }
}

/**
 * One head's K or V transposed to [D, Tk] in f64, so the loops below run over keys with unit stride
 * (the longer axis at every size we train). Each sum still runs in the order of the plain row-by-row
 * loops (over d ascending for a score, over keys ascending for an output), so results are unchanged.
 */
function transposeHead(x: ArrayLike<number>, keyRow: (j: number) => number, Tk: number, D: number, out: Float64Array): void {
  for (let j = 0; j < Tk; j++) {
    const r = keyRow(j) * D;
    for (let d = 0; d < D; d++) out[d * Tk + j] = x[r + d]!;
  }
}

/** scores[j] = sum over d of x[xo + d] * t[d][j] for j < n (t: a head from transposeHead). */
function scoresOf(x: ArrayLike<number>, xo: number, t: Float64Array, Tk: number, D: number, n: number, scores: Float64Array): void {
  scores.fill(0, 0, n);
  for (let d = 0; d < D; d++) {
    const xd = x[xo + d]!, row = d * Tk;
    for (let j = 0; j < n; j++) scores[j] += xd * t[row + j]!;
  }
}

/** The sum over j < n of w[j] * t[d][j]. */
function weighted(w: Float64Array, t: Float64Array, row: number, n: number): number {
  let acc = 0;
  for (let j = 0; j < n; j++) acc += w[j]! * t[row + j]!;
  return acc;
}

function dotRows(x: ArrayLike<number>, xo: number, y: ArrayLike<number>, yo: number, D: number): number {
  let s = 0;
  for (let d = 0; d < D; d++) s += x[xo + d]! * y[yo + d]!;
  return s;
}

function forwardCpu(backend: CpuBackend, { inputs, outputs, attrs: a }: KernelCallOf<typeof forwardKernel>): void {
  const q = backend.values(inputs.q.storage), k = backend.values(inputs.k.storage), v = backend.values(inputs.v.storage);
  const storeO = cpuStore(backend, outputs.out.storage), storeL = cpuStore(backend, outputs.lse.storage);
  const { D, Tk } = a, s = new Float64Array(Tk), kt = new Float64Array(D * Tk), vt = new Float64Array(D * Tk);
  eachHead(a, (qRow, lRow, keyRow) => {
    transposeHead(k, keyRow, Tk, D, kt);
    transposeHead(v, keyRow, Tk, D, vt);
    for (let i = 0; i < a.Tq; i++) {
      const n = visible(a, i), qr = qRow(i) * D;
      scoresOf(q, qr, kt, Tk, D, n, s);
      let m = -Infinity;
      for (let j = 0; j < n; j++) { s[j] *= a.scale; m = Math.max(m, s[j]!); }
      let sum = 0;
      for (let j = 0; j < n; j++) { s[j] = Math.exp(s[j]! - m); sum += s[j]!; }
      for (let d = 0; d < D; d++) storeO(qr + d, n > 0 ? weighted(s, vt, d * Tk, n) / sum : 0);
      storeL(lRow(i), m + Math.log(sum));
    }
  });
}

function backwardCpu(backend: CpuBackend, { inputs, outputs, attrs: a }: KernelCallOf<typeof backwardKernel>): void {
  const [q, k, v, o, lse, dO] = [inputs.q, inputs.k, inputs.v, inputs.out, inputs.lse, inputs.dOut].map((t) => backend.values(t.storage)) as ArrayLike<number>[] as [ArrayLike<number>, ArrayLike<number>, ArrayLike<number>, ArrayLike<number>, ArrayLike<number>, ArrayLike<number>];
  const { D, Tk } = a;
  // dK and dV per KV head transposed like K and V ([kv][d][j]); heads of one KV group add up in order.
  const dkt = new Float64Array(a.B * a.Hkv * D * Tk), dvt = new Float64Array(dkt.length);
  const kt = new Float64Array(D * Tk), vt = new Float64Array(D * Tk), p = new Float64Array(Tk), ds = new Float64Array(Tk);
  const storeDq = cpuStore(backend, outputs.dq.storage), storeDelta = cpuStore(backend, outputs.delta.storage);
  const keyRows: ((j: number) => number)[] = [];
  eachHead(a, (qRow, lRow, keyRow, kv) => {
    keyRows[kv] = keyRow;
    transposeHead(k, keyRow, Tk, D, kt);
    transposeHead(v, keyRow, Tk, D, vt);
    for (let i = 0; i < a.Tq; i++) {
      const n = visible(a, i), qr = qRow(i) * D, lr = lRow(i);
      const delta = dotRows(dO, qr, o, qr, D);
      storeDelta(lr, delta);
      scoresOf(q, qr, kt, Tk, D, n, p);
      scoresOf(dO, qr, vt, Tk, D, n, ds);
      for (let j = 0; j < n; j++) {
        p[j] = Math.exp(a.scale * p[j]! - lse[lr]!);
        ds[j] = p[j]! * (ds[j]! - delta);
      }
      for (let d = 0; d < D; d++) {
        storeDq(qr + d, a.scale * weighted(ds, kt, d * Tk, n));
        const row = (kv * D + d) * Tk, qd = q[qr + d]!, dOd = dO[qr + d]!;
        for (let j = 0; j < n; j++) { dkt[row + j] += ds[j]! * qd; dvt[row + j] += p[j]! * dOd; }
      }
    }
  });
  const storeDk = cpuStore(backend, outputs.dk.storage), storeDv = cpuStore(backend, outputs.dv.storage);
  keyRows.forEach((keyRow, kv) => {
    for (let j = 0; j < Tk; j++) {
      const r = keyRow(j) * D;
      for (let d = 0; d < D; d++) { storeDk(r + d, a.scale * dkt[(kv * D + d) * Tk + j]!); storeDv(r + d, dvt[(kv * D + d) * Tk + j]!); }
    }
  });
}

// ---------------------------------------------------------------------------------------------
// webgpu
// ---------------------------------------------------------------------------------------------

export type AttentionKernelKind = 'auto' | 'subgroup' | 'plain';
let preferred: AttentionKernelKind = 'auto';

/** Forces one kernel kind (tests use it to cover the portable path); returns the previous setting. */
export function setAttentionKernel(kind: AttentionKernelKind): AttentionKernelKind {
  const old = preferred;
  preferred = kind;
  return old;
}

function variant(backend: WebGPUBackend, a: AttentionAttrs, dtype: string): AttentionVariant {
  const S = fixedSubgroupSize(backend);
  if (preferred === 'subgroup' && S === 0) throw new StepError(`flashAttention: the subgroup kernel was forced but "${backend.adapter.description}" has no fixed subgroup size`);
  const base = { dtype: dtype === 'f16' ? 'f16' as const : 'f32' as const, D: a.D };
  // plain: one row of the other side per step (unrolling a block of direct loads made LLVM compile for ~1 min)
  if (preferred === 'plain' || S === 0) return { ...base, kind: 'plain', block: 1, lanes: 64 };
  return { ...base, kind: 'subgroup', block: S, lanes: S };
}

/** Workgroups for `heads` heads of `tiles` tiles each, folded into y past the per-dimension limit. */
function grid(backend: WebGPUBackend, groups: number): [number, number] {
  const lim = backend.limits.maxComputeWorkgroupsPerDimension;
  return groups <= lim ? [groups, 1] : [lim, Math.ceil(groups / lim)];
}

// The kernels are unrolled per head size: generate each source once.
const forwardSource = cachedSource(attentionForwardSource), dqSource = cachedSource(attentionDqSource), dkvSource = cachedSource(attentionDkvSource);

registerKernel(forwardKernel, {
  cpu: forwardCpu,
  webgpu(backend, { inputs, outputs, attrs: a }) {
    if (a.Tq === 0 || a.B * a.H === 0) return;
    const v = variant(backend, a, inputs.q.dtype);
    const tiles = Math.ceil(a.Tq / v.lanes);
    backend.dispatch({
      label: `flashAttention(${v.kind},${v.dtype},D${v.D})`,
      source: forwardSource(v),
      buffers: [inputs.q.storage, inputs.k.storage, inputs.v.storage, outputs.out.storage, outputs.lse.storage],
      uniforms: attentionUniforms(a, tiles),
      workgroups: grid(backend, a.B * a.H * tiles),
    });
  },
});

registerKernel(backwardKernel, {
  cpu: backwardCpu,
  webgpu(backend, { inputs, outputs, attrs: a }) {
    const v = variant(backend, a, inputs.q.dtype);
    const [q, k, vv, o, lse, dO] = [inputs.q, inputs.k, inputs.v, inputs.out, inputs.lse, inputs.dOut].map((t) => t.storage);
    const [dq, dk, dv, delta] = [outputs.dq, outputs.dk, outputs.dv, outputs.delta].map((t) => t.storage);
    const qTiles = Math.ceil(a.Tq / v.lanes), kTiles = Math.ceil(a.Tk / v.lanes);
    if (a.Tq > 0 && a.B * a.H > 0) {
      backend.dispatch({
        label: `flashAttentionBackward dq(${v.kind},${v.dtype},D${v.D})`,
        source: dqSource(v),
        buffers: [q!, k!, vv!, o!, lse!, dO!, dq!, delta!],
        uniforms: attentionUniforms(a, qTiles),
        workgroups: grid(backend, a.B * a.H * qTiles),
      });
    }
    if (a.Tk > 0 && a.B * a.Hkv > 0) {
      backend.dispatch({
        label: `flashAttentionBackward dk dv(${v.kind},${v.dtype},D${v.D})`,
        source: dkvSource(v),
        buffers: [q!, k!, vv!, dO!, lse!, delta!, dk!, dv!],
        uniforms: attentionUniforms(a, kTiles),
        workgroups: grid(backend, a.B * a.Hkv * kTiles),
      });
    }
  },
});
