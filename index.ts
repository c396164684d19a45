/** step-webgpu: the engine with every kernel registered. */
import './kernels/index.js';

export * from './engine/index.js';
