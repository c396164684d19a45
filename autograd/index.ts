/** Reverse-mode autograd: the tape, differentiable ops, gradcheck. */
export { backward, grad } from './backward.js';
export type { BackwardOptions } from './backward.js';
export { isGradEnabled, noGrad, withGradEnabled } from './grad-mode.js';
export { checkpoint } from './checkpoint.js';
export type { CheckpointOptions } from './checkpoint.js';
export { gradcheck } from './gradcheck.js';
export type { GradcheckInput, GradcheckOptions, GradcheckResult } from './gradcheck.js';
export { GradNode, needsGrad, record } from './tape.js';
export * from './ops/elementwise.js';
export { matmul } from './ops/linalg.js';
export { max, mean, sum, sumOfSquares } from './ops/reduce.js';
export { concat, gatherRows, permute, reshape, slice, transpose } from './ops/layout.js';
export { crossEntropy, rmsNorm, rope, softmax, swiglu } from './ops/nn.js';
export { attention } from './ops/attention.js';
export type { AttentionOptions } from './ops/attention.js';
export { linearCrossEntropy } from './ops/linear-cross-entropy.js';
export type { LinearCrossEntropyOptions } from './ops/linear-cross-entropy.js';

/**
 * The ops that record gradients (every op the root 'step-webgpu' exports). Each records a tape node
 * when grad mode is on and an input has `requiresGrad`; otherwise it runs the raw kernel. The raw
 * kernels of 'step-webgpu/kernels' never record. A test checks each name records, and that every
 * root-exported function that maps tensors to tensors is listed here or documented as not recording.
 */
export const DIFFERENTIABLE_OPS = [
  'abs', 'add', 'attention', 'cast', 'concat', 'crossEntropy', 'div', 'exp', 'gatherRows', 'linearCrossEntropy', 'log', 'matmul',
  'max', 'maximum', 'mean', 'minimum', 'mul', 'neg', 'permute', 'pow', 'rdiv', 'relu', 'reshape', 'rmsNorm', 'rope', 'rsqrt', 'rsub', 'sigmoid',
  'silu', 'slice', 'softmax', 'sqrt', 'square', 'sub', 'sum', 'sumOfSquares', 'swiglu', 'tanh', 'transpose', 'where',
] as const;
