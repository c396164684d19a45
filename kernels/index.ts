/** Registers every kernel with the engine's registry (import for its side effect) and exports the ops. */
import './fill.js';
import './arange.js';
import './copy.js';
import './random.js';
import './optim.js';

export * from './elementwise.js';
export * from './unary.js';
export * from './reduce.js';
export * from './layout.js';
export * from './matmul.js';
export * from './softmax.js';
export * from './cross-entropy.js';
export * from './rmsnorm.js';
export * from './rope.js';
export * from './swiglu.js';
export * from './lora.js';
export * from './optim.js';

export { registeredKernels } from '../engine/registry.js';
export { grid1D, packUniforms, wgslType, WG_1D } from './wgsl.js';
