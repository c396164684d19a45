/** Optimizers (SGD, Adam, AdamW, GaLore), loss scaling, state resets and checkpoints, LR schedules. */
export * from './optimizer.js';
export * from './adam.js';
export * from './galore.js';
export * from './sgd.js';
export * from './loss-scaler.js';
export * from './reset.js';
export * from './schedules.js';
export { OPTIMIZER_STATE_FORMAT, loadOptimizerState, saveOptimizerState } from './state-io.js';
