/**
 * Multi-tensor optimizer kernels: the AdamW update and the global-norm partial sums over several
 * tensors per dispatch, instead of one dispatch per parameter. WGSL cannot index bindings, so a
 * dispatch binds as many tensors as the device's storage-buffer limit allows (llvmpipe: 16, i.e.
 * 3 AdamW parameters or 15 gradients; WebGPU's minimum of 8 still takes 1 and 7) and each
 * workgroup finds its tensor from a table of first workgroups in the uniforms. Every element is
 * computed by the same WGSL text as the per-tensor kernels (kernels/optim.ts), so the results are
 * the same bits.
 */
import type { CpuBackend } from '../engine/cpu/backend.js';
import { StepError } from '../engine/errors.js';
import type { AdamAttrs } from '../engine/optim/kernels.js';
import { adamwMultiKernel, gradSqPartialsMultiKernel } from '../engine/optim/kernels.js';
import { registerKernel } from '../engine/registry.js';
import type { Tensor } from '../engine/tensor.js';
import type { WebGPUBackend } from '../engine/webgpu/backend.js';
import {
  ADAM_FIELDS, adamBody, adamCpu, adamFieldValues, gradSqPartialsCpu, ONE_MINUS_POW_WGSL, PARTIALS_SHARED, partialsLoop, partialsReduce,
} from './optim.js';
import { enables, grid1D, packUniforms, WG_1D, wgslType } from './wgsl.js';

/** Most tensors whose table fits the 256-byte uniform block: 4 AdamW entries of 16 words, 15 partials entries of 4. */
const MAX_ADAM_PER_DISPATCH = 4; // an entry: n, first workgroup, the 12 AdamW fields, 2 words of padding
const MAX_PARTIALS_PER_DISPATCH = 15;

/** Consecutive runs of at most `n` items. */
function chunksOf<T>(xs: readonly T[], n: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < xs.length; i += n) out.push(xs.slice(i, i + n));
  return out;
}

/** Tensors one dispatch may bind besides `fixed` other buffers, `per` buffers a tensor. */
function perDispatch(backend: WebGPUBackend, fixed: number, per: number, cap: number): number {
  const n = Math.min(cap, Math.floor((backend.limits.maxStorageBuffersPerShaderStage - fixed) / per));
  if (n < 1) throw new StepError(`optimizer: the device binds ${backend.limits.maxStorageBuffersPerShaderStage} storage buffers per shader, fewer than one update needs (${fixed + per})`);
  return n;
}

const storageDecl = (binding: number, access: 'read' | 'read_write', name: string, type: string) =>
  `@group(0) @binding(${binding}) var<storage, ${access}> ${name}: array<${type}>;\n`;

// ---------------------------------------------------------------- grad_sq_partials_multi

function partialsMultiSource(types: readonly string[]): string {
  const n = types.length;
  const branches = types.map((_, k) => `if (wg < u.g[${k}].y + u.g[${k}].z) {
${partialsLoop(`grad${k}`, `(wg - u.g[${k}].y)`, `u.g[${k}].x`, `u.g[${k}].z`)}
    slot = u.g[${k}].w + wg - u.g[${k}].y;
  }`).join(' else ');
  return `${enables(types.includes('f16') ? 'f16' : 'f32')}
struct U { g: array<vec4u, ${n}> } // per gradient: elements, first workgroup, workgroups, first slot
${types.map((t, k) => storageDecl(k, 'read', `grad${k}`, t)).join('')}${storageDecl(n, 'read_write', 'partials', 'f32')}@group(0) @binding(${n + 1}) var<uniform> u: U;
${PARTIALS_SHARED}
@compute @workgroup_size(64) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let wg = wid.x;
  var acc = 0.0;
  var bad = 0.0;
  var slot = 0u;
  ${branches}
${partialsReduce('slot')}
}`;
}

registerKernel(gradSqPartialsMultiKernel, {
  cpu(backend: CpuBackend, { inputs: { grads }, outputs: { partials }, attrs: { bases, groups } }) {
    grads.forEach((g, k) => gradSqPartialsCpu(backend, g, partials, bases[k]!, groups[k]!));
  },
  webgpu(backend: WebGPUBackend, { inputs: { grads }, outputs: { partials }, attrs: { bases, groups } }) {
    const per = perDispatch(backend, 1, 1, MAX_PARTIALS_PER_DISPATCH);
    for (const part of chunksOf(grads.map((g, k) => ({ g, k })), per)) {
      let first = 0;
      const table: ['u32', number][] = [];
      for (const { g, k } of part) {
        table.push(['u32', g.size], ['u32', first], ['u32', groups[k]!], ['u32', bases[k]!]);
        first += groups[k]!;
      }
      backend.dispatch({
        label: 'grad_sq_partials_multi',
        source: partialsMultiSource(part.map(({ g }) => wgslType(g.dtype))),
        buffers: [...part.map(({ g }) => g.storage), partials.storage],
        uniforms: packUniforms(table),
        workgroups: [first],
      });
    }
  },
});

// ---------------------------------------------------------------- adamw_multi

function adamMultiSource(grads: readonly string[], param: string, hasStatus: boolean, hasMaster: boolean): string {
  let b = 0;
  const decls: string[] = [];
  if (hasStatus) decls.push(storageDecl(b++, 'read', 'status', 'f32'));
  grads.forEach((g, k) => {
    // suffix _k: a plain k would make m1 of parameter 1 clash with the update's local m1
    decls.push(storageDecl(b++, 'read', `grad_${k}`, g), storageDecl(b++, 'read_write', `param_${k}`, param));
    for (const s of ['m', 'v', ...(hasMaster ? ['master'] : [])]) decls.push(storageDecl(b++, 'read_write', `${s}_${k}`, 'f32'));
  });
  const branches = grads.map((_, k) => `if (w >= u.p[${k}].first && w < u.p[${k}].first + (u.p[${k}].n + ${WG_1D - 1}u) / ${WG_1D}u) {
    let i = (w - u.p[${k}].first) * ${WG_1D}u + lid.x;
    if (i >= u.p[${k}].n) { return; }
${adamBody(param, hasStatus, hasMaster, `_${k}`, `u.p[${k}]`)}    return;
  }`).join('\n  ');
  return `${enables(grads.includes('f16') || param === 'f16' ? 'f16' : 'f32')}
struct P { n: u32, first: u32, ${ADAM_FIELDS}, pad0: u32, pad1: u32 }
struct U { p: array<P, ${grads.length}> }
${decls.join('')}@group(0) @binding(${b}) var<uniform> u: U;
${ONE_MINUS_POW_WGSL}
@compute @workgroup_size(${WG_1D}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let w = wid.y * nwg.x + wid.x;
  ${branches}
}`;
}

/** Parameter k's outputs in the flat `states` list. */
function stateOf(states: readonly Tensor[], k: number, masters: boolean): { param: Tensor; m: Tensor; v: Tensor; master: Tensor | undefined } {
  const per = masters ? 4 : 3;
  const [param, m, v, master] = states.slice(k * per, (k + 1) * per);
  return { param: param!, m: m!, v: v!, master };
}

function checkCall(grads: readonly Tensor[], states: readonly Tensor[], params: readonly AdamAttrs[], masters: boolean): void {
  const per = masters ? 4 : 3;
  if (states.length !== grads.length * per || params.length !== grads.length) {
    throw new StepError(`adamw_multi: ${grads.length} gradients need ${grads.length * per} states and ${grads.length} attribute sets, got ${states.length} and ${params.length}`);
  }
}

registerKernel(adamwMultiKernel, {
  cpu(backend: CpuBackend, { inputs: { grads, status }, outputs: { states }, attrs: { params, masters } }) {
    checkCall(grads, states, params, masters);
    grads.forEach((g, k) => {
      const s = stateOf(states, k, masters);
      adamCpu(backend, g, status, s.param, s.m, s.v, s.master, params[k]!);
    });
  },
  webgpu(backend: WebGPUBackend, { inputs: { grads, status }, outputs: { states }, attrs: { params, masters } }) {
    checkCall(grads, states, params, masters);
    const per = perDispatch(backend, status ? 1 : 0, masters ? 5 : 4, MAX_ADAM_PER_DISPATCH);
    for (const part of chunksOf(grads.map((g, k) => ({ g, k, ...stateOf(states, k, masters) })), per)) {
      let first = 0;
      const table: ['u32' | 'f32', number][] = [];
      for (const { g, param, m, v, master, k } of part) {
        for (const t of [param, m, v, master]) if (t && t.size !== g.size) throw new StepError(`adamw_multi: parameter ${k}: tensors differ in size (${g.size} vs ${t.size})`);
        table.push(['u32', g.size], ['u32', first], ...adamFieldValues(params[k]!), ['u32', 0], ['u32', 0]);
        first += Math.ceil(g.size / WG_1D);
      }
      const pType = wgslType(part[0]!.param.dtype);
      if (part.some((x) => wgslType(x.param.dtype) !== pType)) throw new StepError('adamw_multi: the parameters of one call must share a dtype');
      backend.dispatch({
        label: 'adamw_multi',
        source: adamMultiSource(part.map(({ g }) => wgslType(g.dtype)), pType, status !== undefined, masters),
        buffers: [...(status ? [status.storage] : []), ...part.flatMap(({ g, param, m, v, master }) => [g, param, m, v, ...(master ? [master] : [])].map((t) => t.storage))],
        uniforms: packUniforms(table),
        workgroups: grid1D(first * WG_1D),
      });
    }
  },
});
