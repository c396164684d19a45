/**
 * SwiGLU, the gate of LLaMA's MLP (down(silu(gate(x)) * up(x))), and its backward:
 *
 *   y     = silu(g) * u,  silu(g) = g * sigmoid(g)
 *   dgate = dy * u * sigmoid(g) * (1 + g * (1 - sigmoid(g)))
 *   dup   = dy * silu(g)
 *
 * gate, up and dy share one shape and dtype (no broadcasting); f16 storage is computed in f32.
 */
import type { CpuBackend } from '../engine/cpu/backend.js';
import { empty } from '../engine/creation.js';
import type { Category } from '../engine/memory.js';
import type { KernelCallOf } from '../engine/registry.js';
import { defineKernel, registerKernel, runKernel } from '../engine/registry.js';
import type { Tensor } from '../engine/tensor.js';
import { checkFloat, checkSameShapeAndDType, cpuStore, enableF16, floatType } from './fused-shared.js';
import { grid1D, LINEAR_INDEX, LINEAR_PARAMS, packUniforms } from './wgsl.js';

export interface SwigluOptions {
  /** Memory category of the outputs (default `temporary`). */
  category?: Category;
}

const swigluKernel = defineKernel()('swiglu', { inputs: ['gate', 'up'], outputs: ['y'] });
const swigluBackwardKernel = defineKernel()('swigluBackward', { inputs: ['gate', 'up', 'dy'], outputs: ['dgate', 'dup'] });

/** silu(gate) * up, elementwise. */
export function swiglu(gate: Tensor, up: Tensor, options: SwigluOptions = {}): Tensor {
  const op = 'swiglu';
  checkFloat(op, 'gate', gate);
  checkFloat(op, 'up', up);
  checkSameShapeAndDType(op, ['gate', 'up'], gate, up);
  const y = empty(gate.shape, { dtype: gate.dtype, device: gate.backend, category: options.category }, op);
  runKernel(swigluKernel, { inputs: { gate, up }, outputs: { y }, attrs: {} });
  return y;
}

/** Gradients of swiglu with respect to gate and up. */
export function swigluBackward(gate: Tensor, up: Tensor, dy: Tensor, options: SwigluOptions = {}): { dgate: Tensor; dup: Tensor } {
  const op = 'swigluBackward';
  checkFloat(op, 'gate', gate);
  checkFloat(op, 'up', up);
  checkFloat(op, 'dy', dy);
  checkSameShapeAndDType(op, ['gate', 'up'], gate, up);
  checkSameShapeAndDType(op, ['gate', 'dy'], gate, dy);
  const opts = { dtype: gate.dtype, device: gate.backend, category: options.category };
  const dgate = empty(gate.shape, opts, op);
  const dup = empty(gate.shape, opts, op);
  runKernel(swigluBackwardKernel, { inputs: { gate, up, dy }, outputs: { dgate, dup }, attrs: {} });
  return { dgate, dup };
}

/** sigmoid in f64 without overflow for either sign. */
function sigmoid(g: number): number {
  if (g >= 0) return 1 / (1 + Math.exp(-g));
  const e = Math.exp(g);
  return e / (1 + e);
}

function forwardCpu(backend: CpuBackend, { inputs, outputs }: KernelCallOf<typeof swigluKernel>): void {
  const g = backend.values(inputs.gate.storage), u = backend.values(inputs.up.storage);
  const store = cpuStore(backend, outputs.y.storage);
  for (let i = 0; i < g.length; i++) store(i, g[i]! * sigmoid(g[i]!) * u[i]!);
}

function backwardCpu(backend: CpuBackend, { inputs, outputs }: KernelCallOf<typeof swigluBackwardKernel>): void {
  const g = backend.values(inputs.gate.storage), u = backend.values(inputs.up.storage), dy = backend.values(inputs.dy.storage);
  const storeG = cpuStore(backend, outputs.dgate.storage), storeU = cpuStore(backend, outputs.dup.storage);
  for (let i = 0; i < g.length; i++) {
    const s = sigmoid(g[i]!);
    storeG(i, dy[i]! * u[i]! * s * (1 + g[i]! * (1 - s)));
    storeU(i, dy[i]! * g[i]! * s);
  }
}

/** sigmoid in WGSL: exp of a non-positive argument only, so nothing overflows to inf/inf. */
const SIGMOID = `fn sigmoid(g: f32) -> f32 {
  let e = exp(-abs(g));
  return select(e / (1.0 + e), 1.0 / (1.0 + e), g >= 0.0);
}`;

function forwardSource(t: string): string {
  return `${enableF16(t)}
struct U { n: u32 }
@group(0) @binding(0) var<storage, read> gate: array<${t}>;
@group(0) @binding(1) var<storage, read> up: array<${t}>;
@group(0) @binding(2) var<storage, read_write> y: array<${t}>;
@group(0) @binding(3) var<uniform> u: U;
${SIGMOID}
@compute @workgroup_size(64) fn main(${LINEAR_PARAMS}) {
  ${LINEAR_INDEX}
  if (i >= u.n) { return; }
  let g = f32(gate[i]);
  y[i] = ${t}(g * sigmoid(g) * f32(up[i]));
}`;
}

function backwardSource(t: string): string {
  return `${enableF16(t)}
struct U { n: u32 }
@group(0) @binding(0) var<storage, read> gate: array<${t}>;
@group(0) @binding(1) var<storage, read> up: array<${t}>;
@group(0) @binding(2) var<storage, read> dy: array<${t}>;
@group(0) @binding(3) var<storage, read_write> dgate: array<${t}>;
@group(0) @binding(4) var<storage, read_write> dup: array<${t}>;
@group(0) @binding(5) var<uniform> u: U;
${SIGMOID}
@compute @workgroup_size(64) fn main(${LINEAR_PARAMS}) {
  ${LINEAR_INDEX}
  if (i >= u.n) { return; }
  let g = f32(gate[i]);
  let d = f32(dy[i]);
  let s = sigmoid(g);
  dgate[i] = ${t}(d * f32(up[i]) * s * (1.0 + g * (1.0 - s)));
  dup[i] = ${t}(d * g * s);
}`;
}

registerKernel(swigluKernel, {
  cpu: forwardCpu,
  webgpu(backend, { inputs, outputs }) {
    const [g, u, y] = [inputs.gate.storage, inputs.up.storage, outputs.y.storage];
    backend.dispatch({
      label: 'swiglu',
      source: forwardSource(floatType(g)),
      buffers: [g, u, y],
      uniforms: packUniforms([['u32', y.size]]),
      workgroups: grid1D(y.size),
    });
  },
});

registerKernel(swigluBackwardKernel, {
  cpu: backwardCpu,
  webgpu(backend, { inputs, outputs }) {
    const [g, u, dy] = [inputs.gate.storage, inputs.up.storage, inputs.dy.storage];
    const [dg, du] = [outputs.dgate.storage, outputs.dup.storage];
    backend.dispatch({
      label: 'swigluBackward',
      source: backwardSource(floatType(g)),
      buffers: [g, u, dy, dg, du],
      uniforms: packUniforms([['u32', g.size]]),
      workgroups: grid1D(g.size),
    });
  },
});
