/** Reverse-mode autograd: the tape, differentiable ops, gradcheck. */
export { backward, grad } from './backward.js';
export type { BackwardOptions } from './backward.js';
export { isGradEnabled, noGrad, withGradEnabled } from './grad-mode.js';
export { gradcheck } from './gradcheck.js';
export type { GradcheckInput, GradcheckOptions, GradcheckResult } from './gradcheck.js';
export { GradNode, needsGrad, record } from './tape.js';
export * from './ops/elementwise.js';
export { matmul } from './ops/linalg.js';
export { max, mean, sum, sumOfSquares } from './ops/reduce.js';
export { concat, gatherRows, permute, reshape, slice, transpose } from './ops/layout.js';
export { crossEntropy, rmsNorm, rope, softmax, swiglu } from './ops/nn.js';
