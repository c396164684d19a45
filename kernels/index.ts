/** Registers every kernel with the engine's registry (import for its side effect). */
import './fill.js';
import './arange.js';
import './copy.js';
import './random.js';

export { registeredKernels } from '../engine/registry.js';
export { grid1D, packUniforms, wgslType, WG_1D } from './wgsl.js';
