/** step-webgpu: the engine with every kernel registered, and the ops. */
export * from './engine/index.js';
export * from './kernels/index.js';
