/** Models: LLaMA, config presets, tokenizer, data loaders, generation. */
export * from './config.js';
export * from './config-params.js';
export * from './config-presets.js';
export * from './linear.js';
export * from './llama.js';
export * from './generate.js';
export * from './tokenizer/index.js';
export * from './data/index.js';
