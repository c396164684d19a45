/** The STEP memory planner: the integer programme (exact), its cost models, the tensor listing; GaLore's and ReLoRA's model state. */
export * from './solve.js';
export * from './tensors.js';
export * from './transition.js';
export * from './costs.js';
export * from './plan.js';
export * from './table.js';
export * from './galore.js';
export * from './format.js';
export * from './relora.js';
