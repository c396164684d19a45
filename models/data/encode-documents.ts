/**
 * Turns documents into one token stream, GPT-2/llm.c style: each document is preceded by the
 * end-of-text token, so the model sees where documents start (and no window silently joins two
 * documents without a marker).
 */
import type { BpeTokenizer } from '../tokenizer/bpe.js';
import type { TextDocument } from './documents.js';

export interface EncodeDocumentsOptions {
  /** Separator special token (default "<|endoftext|>"); it must be one of the tokenizer's special tokens. */
  eot?: string;
}

export function encodeDocuments(tokenizer: BpeTokenizer, docs: readonly TextDocument[], options: EncodeDocumentsOptions = {}): Uint32Array {
  const eot = tokenizer.specialId(options.eot ?? '<|endoftext|>');
  const ids: number[] = [];
  for (const d of docs) {
    ids.push(eot);
    tokenizer.encodeOrdinary(d.text, ids);
  }
  return Uint32Array.from(ids);
}
