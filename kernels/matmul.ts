/**
 * matmul: batched matrix product with optional transposed operands, f32 accumulation.
 *
 *   matmul(a, b)                  a [..., M, K] · b [..., K, N] -> [..., M, N]
 *   matmul(a, b, { transA: true }) a [..., K, M] read as its transpose
 *   matmul(a, b, { transB: true }) b [..., N, K] read as its transpose
 *
 * The transpose flags let backward passes use dA = dC·B^T and dB = A^T·dC without materialising
 * a transpose. Batch dims broadcast (NumPy rules), so a 2-D weight is shared across a batch.
 * f32 x f32 -> f32, f16 x f16 -> f16 (accumulated in f32 on WebGPU), f64 x f64 -> f64 (cpu).
 * The kernels: matmul-cpu.ts (reference), matmul-webgpu.ts + matmul-wgsl.ts (WGSL).
 */
import { empty, fillInPlace } from '../engine/creation.js';
import { DeviceMismatchError, DTypeError } from '../engine/errors.js';
import type { Category } from '../engine/memory.js';
import { registerKernel, runKernel } from '../engine/registry.js';
import { formatShape } from '../engine/shape.js';
import type { Tensor } from '../engine/tensor.js';
import { matmulCpu } from './matmul-cpu.js';
import { matmulKernel, matmulLayout } from './matmul-layout.js';
import { matmulWebGPU } from './matmul-webgpu.js';

export interface MatmulOptions {
  /** Read `a` ([..., K, M]) as its transpose. */
  transA?: boolean;
  /** Read `b` ([..., N, K]) as its transpose. */
  transB?: boolean;
  /** Memory category of the output (default `temporary`). */
  category?: Category;
  /** Label of the output in errors and the memory tracker. */
  label?: string;
}

export function matmul(a: Tensor, b: Tensor, options: MatmulOptions = {}): Tensor {
  a.use('matmul');
  b.use('matmul');
  const transA = options.transA ?? false, transB = options.transB ?? false;
  const describe = (): string =>
    `a ${formatShape(a.shape)}${transA ? ' (transA)' : ''} ${a.dtype}, b ${formatShape(b.shape)}${transB ? ' (transB)' : ''} ${b.dtype}`;
  if (a.backend !== b.backend) {
    throw new DeviceMismatchError(`matmul: ${describe()}: a and b live on different backends (${a.backend.name}, ${b.backend.name}); move one with toDevice()`);
  }
  if (a.dtype !== b.dtype) {
    throw new DTypeError(`matmul: ${describe()}: dtypes differ; cast one with clone(t, { dtype }) first`);
  }
  if (a.dtype === 'i32') throw new DTypeError(`matmul: ${describe()}: i32 is not supported; use f32, f16 or f64 (cpu)`);
  const layout = matmulLayout(a.shape, b.shape, transA, transB, describe);
  const out = empty(layout.outShape, { dtype: a.dtype, device: a.backend, category: options.category, label: options.label }, 'matmul');
  if (out.size === 0) return out;
  if (layout.K === 0) {
    // An empty sum: every output is zero, and neither kernel needs to bind the empty operands.
    fillInPlace(out, 0);
    return out;
  }
  runKernel(matmulKernel, { inputs: { a, b }, outputs: { out }, attrs: { layout } });
  return out;
}

registerKernel(matmulKernel, { cpu: matmulCpu, webgpu: matmulWebGPU });
