/** Reverse-mode autograd: the tape, differentiable ops, gradcheck. */
export { backward, grad } from './backward.js';
export type { BackwardOptions } from './backward.js';
export { isGradEnabled, noGrad, withGradEnabled } from './grad-mode.js';
export { gradcheck } from './gradcheck.js';
export type { GradcheckInput, GradcheckOptions, GradcheckResult } from './gradcheck.js';
export { GradNode, needsGrad, record } from './tape.js';
export * from './ops/elementwise.js';
