/** Data sources (Brown corpus, text files), llm.c token shards, training-window sampling. */
export { DataError, splitEveryNth, joinDocuments, type TextDocument, type DocumentSplit } from './documents.js';
export { loadBrownCorpus, brownCorpusDir, brownFileToText, brownParagraphs, detokenize, splitTag, stripTag, type BrownCorpus, type BrownDocument, type BrownOptions } from './brown.js';
export { loadTextFiles, type TextFileCorpus, type TextFilesOptions } from './text-files.js';
export { writeTokenShard, readTokenShard, readTokenShardHeader, parseShardHeader, SHARD_MAGIC, SHARD_VERSION, SHARD_HEADER_BYTES, type ShardHeader } from './shards.js';
export { WindowSampler, windowStarts, gatherWindows, sequentialWindows, countSequentialWindows, type WindowBatch, type SamplerState, type TokenArray, type WindowShape } from './windows.js';
export { encodeDocuments, type EncodeDocumentsOptions } from './encode-documents.js';
export { writeFileAtomic } from './atomic-write.js';
