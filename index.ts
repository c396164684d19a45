/**
 * step-webgpu: differentiable ops, the engine (tensors, devices, memory, scopes, random numbers,
 * safetensors), optimizers and models. Every op exported here records gradients (see
 * DIFFERENTIABLE_OPS); the raw kernels, which never do, live in 'step-webgpu/kernels', and STEP
 * (planner, growth, LoRA freezing, training) in 'step-webgpu/step'. The list is curated: a test
 * pins it (test/api/exports.json).
 */
export * from './engine/index.js';
export {
  DIFFERENTIABLE_OPS, abs, add, attention, backward, cast, checkpoint, concat, crossEntropy, div, exp, gatherRows, grad, gradcheck,
  isGradEnabled, linearCrossEntropy, log, matmul, max, maximum, mean, minimum, mul, neg, noGrad, permute, pow, rdiv, relu, reshape,
  rmsNorm, rope, rsqrt, rsub, sigmoid, silu, slice, softmax, sqrt, square, sub, sum, sumOfSquares, swiglu, tanh, transpose, where,
  withGradEnabled,
} from './autograd/index.js';
export type {
  AttentionOptions, BackwardOptions, CheckpointOptions, GradcheckInput, GradcheckOptions, GradcheckResult, LinearCrossEntropyOptions,
} from './autograd/index.js';
export type {
  CrossEntropyOptions, LayoutOptions, MatmulOptions, OpOptions, ReduceOptions, RmsNormOptions, RopeLayout, RopeOptions,
  SliceSpec, SoftmaxOptions,
} from './kernels/index.js';
export * from './models/index.js';
