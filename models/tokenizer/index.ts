/** Byte-level BPE tokenizer: training, encoding, decoding, tokenizer.json. */
export { BpeTokenizer, type EncodeOptions, type TrainTokenizerOptions } from './bpe.js';
export { TokenizerFormatError, TOKENIZER_FORMAT, TOKENIZER_VERSION, type TokenizerFile, type TokenizerSpec } from './format.js';
export { pretokenize, forEachPiece, PRETOKENIZER_NAME } from './pretokenize.js';
export { countPieces, learnMerges } from './train.js';
export { mergePiece, mergeShort, mergeLong } from './merge-piece.js';
