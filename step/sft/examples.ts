/**
 * Instruction examples as token ids, and the batches `step sft` trains on.
 *
 * An example is renderPrompt(record) encoded, then the output encoded and the end-of-text token
 * (prompt and response are encoded separately, so the boundary is exact and a prompt encodes as
 * it will at generation time). Inputs are tokens[0 .. n-1), targets tokens[1 .. n); a target
 * counts in the loss only when it is a response token (prompt targets are IGNORE_INDEX).
 *
 * Padding, not packing: a batch is its examples right-padded to the longest one in the batch
 * (pad id = end-of-text, target IGNORE_INDEX). Right padding under causal attention means no real
 * token ever attends to a pad, so the loss is exactly the unpadded examples' loss; nothing is
 * packed, so no example attends to another.
 *
 * Too long: an example of n tokens needs n - 1 <= seqLen positions. When the prompt leaves room
 * for at least one response token, the response is cut at the end (it then has no end-of-text
 * token); when the prompt alone fills the context, the example is skipped. Both are counted.
 *
 * Data order: epoch e is a permutation of the examples drawn from Philox keyed by (seed, e);
 * micro-batch i holds the examples at places i*B .. i*B+B-1 of the epochs laid end to end, so a
 * batch is a pure function of (seed, i) and a resumed run continues exactly.
 */
import { StepError } from '../../engine/errors.js';
import { philox4x32, splitU64 } from '../../engine/random.js';
import type { BpeTokenizer } from '../../models/tokenizer/bpe.js';
import type { InstructionRecord, TemplateName } from '../instruct/template.js';
import { renderPrompt } from '../instruct/template.js';
import type { TokenBatch } from '../train/data.js';
import { EOT, IGNORE_INDEX } from '../train/data.js';

export interface InstructionExample {
  /** Prompt then response token ids. */
  tokens: Int32Array;
  /** How many leading tokens are the prompt (their targets do not count). */
  promptLength: number;
}

export interface EncodedExamples {
  examples: InstructionExample[];
  /** Examples whose response was cut to fit --seq-len. */
  truncated: number;
  /** Examples dropped because their prompt alone fills --seq-len. */
  skipped: number;
}

/** The end-of-text id of a tokenizer, or a clear error naming where the tokenizer came from. */
export function endOfTextId(tokenizer: BpeTokenizer, where: string): number {
  if (!tokenizer.specialTokens.includes(EOT)) {
    throw new StepError(`${where}: the tokenizer has no ${EOT} token, which ends every response; use a checkpoint trained by step train (its tokenizer has it)`);
  }
  return tokenizer.specialId(EOT);
}

/** Encodes one record: prompt tokens, then response tokens and end-of-text. */
export function encodeExample(tokenizer: BpeTokenizer, record: InstructionRecord, template: TemplateName, eot: number): InstructionExample {
  const prompt = tokenizer.encode(renderPrompt(record, template));
  const response = tokenizer.encode(record.output);
  return { tokens: Int32Array.from([...prompt, ...response, eot]), promptLength: prompt.length };
}

/** Encodes every record and fits it to `seqLen` positions (see the file's comment). */
export function encodeExamples(tokenizer: BpeTokenizer, records: readonly InstructionRecord[], template: TemplateName, seqLen: number, eot: number): EncodedExamples {
  const examples: InstructionExample[] = [];
  let truncated = 0, skipped = 0;
  for (const record of records) {
    const ex = encodeExample(tokenizer, record, template, eot);
    if (ex.promptLength > seqLen) { skipped++; continue; }
    if (ex.tokens.length - 1 > seqLen) {
      examples.push({ tokens: ex.tokens.slice(0, seqLen + 1), promptLength: ex.promptLength });
      truncated++;
    } else {
      examples.push(ex);
    }
  }
  return { examples, truncated, skipped };
}

/** Right-pads examples into one batch [rows, longest - 1]; prompt and pad targets are IGNORE_INDEX. */
export function padBatch(examples: readonly InstructionExample[], padId: number): TokenBatch & { responseTokens: number } {
  const rows = examples.length;
  const cols = Math.max(...examples.map((e) => e.tokens.length - 1));
  const inputs = new Int32Array(rows * cols).fill(padId), targets = new Int32Array(rows * cols).fill(IGNORE_INDEX);
  let tokens = 0, responseTokens = 0;
  examples.forEach((e, r) => {
    const n = e.tokens.length - 1;
    for (let t = 0; t < n; t++) {
      inputs[r * cols + t] = e.tokens[t]!;
      // target t is token t + 1: it counts when token t + 1 belongs to the response
      if (t + 1 >= e.promptLength) { targets[r * cols + t] = e.tokens[t + 1]!; responseTokens++; }
    }
    tokens += n;
  });
  return { inputs, targets, rows, cols, tokens, responseTokens };
}

/** Permutation of 0..n-1 for epoch `epoch`: Fisher-Yates with Philox draws keyed by the seed. */
export function epochOrder(n: number, seed: number, epoch: number): Uint32Array {
  const order = Uint32Array.from({ length: n }, (_, i) => i);
  const [k0, k1] = splitU64(seed);
  for (let i = n - 1; i > 0; i--) {
    const [w] = philox4x32(i, epoch, 0x5f7, 0, k0, k1);
    const j = Math.floor((w / 2 ** 32) * (i + 1));
    const t = order[i]!; order[i] = order[j]!; order[j] = t;
  }
  return order;
}

/** The training batches of `step sft`: batch i of the shuffled epochs, padded (see the file's comment). */
export class InstructionBatches {
  private readonly orders = new Map<number, Uint32Array>();

  constructor(readonly examples: readonly InstructionExample[], readonly batchSize: number, readonly seed: number, readonly padId: number) {
    if (examples.length === 0) throw new StepError('step sft: no training examples');
  }

  /** Micro-batches that make `epochs` passes over the examples (the last one may reach into the next epoch). */
  batchesFor(epochs: number): number {
    return Math.max(1, Math.ceil((epochs * this.examples.length) / this.batchSize));
  }

  /** The example at place `k` of the epochs laid end to end. */
  exampleAt(k: number): InstructionExample {
    const n = this.examples.length, epoch = Math.floor(k / n);
    let order = this.orders.get(epoch);
    if (!order) {
      if (this.orders.size > 4) this.orders.clear();
      order = epochOrder(n, this.seed, epoch);
      this.orders.set(epoch, order);
    }
    return this.examples[order[k % n]!]!;
  }

  batchAt(index: number): TokenBatch {
    const picked = Array.from({ length: this.batchSize }, (_, r) => this.exampleAt(index * this.batchSize + r));
    return padBatch(picked, this.padId);
  }
}
