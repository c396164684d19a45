/**
 * Optimizer kernels: one dispatch per parameter updates param, state (and the f32 master copy in
 * mixed precision) in one pass. Their signatures, and the status protocol of clipping and loss
 * scaling, are in engine/optim/kernels.ts (the optimizers there call them).
 */
import type { CpuBackend } from '../engine/cpu/backend.js';
import type { Storage } from '../engine/backend.js';
import { f32ToF16Bits } from '../engine/dtype.js';
import { StepError } from '../engine/errors.js';
import type { AdamAttrs, FinalizeAttrs, StepAttrs } from '../engine/optim/kernels.js';
import {
  adamwKernel, gradSqPartialsKernel, lossScaleKernel, optimFinalizeKernel, pruneRandomKernel, pruneThresholdKernel, sgdKernel,
} from '../engine/optim/kernels.js';
import { registerKernel } from '../engine/registry.js';
import type { Tensor } from '../engine/tensor.js';
import type { WebGPUBackend } from '../engine/webgpu/backend.js';
import { enables, grid1D, LINEAR_INDEX, LINEAR_PARAMS, packUniforms, wgslType } from './wgsl.js';

export type { AdamAttrs, FinalizeAttrs, SgdAttrs } from '../engine/optim/kernels.js';

/** Threads of the reduction kernels (workgroup shared-memory tree). */
const RED_WG = 64;

const IS_NONFINITE = (x: string) => `((bitcast<u32>(${x}) & 0x7f800000u) == 0x7f800000u)`;

export function storeAs(s: Storage, v: number): number {
  return s.dtype === 'f16' ? f32ToF16Bits(v) : v;
}

function checkSizes(op: string, ...xs: Storage[]): void {
  for (const x of xs) {
    if (x.size !== xs[0]!.size) throw new StepError(`${op}: tensors differ in size (${xs.map((s) => s.size).join(' vs ')})`);
  }
}

// ---------------------------------------------------------------- grad_sq_partials

/** WGSL: the workgroup arrays of the partial-sum reductions. */
export const PARTIALS_SHARED = `var<workgroup> s_sum: array<f32, ${RED_WG}>;
var<workgroup> s_bad: array<f32, ${RED_WG}>;`;

/**
 * WGSL: adds to `acc` and `bad` this lane's share of `grad` (`n` elements) as workgroup `w` of
 * `groups` reads it: one text for the per-tensor and the multi-tensor kernels (same sums, same bits).
 */
export function partialsLoop(grad: string, w: string, n: string, groups: string): string {
  return `  for (var i = ${w} * ${RED_WG}u + lid.x; i < ${n}; i += ${groups} * ${RED_WG}u) {
    let x = f32(${grad}[i]);
    acc += x * x;
    if ${IS_NONFINITE('x')} { bad += 1.0; }
  }`;
}

/** WGSL: the workgroup's tree sum of `acc` and `bad`, written to partials slot `slot`. */
export function partialsReduce(slot: string): string {
  return `  s_sum[lid.x] = acc;
  s_bad[lid.x] = bad;
  workgroupBarrier();
  for (var w = ${RED_WG / 2}u; w > 0u; w >>= 1u) {
    if (lid.x < w) { s_sum[lid.x] += s_sum[lid.x + w]; s_bad[lid.x] += s_bad[lid.x + w]; }
    workgroupBarrier();
  }
  if (lid.x == 0u) { partials[2u * (${slot})] = s_sum[0]; partials[2u * (${slot}) + 1u] = s_bad[0]; }`;
}

function partialsSource(grad: string): string {
  return `${enables(grad === 'f16' ? 'f16' : 'f32')}
struct U { n: u32, base: u32, groups: u32 }
@group(0) @binding(0) var<storage, read> grad: array<${grad}>;
@group(0) @binding(1) var<storage, read_write> partials: array<f32>;
@group(0) @binding(2) var<uniform> u: U;
${PARTIALS_SHARED}
@compute @workgroup_size(${RED_WG}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  var acc = 0.0;
  var bad = 0.0;
${partialsLoop('grad', 'wid.x', 'u.n', 'u.groups')}
${partialsReduce('u.base + wid.x')}
}`;
}

/** The cpu grad_sq_partials of one gradient: its whole sum in slot `base`, zeros in the rest of its `groups` slots. */
export function gradSqPartialsCpu(backend: CpuBackend, grad: Tensor, partials: Tensor, base: number, groups: number): void {
  const g = backend.values(grad.storage);
  const out = backend.view(partials.storage);
  let acc = 0, bad = 0;
  for (let i = 0; i < g.length; i++) {
    const x = g[i]!;
    acc += x * x;
    if (!Number.isFinite(x)) bad++;
  }
  for (let k = 0; k < groups; k++) { out[2 * (base + k)] = k === 0 ? acc : 0; out[2 * (base + k) + 1] = k === 0 ? bad : 0; }
}

registerKernel(gradSqPartialsKernel, {
  cpu(backend: CpuBackend, { inputs, outputs, attrs: { base, groups } }) {
    gradSqPartialsCpu(backend, inputs.grad, outputs.partials, base, groups);
  },
  webgpu(backend: WebGPUBackend, { inputs, outputs, attrs: { base, groups } }) {
    const g = inputs.grad.storage, p = outputs.partials.storage;
    backend.dispatch({
      label: 'grad_sq_partials', source: partialsSource(wgslType(g.dtype)), buffers: [g, p],
      uniforms: packUniforms([['u32', g.size], ['u32', base], ['u32', groups]]),
      workgroups: [groups],
    });
  },
});

// ---------------------------------------------------------------- optim_finalize

/** The decision the finalize kernel makes, shared by the cpu kernel (f32 rounding at each step). */
function finalizeHost(total: number, bad: number, a: FinalizeAttrs, scaler: Float32Array | null): { status: number[]; norm: number } {
  const f = Math.fround;
  total = f(total);
  const nonfinite = bad > 0 || !Number.isFinite(total);
  const scale = scaler ? scaler[0]! : 1;
  const norm = f(f(Math.sqrt(total)) / scale);
  const clip = a.maxNorm > 0 ? Math.min(1, f(f(a.maxNorm) / f(norm + f(1e-6)))) : 1;
  let skip = 0;
  if (scaler) {
    if (nonfinite) {
      skip = 1;
      scaler[0] = scale * a.backoffFactor; scaler[1] = 0; scaler[2] = scaler[2]! + 1; scaler[3] = 1;
    } else {
      let good = scaler[1]! + 1;
      if (good >= a.growthInterval) { scaler[0] = scale * a.growthFactor; good = 0; }
      scaler[1] = good; scaler[3] = 0;
    }
  }
  return { status: [f(clip / scale), skip, norm, scaler ? scaler[2]! : 0], norm };
}

function finalizeSource(hasScaler: boolean): string {
  return `struct U { slots: u32, max_norm: f32, growth: f32, backoff: f32, interval: f32 }
@group(0) @binding(0) var<storage, read> partials: array<f32>;
@group(0) @binding(1) var<storage, read_write> status: array<f32>;
@group(0) @binding(2) var<storage, read_write> norm_out: array<f32>;
${hasScaler ? '@group(0) @binding(3) var<storage, read_write> scaler: array<f32>;\n' : ''}@group(0) @binding(${hasScaler ? 4 : 3}) var<uniform> u: U;
var<workgroup> s_sum: array<f32, ${RED_WG}>;
var<workgroup> s_bad: array<f32, ${RED_WG}>;
@compute @workgroup_size(${RED_WG}) fn main(@builtin(local_invocation_id) lid: vec3u) {
  var acc = 0.0;
  var bad = 0.0;
  for (var j = lid.x; j < u.slots; j += ${RED_WG}u) { acc += partials[2u * j]; bad += partials[2u * j + 1u]; }
  s_sum[lid.x] = acc;
  s_bad[lid.x] = bad;
  workgroupBarrier();
  for (var w = ${RED_WG / 2}u; w > 0u; w >>= 1u) {
    if (lid.x < w) { s_sum[lid.x] += s_sum[lid.x + w]; s_bad[lid.x] += s_bad[lid.x + w]; }
    workgroupBarrier();
  }
  if (lid.x != 0u) { return; }
  let total = s_sum[0];
  let nonfinite = s_bad[0] > 0.0 || ${IS_NONFINITE('total')};
  var scale = 1.0;
${hasScaler ? '  scale = scaler[0];\n' : ''}  let norm = sqrt(total) / scale;
  var clip = 1.0;
  if (u.max_norm > 0.0) { clip = min(1.0, u.max_norm / (norm + 1e-6)); }
  var skip = 0.0;
${hasScaler ? `  if (nonfinite) {
    skip = 1.0;
    scaler[0] = scale * u.backoff; scaler[1] = 0.0; scaler[2] = scaler[2] + 1.0; scaler[3] = 1.0;
  } else {
    var good = scaler[1] + 1.0;
    if (good >= u.interval) { scaler[0] = scale * u.growth; good = 0.0; }
    scaler[1] = good; scaler[3] = 0.0;
  }
` : '  _ = nonfinite;\n'}  status[0] = clip / scale;
  status[1] = skip;
  status[2] = norm;
  status[3] = ${hasScaler ? 'scaler[2]' : '0.0'};
  norm_out[0] = norm;
}`;
}

registerKernel(optimFinalizeKernel, {
  cpu(backend: CpuBackend, { inputs, outputs, attrs: a }) {
    const partials = backend.view(inputs.partials.storage);
    let total = 0, bad = 0;
    for (let j = 0; j < a.slots; j++) { total += partials[2 * j]!; bad += partials[2 * j + 1]!; }
    const scaler = outputs.scaler ? backend.view(outputs.scaler.storage) as Float32Array : null;
    const r = finalizeHost(total, bad, a, scaler);
    (backend.view(outputs.status.storage) as Float32Array).set(r.status);
    backend.view(outputs.norm.storage)[0] = r.norm;
  },
  webgpu(backend: WebGPUBackend, { inputs, outputs, attrs: a }) {
    const { status, norm, scaler } = outputs;
    backend.dispatch({
      label: 'optim_finalize', source: finalizeSource(scaler !== undefined),
      buffers: [inputs.partials, status, norm, ...(scaler ? [scaler] : [])].map((t) => t.storage),
      uniforms: packUniforms([['u32', a.slots], ['f32', a.maxNorm], ['f32', a.growthFactor], ['f32', a.backoffFactor], ['f32', a.growthInterval]]),
      workgroups: [1],
    });
  },
});

// ---------------------------------------------------------------- what adamw and sgd share

/**
 * The status prologue of both update kernels (WGSL): a step the loss scaler skipped returns
 * before touching anything; `t` is this parameter's step count without the skipped steps since its
 * last reset; `g0` is the gradient times the status multiplier (clip / loss scale).
 */
export function statusPrologue(hasStatus: boolean, grad = 'grad', u = 'u'): string {
  return hasStatus ? `  if (status[1] != 0.0) { return; }
  let t = ${u}.step - (status[3] - ${u}.skip_base);
  let g0 = f32(${grad}[i]) * status[0];
` : `  let t = ${u}.step;\n  let g0 = f32(${grad}[i]);\n`;
}

/** The cpu twin of statusPrologue: null when the step is skipped, else the step count and gradient multiplier. */
export function stepStatus(backend: CpuBackend, status: Tensor | undefined, a: StepAttrs): { t: number; mult: number } | null {
  if (!status) return { t: a.step, mult: 1 };
  const s = backend.view(status.storage);
  if (s[1] !== 0) return null;
  return { t: a.step - (s[3]! - a.skipBase), mult: s[0]! };
}

/**
 * Storage bindings of an update kernel, in the order of its buffers: grad, status?, param, then
 * its f32 state (`name` or null when absent). Returns the declarations and the uniform's binding.
 */
export function updateBindings(grad: string, param: string, hasStatus: boolean, state: readonly (string | null)[]): { decls: string; uniform: number } {
  const decls = [`read> grad: array<${grad}>`, hasStatus ? 'read> status: array<f32>' : null, `read_write> param: array<${param}>`,
    ...state.map((n) => (n === null ? null : `read_write> ${n}: array<f32>`))].filter((d) => d !== null);
  return { decls: decls.map((d, b) => `@group(0) @binding(${b}) var<storage, ${d};\n`).join(''), uniform: decls.length };
}

/** The storages of an update call in binding order (absent optional operands left out). */
export function updateBuffers(...ts: (Tensor | undefined)[]): Storage[] {
  return ts.filter((t) => t !== undefined).map((t) => t.storage);
}

// ---------------------------------------------------------------- adamw
// With a master copy (mixed precision) the f32 master is updated and the param receives its
// rounding. Adam (coupled L2) and AdamW (decoupled decay) differ only in the uniforms:
// l2 = wd or 0, decay = 1 or 1 - lr * wd.

/** ln(beta) as a finite f32 uniform (beta = 0 gives a huge negative number instead of -inf). */
export function lnBeta(beta: number): number {
  return Math.max(Math.log(beta), -1e30);
}

/**
 * 1 - beta^t from ln(beta), the bias correction of step t: -expm1(t ln beta), by its Taylor series
 * where 1 - exp(x) would cancel (|x| <= 0.5: 9 terms reach f32 precision), so 1 - 0.999^1 keeps
 * every digit. The WGSL below does the same in f32. Computed in the kernel because the step a
 * parameter is at depends on steps the loss scaler skipped on the device.
 */
export function oneMinusPow(lnB: number, t: number): number {
  const x = lnB * t;
  if (x <= -0.5) return 1 - Math.exp(x);
  let term = x, sum = x;
  for (let k = 2; k <= 9; k++) { term *= x / k; sum += term; }
  return -sum;
}

export const ONE_MINUS_POW_WGSL = `fn one_minus_pow(ln_b: f32, t: f32) -> f32 {
  let x = ln_b * t;
  if (x <= -0.5) { return 1.0 - exp(x); }
  var term = x;
  var sum = x;
  for (var k = 2; k <= 9; k++) { term *= x / f32(k); sum += term; }
  return -sum;
}`;

/** The uniform fields of one AdamW update, after its element count. */
export const ADAM_FIELDS = 'lr: f32, b1: f32, b2: f32, omb1: f32, omb2: f32, ln_b1: f32, ln_b2: f32, eps: f32, l2: f32, decay: f32, step: f32, skip_base: f32';

/** Their values for one parameter, in that order. */
export function adamFieldValues(a: AdamAttrs): ['f32', number][] {
  return [a.lr, a.beta1, a.beta2, 1 - a.beta1, 1 - a.beta2, lnBeta(a.beta1), lnBeta(a.beta2), a.eps, a.l2, a.decay, a.step, a.skipBase].map((v) => ['f32', v]);
}

/**
 * The AdamW update of element `i` (WGSL statements) over bindings named `grad`, `param`, `m`, `v`
 * (and `master`) plus `suffix`, with uniform fields under `u`: one text for the per-tensor and the
 * multi-tensor kernels (optim-multi.ts), so that both compute the same bits.
 */
export function adamBody(param: string, hasStatus: boolean, hasMaster: boolean, suffix = '', u = 'u'): string {
  const [m, v, master] = ['m', 'v', 'master'].map((n) => n + suffix);
  return `${statusPrologue(hasStatus, `grad${suffix}`, u)}  let step_size = ${u}.lr / one_minus_pow(${u}.ln_b1, t);
  let bc2_sqrt = sqrt(one_minus_pow(${u}.ln_b2, t));
  var p = ${hasMaster ? `${master}[i]` : `f32(param${suffix}[i])`};
  let g = g0 + ${u}.l2 * p;
  let m1 = ${u}.b1 * ${m}[i] + ${u}.omb1 * g;
  let v1 = ${u}.b2 * ${v}[i] + ${u}.omb2 * g * g;
  ${m}[i] = m1;
  ${v}[i] = v1;
  p = p * ${u}.decay;
  p = p - step_size * (m1 / (sqrt(v1) / bc2_sqrt + ${u}.eps));
${hasMaster ? `  ${master}[i] = p;\n` : ''}  param${suffix}[i] = ${param}(p);
`;
}

function adamSource(grad: string, param: string, hasStatus: boolean, hasMaster: boolean): string {
  const { decls, uniform } = updateBindings(grad, param, hasStatus, ['m', 'v', hasMaster ? 'master' : null]);
  return `${enables(grad === 'f16' || param === 'f16' ? 'f16' : 'f32')}
struct U { n: u32, ${ADAM_FIELDS} }
${decls}@group(0) @binding(${uniform}) var<uniform> u: U;
${ONE_MINUS_POW_WGSL}
@compute @workgroup_size(64) fn main(${LINEAR_PARAMS}) {
  ${LINEAR_INDEX}
  if (i >= u.n) { return; }
${adamBody(param, hasStatus, hasMaster)}}`;
}

/** The cpu AdamW update of one parameter (f32 rounding at each step, as the WGSL). */
export function adamCpu(backend: CpuBackend, gT: Tensor, status: Tensor | undefined, pT: Tensor, mT: Tensor, vT: Tensor, masterT: Tensor | undefined, a: AdamAttrs): void {
  const f = Math.fround;
  const pS = pT.storage;
  checkSizes('adamw', gT.storage, ...updateBuffers(pT, mT, vT, masterT));
  const st = stepStatus(backend, status, a);
  if (!st) return;
  const { t, mult } = st;
  const grad = backend.values(gT.storage);
  const stepSize = f(f(a.lr) / f(oneMinusPow(f(lnBeta(a.beta1)), t)));
  const bc2Sqrt = f(Math.sqrt(f(oneMinusPow(f(lnBeta(a.beta2)), t))));
  const b1 = f(a.beta1), b2 = f(a.beta2), omb1 = f(1 - a.beta1), omb2 = f(1 - a.beta2), eps = f(a.eps), l2 = f(a.l2), decay = f(a.decay);
  const param = backend.view(pS), pv = backend.values(pS), m = backend.view(mT.storage), v = backend.view(vT.storage);
  const master = masterT ? backend.view(masterT.storage) : null;
  for (let i = 0; i < param.length; i++) {
    let p = master ? master[i]! : pv[i]!;
    const g = f(f(grad[i]! * mult) + l2 * p);
    const m1 = f(b1 * m[i]! + omb1 * g);
    const v1 = f(b2 * v[i]! + omb2 * g * g);
    m[i] = m1; v[i] = v1;
    p = f(f(p * decay) - stepSize * (m1 / (Math.sqrt(v1) / bc2Sqrt + eps)));
    if (master) master[i] = p;
    param[i] = storeAs(pS, p);
  }
}

registerKernel(adamwKernel, {
  cpu(backend: CpuBackend, { inputs: { grad, status }, outputs: { param, m, v, master }, attrs: a }) {
    adamCpu(backend, grad, status, param, m, v, master, a);
  },
  webgpu(backend: WebGPUBackend, { inputs: { grad, status }, outputs: { param, m, v, master }, attrs: a }) {
    const g = grad.storage, p = param.storage;
    checkSizes('adamw', g, ...updateBuffers(param, m, v, master));
    backend.dispatch({
      label: 'adamw', source: adamSource(wgslType(g.dtype), wgslType(p.dtype), status !== undefined, master !== undefined),
      buffers: updateBuffers(grad, status, param, m, v, master),
      uniforms: packUniforms([['u32', p.size], ...adamFieldValues(a)]),
      workgroups: grid1D(p.size),
    });
  },
});

// ---------------------------------------------------------------- sgd
// PyTorch's rule: the first step sets buf = g.

function sgdSource(grad: string, param: string, hasStatus: boolean, hasMomentum: boolean, hasMaster: boolean): string {
  const { decls, uniform } = updateBindings(grad, param, hasStatus, [hasMomentum ? 'buf' : null, hasMaster ? 'master' : null]);
  return `${enables(grad === 'f16' || param === 'f16' ? 'f16' : 'f32')}
struct U { n: u32, lr: f32, momentum: f32, one_minus_damp: f32, wd: f32, nesterov: u32, step: f32, skip_base: f32 }
${decls}@group(0) @binding(${uniform}) var<uniform> u: U;
@compute @workgroup_size(64) fn main(${LINEAR_PARAMS}) {
  ${LINEAR_INDEX}
  if (i >= u.n) { return; }
${statusPrologue(hasStatus)}  var p = ${hasMaster ? 'master[i]' : 'f32(param[i])'};
  var g = g0 + u.wd * p;
${hasMomentum ? `  var b = g;
  if (t != 1.0) { b = u.momentum * buf[i] + u.one_minus_damp * g; }
  buf[i] = b;
  if (u.nesterov != 0u) { g = g + u.momentum * b; } else { g = b; }
` : '  _ = t;\n'}  p = p - u.lr * g;
${hasMaster ? '  master[i] = p;\n' : ''}  param[i] = ${param}(p);
}`;
}

registerKernel(sgdKernel, {
  cpu(backend: CpuBackend, { inputs: { grad: gT, status }, outputs: { param: pT, momentum: bufT, master: masterT }, attrs: a }) {
    const f = Math.fround;
    const pS = pT.storage;
    checkSizes('sgd', gT.storage, ...updateBuffers(pT, bufT, masterT));
    const st = stepStatus(backend, status, a);
    if (!st) return;
    const { t, mult } = st;
    const grad = backend.values(gT.storage);
    const lr = f(a.lr), mom = f(a.momentum), omd = f(1 - a.dampening), wd = f(a.weightDecay);
    const param = backend.view(pS), pv = backend.values(pS);
    const buf = bufT ? backend.view(bufT.storage) : null, master = masterT ? backend.view(masterT.storage) : null;
    for (let i = 0; i < param.length; i++) {
      let p = master ? master[i]! : pv[i]!;
      let g = f(f(grad[i]! * mult) + wd * p);
      if (buf) {
        const b = t === 1 ? g : f(mom * buf[i]! + omd * g);
        buf[i] = b;
        g = a.nesterov ? f(g + mom * b) : b;
      }
      p = f(p - lr * g);
      if (master) master[i] = p;
      param[i] = storeAs(pS, p);
    }
  },
  webgpu(backend: WebGPUBackend, { inputs: { grad, status }, outputs: { param, momentum, master }, attrs: a }) {
    const g = grad.storage, p = param.storage;
    checkSizes('sgd', g, ...updateBuffers(param, momentum, master));
    backend.dispatch({
      label: 'sgd', source: sgdSource(wgslType(g.dtype), wgslType(p.dtype), status !== undefined, momentum !== undefined, master !== undefined),
      buffers: updateBuffers(grad, status, param, momentum, master),
      uniforms: packUniforms([['u32', p.size], ['f32', a.lr], ['f32', a.momentum], ['f32', 1 - a.dampening], ['f32', a.weightDecay],
        ['u32', a.nesterov ? 1 : 0], ['f32', a.step], ['f32', a.skipBase]]),
      workgroups: grid1D(p.size),
    });
  },
});

// ---------------------------------------------------------------- loss_scale, prune_random, prune_threshold

function elementwiseSource(type: string, decls: string, uniforms: string, body: string): string {
  return `${enables(type === 'f16' ? 'f16' : 'f32')}
struct U { n: u32${uniforms} }
${decls}
@compute @workgroup_size(64) fn main(${LINEAR_PARAMS}) {
  ${LINEAR_INDEX}
  if (i < u.n) { ${body} }
}`;
}

registerKernel(lossScaleKernel, {
  cpu(backend: CpuBackend, { inputs, outputs }) {
    const x = backend.values(inputs.x.storage), scale = backend.view(inputs.scaler.storage)[0]!;
    const o = outputs.out.storage, out = backend.view(o);
    for (let i = 0; i < out.length; i++) out[i] = storeAs(o, Math.fround(x[i]! * scale));
  },
  webgpu(backend: WebGPUBackend, { inputs, outputs }) {
    const x = inputs.x.storage, o = outputs.out.storage;
    const t = wgslType(o.dtype);
    backend.dispatch({
      label: 'loss_scale',
      source: elementwiseSource(t, `@group(0) @binding(0) var<storage, read> x: array<${wgslType(x.dtype)}>;
@group(0) @binding(1) var<storage, read> scaler: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<${t}>;
@group(0) @binding(3) var<uniform> u: U;`, '', `out[i] = ${t}(f32(x[i]) * scaler[0]);`),
      buffers: [x, inputs.scaler.storage, o], uniforms: packUniforms([['u32', o.size]]), workgroups: grid1D(o.size),
    });
  },
});

registerKernel(pruneRandomKernel, {
  cpu(backend: CpuBackend, { inputs, outputs, attrs }) {
    const r = backend.values(inputs.draws.storage), s = backend.view(outputs.state.storage);
    const p = Math.fround(attrs.p);
    for (let i = 0; i < s.length; i++) if (r[i]! < p) s[i] = 0;
  },
  webgpu(backend: WebGPUBackend, { inputs, outputs, attrs }) {
    const s = outputs.state.storage;
    backend.dispatch({
      label: 'prune_random',
      source: elementwiseSource('f32', `@group(0) @binding(0) var<storage, read> r: array<f32>;
@group(0) @binding(1) var<storage, read_write> s: array<f32>;
@group(0) @binding(2) var<uniform> u: U;`, ', p: f32', 'if (r[i] < u.p) { s[i] = 0.0; }'),
      buffers: [inputs.draws.storage, s], uniforms: packUniforms([['u32', s.size], ['f32', attrs.p]]), workgroups: grid1D(s.size),
    });
  },
});

registerKernel(pruneThresholdKernel, {
  cpu(backend: CpuBackend, { outputs, attrs }) {
    const s = backend.view(outputs.state.storage);
    const thr = Math.fround(attrs.threshold);
    for (let i = 0; i < s.length; i++) if (Math.abs(s[i]!) <= thr) s[i] = 0;
  },
  webgpu(backend: WebGPUBackend, { outputs, attrs }) {
    const s = outputs.state.storage;
    backend.dispatch({
      label: 'prune_threshold',
      source: elementwiseSource('f32', `@group(0) @binding(0) var<storage, read_write> s: array<f32>;
@group(0) @binding(1) var<uniform> u: U;`, ', thr: f32', 'if (abs(s[i]) <= u.thr) { s[i] = 0.0; }'),
      buffers: [s], uniforms: packUniforms([['u32', s.size], ['f32', attrs.threshold]]), workgroups: grid1D(s.size),
    });
  },
});
