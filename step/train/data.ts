import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { StepError } from '../../engine/errors.js';
import type { TextDocument } from '../../models/data/documents.js';
import { loadBrownCorpus } from '../../models/data/brown.js';
import { encodeDocuments } from '../../models/data/encode-documents.js';
import { readTokenShard } from '../../models/data/shards.js';
import { loadTextFiles } from '../../models/data/text-files.js';
import { BpeTokenizer } from '../../models/tokenizer/bpe.js';
import type { LlamaModel } from '../../models/llama.js';

export const EOT = '<|endoftext|>';

/** A target the loss does not count (padding, prompt tokens): cross-entropy's ignoreIndex. */
export const IGNORE_INDEX = -100;

/** One micro-batch, row-major [rows, cols]: token ids and next-token targets (IGNORE_INDEX: not counted). */
export interface TokenBatch {
  inputs: Int32Array;
  targets: Int32Array;
  rows: number;
  cols: number;
  /** Real (non-padding) tokens in it, for the run's token count; default rows * cols. */
  tokens?: number;
}

/**
 * Where a run's micro-batches come from, by their index in the run's data order (a resumed run
 * asks for the next index, so it continues exactly), and its held-out evaluation. `step train`:
 * windows of the token stream; `step sft`: padded instruction examples with masked prompts.
 */
export interface BatchSource {
  batchAt(index: number): TokenBatch;
  /** The held-out loss, or null when there is nothing held out. */
  evaluate(model: LlamaModel): Promise<{ loss: number; perplexity: number } | null>;
}

export interface PreparedData {
  /** null for token shards tokenized elsewhere. */
  tokenizer: BpeTokenizer | null;
  train: Uint32Array;
  validation: Uint32Array;
  vocabSize: number;
  /** Perplexity of the validation tokens under the training tokens' unigram distribution (add-one smoothed). */
  unigramPerplexity: number;
  description: string;
}

/** Splits one token stream 90/10 by position when the source has no document split. */
function splitTokens(tokens: Uint32Array): [Uint32Array, Uint32Array] {
  const cut = Math.floor(tokens.length * 0.9);
  return [tokens.subarray(0, cut), tokens.subarray(cut)];
}

export function unigramPerplexity(train: ArrayLike<number>, validation: ArrayLike<number>, vocabSize: number): number {
  const counts = new Float64Array(vocabSize).fill(1);
  for (let i = 0; i < train.length; i++) counts[train[i]!]! += 1;
  const total = train.length + vocabSize;
  let nll = 0;
  for (let i = 0; i < validation.length; i++) nll -= Math.log(counts[validation[i]!]! / total);
  return Math.exp(nll / Math.max(1, validation.length));
}

/**
 * Loads the data of a run: the Brown corpus or text files (a BPE tokenizer is trained on the
 * training documents, or loaded from `tokenizerPath` when resuming), or an llm.c token shard.
 */
export async function prepareData(source: string, vocabSize: number, tokenizerPath: string | null): Promise<PreparedData> {
  if (source.endsWith('.bin')) {
    const tokens = Uint32Array.from(await readTokenShard(source));
    let max = 0;
    for (const t of tokens) max = Math.max(max, t);
    if (max >= vocabSize) throw new StepError(`data: shard ${source} holds token id ${max}, beyond --vocab-size ${vocabSize}`);
    const [train, validation] = splitTokens(tokens);
    return { tokenizer: null, train, validation, vocabSize, unigramPerplexity: unigramPerplexity(train, validation, vocabSize), description: `token shard ${source} (${tokens.length} tokens, 90/10 split)` };
  }
  let docs: { train: TextDocument[]; validation: TextDocument[] };
  let description: string;
  if (source === 'brown') {
    docs = await loadBrownCorpus();
    description = `Brown corpus (${docs.train.length} training / ${docs.validation.length} validation documents)`;
  } else {
    if (!existsSync(source)) throw new StepError(`data: "${source}" does not exist; use brown, a .txt file, a folder of .txt files, or a .bin token shard`);
    docs = await loadTextFiles(source);
    description = `text ${source} (${docs.train.length} training / ${docs.validation.length} validation documents)`;
  }
  const tokenizer = tokenizerPath && existsSync(tokenizerPath)
    ? await BpeTokenizer.load(tokenizerPath)
    : BpeTokenizer.train(docs.train.map((d) => d.text), { vocabSize, specialTokens: [EOT] });
  let train = encodeDocuments(tokenizer, docs.train, { eot: EOT });
  let validation = encodeDocuments(tokenizer, docs.validation, { eot: EOT });
  if (validation.length === 0) [train, validation] = splitTokens(train);
  const v = tokenizer.vocabSize;
  return { tokenizer, train, validation, vocabSize: v, unigramPerplexity: unigramPerplexity(train, validation, v), description };
}

export const tokenizerFile = (dir: string) => join(dir, 'tokenizer.json');
