/**
 * step-webgpu: the engine, the kernels and autograd in one namespace. Ops that exist in both the
 * kernels and autograd (add, matmul, softmax, ...) are exported in their differentiable form;
 * they behave exactly like the raw kernels when no input requires grad. The raw kernel ops stay
 * reachable as `kernels.*` (and from 'step-webgpu/kernels').
 */
export * from './engine/index.js';
export * from './kernels/index.js';
export * as kernels from './kernels/index.js';
export {
  GradNode, abs, add, backward, cast, concat, crossEntropy, div, exp, gatherRows, grad, gradcheck, isGradEnabled,
  log, matmul, max, maximum, mean, minimum, mul, needsGrad, neg, noGrad, permute, pow, rdiv, record, relu, reshape,
  rmsNorm, rope, rsqrt, rsub, sigmoid, silu, slice, softmax, sqrt, square, sub, sum, sumOfSquares, sumToShape, swiglu,
  tanh, transpose, where, withGradEnabled,
} from './autograd/index.js';
export type { BackwardOptions, GradcheckInput, GradcheckOptions, GradcheckResult } from './autograd/index.js';
export * from './models/index.js';
