/**
 * `step-webgpu/kernels`: the raw kernel ops. They do NOT record gradients (use the ops of
 * 'step-webgpu' for autograd); they take an output `category`/`label`, and include the backward
 * kernels and comparisons autograd is built from. Importing this registers every kernel. Also
 * the registry, for adding kernels of your own. The list is curated: a test pins it.
 */
import '../engine/builtin-kernels.js';
import './elementwise.js';
import './unary.js';
import './reduce.js';
import './layout.js';
import './matmul.js';
import './scale-in-place.js';
import './softmax.js';
import './attention.js';
import './cross-entropy.js';
import './rmsnorm.js';
import './rope.js';
import './swiglu.js';
import './lora.js';

export {
  add, addScaledInPlace, div, equal, greater, greaterEqual, less, lessEqual, maximum, minimum, mul, notEqual, sub, where,
} from './elementwise.js';
export type { BinaryOp, OpOptions } from './elementwise.js';
export { abs, cast, exp, log, neg, pow, rdiv, relu, rsqrt, rsub, sigmoid, silu, sqrt, square, tanh } from './unary.js';
export { max, mean, sum, sumOfSquares, sumOfSquaresMany } from './reduce.js';
export type { ReduceOptions, ScalarOptions } from './reduce.js';
export { concat, gatherRows, permute, scatterAddRows, slice, sliceGradient, transpose } from './layout.js';
export type { LayoutOptions, RowsOptions, ScatterAddMethod, ScatterAddRowsOptions, SliceSpec } from './layout.js';
export { matmul } from './matmul.js';
export type { MatmulOptions } from './matmul.js';
export { softmax, softmaxBackward } from './softmax.js';
export type { SoftmaxBackwardOptions, SoftmaxOptions } from './softmax.js';
export { flashAttention, flashAttentionBackward } from './attention.js';
export type { FlashAttentionOptions } from './attention.js';
export { crossEntropy, crossEntropyBackward } from './cross-entropy.js';
export type { CrossEntropyBackwardOptions, CrossEntropyOptions } from './cross-entropy.js';
export { rmsNorm, rmsNormBackward } from './rmsnorm.js';
export type { RmsNormOptions } from './rmsnorm.js';
export { rope, ropeBackward, ropeInvFreq } from './rope.js';
export type { RopeLayout, RopeOptions } from './rope.js';
export { swiglu, swigluBackward } from './swiglu.js';
export type { SwigluOptions } from './swiglu.js';
export { loraMergeInPlace } from './lora.js';

export { registerKernel, registeredKernels, runKernel } from '../engine/registry.js';
export type { KernelArgs, KernelFn, KernelImpls } from '../engine/registry.js';
