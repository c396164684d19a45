/**
 * What `step train` checks before it creates or changes anything: the run's name, the data splits
 * against the window length, the sequence length against the model's context, and the largest
 * buffers a training step will need against what the device can bind.
 */
import type { Backend } from '../../engine/backend.js';
import { formatBytes } from '../../engine/memory.js';
import { StepError } from '../../engine/errors.js';
import type { LlamaConfig } from '../../models/config.js';
import type { PreparedData } from './data.js';
import type { TrainOptions } from './options.js';

/** A run name is one plain folder name: letters, digits, '.', '-', '_', and not '.' or '..'. */
export function checkRunName(name: string, flag: string): void {
  if (!/^[\w.-]+$/.test(name) || /^\.+$/.test(name)) {
    throw new StepError(`step train: ${flag} takes a plain run name (letters, digits, '.', '-', '_'; not a path, '.' or '..'), got "${name}"`);
  }
}

/**
 * Sequence length against the model's context. The same rule `step eval` and `step grads` apply:
 * positions beyond max_position_embeddings are refused, never silently extrapolated.
 */
export function checkSeqLen(seqLen: number, config: LlamaConfig, where: string): void {
  if (seqLen > config.max_position_embeddings) {
    throw new StepError(`${where}: --seq-len ${seqLen} is beyond the model's max_position_embeddings ${config.max_position_embeddings}; lower --seq-len (or, for a new run, raise it with --set max_position_embeddings=${seqLen})`);
  }
}

/** Every split must hold at least one window of seq-len + 1 tokens (inputs and the shifted targets). */
export function checkDataSplits(data: PreparedData, seqLen: number): void {
  const need = seqLen + 1;
  for (const [split, tokens] of [['training', data.train], ['validation', data.validation]] as const) {
    if (tokens.length < need) {
      throw new StepError(`data: the ${split} split of ${data.description} has ${tokens.length} tokens, fewer than one window of --seq-len ${seqLen} + 1 = ${need}; use more data or a lower --seq-len`);
    }
  }
}

/** One buffer a training step allocates, and the flags that shrink it. */
export interface StepBuffer {
  what: string;
  bytes: number;
  lower: string;
}

/**
 * The largest single buffers one step of this run allocates (for the largest model the run
 * reaches): the embedding gather, a row of logits, a row of attention scores, an embedding row
 * (the embedding and head are split into row blocks), the largest layer weight.
 */
export function largestStepBuffers(config: LlamaConfig, o: Pick<TrainOptions, 'batchSize' | 'seqLen' | 'precision'>): StepBuffer[] {
  const bytes = o.precision === 'mixed' ? 2 : 4;
  const B = o.batchSize, T = o.seqLen, H = config.hidden_size, V = config.vocab_size, heads = config.num_attention_heads;
  return [
    { what: `the embedding gather [${B * T}, ${H}]`, bytes: B * T * H * bytes, lower: '--batch-size or --seq-len' },
    // the LM head and the loss run fused over row chunks (autograd/ops/linear-cross-entropy.ts): one row at the least
    { what: `one row of logits [1, ${V}]`, bytes: V * bytes, lower: '--vocab-size' },
    // attention works through query rows in chunks (autograd/ops/attention.ts): its smallest chunk is one row
    { what: `one row of attention scores [${B}, ${heads}, 1, ${T}]`, bytes: B * heads * T * bytes, lower: '--batch-size or --seq-len' },
    // the embedding and LM head are split into row blocks of at most one buffer (engine/row-blocks.ts),
    // sized by their f32 rows (master weights and Adam moments): one row at the least
    { what: `one embedding row [1, ${H}] in f32`, bytes: H * 4, lower: 'hidden_size (--set)' },
    { what: `an MLP weight [${config.intermediate_size}, ${H}]`, bytes: config.intermediate_size * H * bytes, lower: 'intermediate_size (--set) or a smaller --preset' },
  ];
}

/** The largest storage buffer `device` can bind (the cpu backend keeps the same limit, so both fail alike). */
export function maxBindingBytes(device: Backend): number | null {
  return device.maxBufferBytes;
}

/** Throws naming the buffer, its size, the limit and the flag to lower when a step's buffer cannot be bound. */
export function checkDeviceLimits(buffers: readonly StepBuffer[], limit: number | null, device: string): void {
  if (limit === null) return;
  const over = buffers.filter((b) => b.bytes > limit).sort((a, b) => b.bytes - a.bytes)[0];
  if (over) {
    throw new StepError(`step train: ${over.what} needs ${formatBytes(over.bytes)}, beyond the ${formatBytes(limit)} the device (${device}) can hold in one buffer; lower ${over.lower}`);
  }
}
