/** Models: LLaMA, a general Linear, config presets, tokenizer, data loaders, generation. Curated: a test pins it. */
export {
  ConfigError, HF_DEFAULTS, configFromJSON, configToJSON, headDim, kvDim, makeConfig, parseConfigJSON, stringifyConfig, validateConfig,
} from './config.js';
export type { LlamaConfig, TorchDType } from './config.js';
export { countParameters, layerLinears, loraParamsPerLayer, maxLoraRank } from './config-params.js';
export type { LayerCounts, LinearShape, ParameterCounts } from './config-params.js';
export { PRESET_NAMES, presetConfig, presetDescription } from './config-presets.js';
export { Linear, setTrainable } from './linear.js';
export type { LinearOptions, LoraAdapter } from './linear.js';
export { LlamaLayer, LlamaModel, initLlama } from './llama.js';
export type { InitOptions, LlamaDims } from './llama.js';
export { generate, sampleToken } from './generate.js';
export type { GenerateOptions } from './generate.js';
export { BpeTokenizer, PRETOKENIZER_NAME, TOKENIZER_FORMAT, TOKENIZER_VERSION, TokenizerFormatError, pretokenize } from './tokenizer/index.js';
export type { EncodeOptions, TokenizerFile, TokenizerSpec, TrainTokenizerOptions } from './tokenizer/index.js';
export {
  DataError, SHARD_HEADER_BYTES, SHARD_MAGIC, SHARD_VERSION, WindowSampler, brownCorpusDir, countSequentialWindows, detokenize,
  encodeDocuments, gatherWindows, joinDocuments, loadBrownCorpus, loadTextFiles, readTokenShard, readTokenShardHeader,
  sequentialWindows, splitEveryNth, writeTokenShard,
} from './data/index.js';
export type {
  BrownCorpus, BrownDocument, BrownOptions, DocumentSplit, EncodeDocumentsOptions, SamplerState, ShardHeader, TextDocument,
  TextFileCorpus, TextFilesOptions, TokenArray, WindowBatch, WindowShape,
} from './data/index.js';
