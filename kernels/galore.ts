/**
 * GaLore's kernels (signatures in engine/optim/galore-kernels.ts): a thin Householder QR in one
 * workgroup (the orthonormalisation of the subspace iteration: always orthonormal, even for a
 * rank-deficient input), the sign-canonical commit of the projector, and the two halves of the
 * projected Adam step around the back-projection matmul.
 */
import type { CpuBackend } from '../engine/cpu/backend.js';
import { StepError } from '../engine/errors.js';
import {
  householderQrKernel, projectedAdamKernel, projectedApplyKernel, projectorCommitKernel,
} from '../engine/optim/galore-kernels.js';
import { registerKernel } from '../engine/registry.js';
import type { WebGPUBackend } from '../engine/webgpu/backend.js';
import {
  lnBeta, ONE_MINUS_POW_WGSL, oneMinusPow, statusPrologue, stepStatus, storeAs, updateBindings, updateBuffers,
} from './optim.js';
import { enables, grid1D, LINEAR_INDEX, LINEAR_PARAMS, packUniforms, wgslType } from './wgsl.js';

/** Threads of the QR workgroup; the reflector coefficients live in workgroup memory, hence the rank cap. */
const QR_WG = 64;
export const MAX_QR_COLS = 1024;

function checkQrShape(op: string, rows: number, cols: number, ...sizes: number[]): void {
  if (cols > MAX_QR_COLS || cols > rows) throw new StepError(`${op}: a ${rows} x ${cols} factorisation needs cols <= rows and cols <= ${MAX_QR_COLS}`);
  for (const n of sizes) if (n !== rows * cols) throw new StepError(`${op}: buffers of ${sizes.join(', ')} elements do not hold ${rows} x ${cols}`);
}

// ---------------------------------------------------------------- Householder QR

/** WGSL: columns first..R-1 of `target` -= beta v (v . column), v = column j of `a` from row j (the reflector H_j). */
function applyReflector(target: string, first: string): string {
  return `    for (var c = ${first} + lid.x; c < R; c += ${QR_WG}u) {
      var d = 0.0;
      for (var i = j; i < S; i++) { d += a[i * R + j] * ${target}[i * R + c]; }
      d *= beta;
      for (var i = j; i < S; i++) { ${target}[i * R + c] -= d * a[i * R + j]; }
    }`;
}

const QR_SOURCE = `struct U { rows: u32, cols: u32 }
@group(0) @binding(0) var<storage, read_write> a: array<f32>;
@group(0) @binding(1) var<storage, read_write> q: array<f32>;
@group(0) @binding(2) var<uniform> u: U;
var<workgroup> red: array<f32, ${QR_WG}>;
var<workgroup> betas: array<f32, ${MAX_QR_COLS}>;
@compute @workgroup_size(${QR_WG}) fn main(@builtin(local_invocation_id) lid: vec3u) {
  let S = u.rows;
  let R = u.cols;
  for (var j = 0u; j < R; j++) {
    var acc = 0.0;
    for (var i = j + lid.x; i < S; i += ${QR_WG}u) { let x = a[i * R + j]; acc += x * x; }
    red[lid.x] = acc;
    workgroupBarrier();
    for (var w = ${QR_WG / 2}u; w > 0u; w >>= 1u) {
      if (lid.x < w) { red[lid.x] += red[lid.x + w]; }
      workgroupBarrier();
    }
    if (lid.x == 0u) {
      let sq = red[0];
      let x0 = a[j * R + j];
      var beta = 0.0;
      if (sq > 0.0) {
        let nrm = sqrt(sq);
        let alpha = select(nrm, -nrm, x0 >= 0.0);
        let v0 = x0 - alpha;
        a[j * R + j] = v0;
        let vv = sq - x0 * x0 + v0 * v0;
        if (vv > 0.0) { beta = 2.0 / vv; }
      }
      betas[j] = beta;
    }
    storageBarrier();
    workgroupBarrier();
    let beta = betas[j];
${applyReflector('a', 'j + 1u')}
    storageBarrier();
    workgroupBarrier();
  }
  for (var k = lid.x; k < S * R; k += ${QR_WG}u) { q[k] = select(0.0, 1.0, k / R == k % R); }
  storageBarrier();
  workgroupBarrier();
  for (var jj = 0u; jj < R; jj++) {
    let j = R - 1u - jj;
    let beta = betas[j];
${applyReflector('q', 'j')}
    storageBarrier();
    workgroupBarrier();
  }
}`;

/** The cpu twin of QR_SOURCE, step for step (f32 storage, f64 sums). */
function householderCpu(a: Float32Array, q: Float32Array, S: number, R: number): void {
  const betas = new Float64Array(R);
  for (let j = 0; j < R; j++) {
    let sq = 0;
    for (let i = j; i < S; i++) sq += a[i * R + j]! * a[i * R + j]!;
    sq = Math.fround(sq);
    const x0 = a[j * R + j]!;
    let beta = 0;
    if (sq > 0) {
      const nrm = Math.sqrt(sq);
      const alpha = x0 >= 0 ? -nrm : nrm;
      const v0 = Math.fround(x0 - alpha);
      a[j * R + j] = v0;
      const vv = sq - x0 * x0 + v0 * v0;
      if (vv > 0) beta = Math.fround(2 / vv);
    }
    betas[j] = beta;
    for (let c = j + 1; c < R; c++) {
      let d = 0;
      for (let i = j; i < S; i++) d += a[i * R + j]! * a[i * R + c]!;
      d *= beta;
      for (let i = j; i < S; i++) a[i * R + c] = a[i * R + c]! - d * a[i * R + j]!;
    }
  }
  q.fill(0);
  for (let k = 0; k < R; k++) q[k * R + k] = 1;
  for (let j = R - 1; j >= 0; j--) {
    for (let c = j; c < R; c++) {
      let d = 0;
      for (let i = j; i < S; i++) d += a[i * R + j]! * q[i * R + c]!;
      d *= betas[j]!;
      for (let i = j; i < S; i++) q[i * R + c] = q[i * R + c]! - d * a[i * R + j]!;
    }
  }
}

registerKernel(householderQrKernel, {
  cpu(backend: CpuBackend, { outputs, attrs: { rows, cols } }) {
    const a = backend.view(outputs.a.storage), q = backend.view(outputs.q.storage);
    if (!(a instanceof Float32Array) || !(q instanceof Float32Array)) throw new StepError('galore_householder_qr: a and q must be f32');
    checkQrShape('galore_householder_qr', rows, cols, a.length, q.length);
    householderCpu(a, q, rows, cols);
  },
  webgpu(backend: WebGPUBackend, { outputs, attrs: { rows, cols } }) {
    const a = outputs.a.storage, q = outputs.q.storage;
    checkQrShape('galore_householder_qr', rows, cols, a.size, q.size);
    backend.dispatch({ label: 'galore_householder_qr', source: QR_SOURCE, buffers: [a, q], uniforms: packUniforms([['u32', rows], ['u32', cols]]), workgroups: [1] });
  },
});

// ---------------------------------------------------------------- commit with canonical signs

function commitSource(hasStatus: boolean): string {
  return `struct U { rows: u32, cols: u32 }
@group(0) @binding(0) var<storage, read> q: array<f32>;
${hasStatus ? '@group(0) @binding(1) var<storage, read> status: array<f32>;\n' : ''}@group(0) @binding(${hasStatus ? 2 : 1}) var<storage, read_write> projector: array<f32>;
@group(0) @binding(${hasStatus ? 3 : 2}) var<uniform> u: U;
@compute @workgroup_size(64) fn main(${LINEAR_PARAMS}) {
  ${LINEAR_INDEX}
  if (i >= u.cols) { return; }
${hasStatus ? '  if (status[1] != 0.0) { return; }\n' : ''}  var best = 0.0;
  var sign = 1.0;
  for (var r = 0u; r < u.rows; r++) {
    let x = q[r * u.cols + i];
    if (abs(x) > best) { best = abs(x); sign = select(-1.0, 1.0, x >= 0.0); }
  }
  for (var r = 0u; r < u.rows; r++) { projector[r * u.cols + i] = sign * q[r * u.cols + i]; }
}`;
}

registerKernel(projectorCommitKernel, {
  cpu(backend: CpuBackend, { inputs: { q: qT, status }, outputs: { projector }, attrs: { rows, cols } }) {
    if (status && backend.view(status.storage)[1] !== 0) return;
    const q = backend.values(qT.storage), p = backend.view(projector.storage);
    for (let c = 0; c < cols; c++) {
      let best = 0, sign = 1;
      for (let r = 0; r < rows; r++) {
        const x = q[r * cols + c]!;
        if (Math.abs(x) > best) { best = Math.abs(x); sign = x >= 0 ? 1 : -1; }
      }
      for (let r = 0; r < rows; r++) p[r * cols + c] = sign * q[r * cols + c]!;
    }
  },
  webgpu(backend: WebGPUBackend, { inputs: { q, status }, outputs: { projector }, attrs: { rows, cols } }) {
    backend.dispatch({
      label: 'galore_commit', source: commitSource(status !== undefined), buffers: updateBuffers(q, status, projector),
      uniforms: packUniforms([['u32', rows], ['u32', cols]]), workgroups: grid1D(cols),
    });
  },
});

// ---------------------------------------------------------------- projected Adam, then the apply

function adamSource(hasStatus: boolean): string {
  const decls = [hasStatus ? 'read> status' : null, 'read_write> grad', 'read_write> m', 'read_write> v'].filter((d) => d !== null);
  return `struct U { n: u32, b1: f32, b2: f32, omb1: f32, omb2: f32, eps: f32, step: f32, skip_base: f32 }
${decls.map((d, b) => `@group(0) @binding(${b}) var<storage, ${d}: array<f32>;\n`).join('')}@group(0) @binding(${decls.length}) var<uniform> u: U;
@compute @workgroup_size(64) fn main(${LINEAR_PARAMS}) {
  ${LINEAR_INDEX}
  if (i >= u.n) { return; }
${statusPrologue(hasStatus)}  _ = t;
  let m1 = u.b1 * m[i] + u.omb1 * g0;
  let v1 = u.b2 * v[i] + u.omb2 * g0 * g0;
  m[i] = m1;
  v[i] = v1;
  grad[i] = m1 / (sqrt(v1) + u.eps);
}`;
}

registerKernel(projectedAdamKernel, {
  cpu(backend: CpuBackend, { inputs: { status }, outputs: { lowGrad, m: mT, v: vT }, attrs: a }) {
    const f = Math.fround;
    const st = stepStatus(backend, status, a);
    if (!st) return;
    const g = backend.view(lowGrad.storage), m = backend.view(mT.storage), v = backend.view(vT.storage);
    const b1 = f(a.beta1), b2 = f(a.beta2), omb1 = f(1 - a.beta1), omb2 = f(1 - a.beta2), eps = f(a.eps);
    for (let i = 0; i < g.length; i++) {
      const g0 = f(g[i]! * st.mult);
      const m1 = f(b1 * m[i]! + omb1 * g0), v1 = f(b2 * v[i]! + omb2 * g0 * g0);
      m[i] = m1; v[i] = v1;
      g[i] = m1 / (Math.sqrt(v1) + eps);
    }
  },
  webgpu(backend: WebGPUBackend, { inputs: { status }, outputs: { lowGrad, m, v }, attrs: a }) {
    const n = lowGrad.size;
    // The prologue reads grad[i] as the low-rank gradient; here `grad` is read and then overwritten.
    backend.dispatch({
      label: 'galore_adam', source: adamSource(status !== undefined), buffers: updateBuffers(status, lowGrad, m, v),
      uniforms: packUniforms([['u32', n], ['f32', a.beta1], ['f32', a.beta2], ['f32', 1 - a.beta1], ['f32', 1 - a.beta2], ['f32', a.eps], ['f32', a.step], ['f32', a.skipBase]]),
      workgroups: grid1D(n),
    });
  },
});

function applySource(param: string, hasStatus: boolean, hasMaster: boolean): string {
  const { decls, uniform } = updateBindings('f32', param, hasStatus, [hasMaster ? 'master' : null]);
  return `${enables(param === 'f16' ? 'f16' : 'f32')}
struct U { n: u32, lr: f32, ln_b1: f32, ln_b2: f32, scale: f32, decay: f32, step: f32, skip_base: f32 }
${decls}@group(0) @binding(${uniform}) var<uniform> u: U;
${ONE_MINUS_POW_WGSL}
@compute @workgroup_size(64) fn main(${LINEAR_PARAMS}) {
  ${LINEAR_INDEX}
  if (i >= u.n) { return; }
${statusPrologue(hasStatus).replace(' * status[0]', '')}  let step_size = u.lr * sqrt(one_minus_pow(u.ln_b2, t)) / one_minus_pow(u.ln_b1, t);
  var p = ${hasMaster ? 'master[i]' : 'f32(param[i])'};
  p = (p - step_size * (u.scale * g0)) * u.decay;
${hasMaster ? '  master[i] = p;\n' : ''}  param[i] = ${param}(p);
}`;
}

registerKernel(projectedApplyKernel, {
  cpu(backend: CpuBackend, { inputs: { update, status }, outputs: { param: pT, master: masterT }, attrs: a }) {
    const f = Math.fround;
    const st = stepStatus(backend, status, a);
    if (!st) return;
    const stepSize = f(f(f(a.lr) * f(Math.sqrt(f(oneMinusPow(f(lnBeta(a.beta2)), st.t))))) / f(oneMinusPow(f(lnBeta(a.beta1)), st.t)));
    const u = backend.values(update.storage), pS = pT.storage, param = backend.view(pS), pv = backend.values(pS);
    const master = masterT ? backend.view(masterT.storage) : null;
    const scale = f(a.scale), decay = f(a.decay);
    for (let i = 0; i < param.length; i++) {
      let p = master ? master[i]! : pv[i]!;
      p = f(f(p - stepSize * f(scale * u[i]!)) * decay);
      if (master) master[i] = p;
      param[i] = storeAs(pS, p);
    }
  },
  webgpu(backend: WebGPUBackend, { inputs: { update, status }, outputs: { param, master }, attrs: a }) {
    const p = param.storage;
    backend.dispatch({
      label: 'galore_apply', source: applySource(wgslType(p.dtype), status !== undefined, master !== undefined),
      buffers: updateBuffers(update, status, param, master),
      uniforms: packUniforms([['u32', p.size], ['f32', a.lr], ['f32', lnBeta(a.beta1)], ['f32', lnBeta(a.beta2)], ['f32', a.scale], ['f32', a.decay], ['f32', a.step], ['f32', a.skipBase]]),
      workgroups: grid1D(p.size),
    });
  },
});
