import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Backend } from '../../engine/backend.js';
import { fromArray } from '../../engine/creation.js';
import { StepError } from '../../engine/errors.js';
import { flagValue } from '../cli-args.js';
import { saveSafetensors } from '../../engine/safetensors.js';
import { scope } from '../../engine/scope.js';
import type { Tensor } from '../../engine/tensor.js';
import { backward } from '../../autograd/backward.js';
import type { LlamaModel } from '../../models/llama.js';
import { closeCheckpoint, commonArgs, openCheckpoint, parseFlags } from './checkpoint-model.js';

export const GRADS_USAGE = `usage: step grads --checkpoint DIR --tokens FILE.json --out FILE.safetensors [--device auto|webgpu|cpu] [--json]
The loss and the gradient of every trainable tensor of a checkpoint for one token batch, written as
safetensors under Hugging Face names (float32; the loss is in the metadata), to compare with other
frameworks. FILE.json is a JSON array of rows of token ids, all of one length L >= 2. As
LlamaForCausalLM(input_ids=rows, labels=rows) does, position t predicts token t+1: the inputs are
row[:-1], the targets row[1:], and the loss is the mean cross-entropy over the B * (L-1) targets.
Tensors frozen in the checkpoint (the old layers of a STEP stage, under LoRA) get no gradient; their
lora_A / lora_B adapters do.`;

/** Reads and checks the token batch: rows of equal length >= 2, ids in [0, vocab). */
export async function readTokenBatch(path: string, vocabSize: number): Promise<number[][]> {
  const file = resolve(path);
  if (!existsSync(file)) throw new StepError(`step grads: token file ${file} does not exist; write a JSON array of token-id rows, e.g. [[1, 2, 3], [4, 5, 6]]`);
  let rows: unknown;
  try {
    rows = JSON.parse(await readFile(file, 'utf8'));
  } catch (e) {
    throw new StepError(`step grads: ${file} is not valid JSON (${(e as Error).message}); expected an array of token-id rows, e.g. [[1, 2, 3], [4, 5, 6]]`);
  }
  if (!Array.isArray(rows) || rows.length === 0 || !rows.every(Array.isArray)) {
    throw new StepError(`step grads: ${file} must hold a non-empty JSON array of rows (arrays of token ids), e.g. [[1, 2, 3], [4, 5, 6]]`);
  }
  const len = (rows[0] as unknown[]).length;
  if (len < 2) throw new StepError(`step grads: ${file}: rows need at least 2 tokens (inputs are row[:-1], targets row[1:]), got ${len}`);
  (rows as unknown[][]).forEach((row, i) => {
    if (row.length !== len) throw new StepError(`step grads: ${file}: row ${i} has ${row.length} tokens but row 0 has ${len}; all rows must have the same length`);
    row.forEach((t, j) => {
      if (!Number.isInteger(t) || (t as number) < 0 || (t as number) >= vocabSize) {
        throw new StepError(`step grads: ${file}: row ${i}, position ${j}: ${JSON.stringify(t)} is not a token id of this model (integers 0..${vocabSize - 1})`);
      }
    });
  });
  return rows as number[][];
}

/**
 * Mean next-token loss of `rows` (inputs row[:-1], targets row[1:]) and the gradient of every
 * trainable tensor, by HF name (a table split into row blocks has one gradient per block, in row
 * order, written to the file as one tensor). The caller owns (and disposes) the returned gradients.
 */
export async function lossAndGrads(model: LlamaModel, rows: readonly number[][], device: Backend): Promise<{ loss: number; grads: Map<string, Tensor[]> }> {
  const b = rows.length, t = rows[0]!.length - 1;
  const named = model.hfTensors().filter(([, x]) => x[0]!.requiresGrad);
  for (const [, parts] of named) for (const x of parts) { x.grad?.dispose(); x.grad = null; }
  const loss = await scope(async () => {
    const ids = fromArray(rows.flatMap((r) => r.slice(0, -1)), [b, t], { dtype: 'i32', device });
    const targets = fromArray(rows.flatMap((r) => r.slice(1)), [b, t], { dtype: 'i32', device });
    const l = model.loss(ids, targets);
    backward(l);
    return l.item();
  });
  const grads = new Map<string, Tensor[]>();
  for (const [name, parts] of named) {
    if (parts.some((x) => !x.grad)) throw new StepError(`step grads: ${name} is trainable but received no gradient`);
    grads.set(name, parts.map((x) => x.grad!));
    for (const x of parts) x.grad = null;
  }
  return { loss, grads };
}

/** `step grads`: see GRADS_USAGE. `print` receives the output (default: stdout). */
export async function gradsCommand(args: string[], print: (text: string) => void = (t) => process.stdout.write(t)): Promise<number> {
  const flags = parseFlags('grads', GRADS_USAGE, args, ['--checkpoint', '--tokens', '--out', '--device']);
  if (flags.help) { print(GRADS_USAGE + '\n'); return 0; }
  const common = commonArgs('grads', GRADS_USAGE, flags);
  const tokensPath = flagValue(flags, '--tokens'), out = flagValue(flags, '--out');
  if (!tokensPath) throw new StepError(`step grads: --tokens FILE.json is required\n${GRADS_USAGE}`);
  if (!out) throw new StepError(`step grads: --out FILE.safetensors is required\n${GRADS_USAGE}`);
  const { device, ckpt } = await openCheckpoint(common.checkpoint, common.device);
  try {
    const rows = await readTokenBatch(tokensPath, ckpt.config.vocab_size);
    if (rows[0]!.length - 1 > ckpt.config.max_position_embeddings) {
      throw new StepError(`step grads: rows of ${rows[0]!.length} tokens give ${rows[0]!.length - 1} positions, beyond max_position_embeddings ${ckpt.config.max_position_embeddings}`);
    }
    const { loss, grads } = await lossAndGrads(ckpt.model, rows, device);
    try {
      const outPath = resolve(out);
      await saveSafetensors(outPath, grads, {
        format: 'pt', loss: String(loss), checkpoint: ckpt.dir, batch: String(rows.length), tokens_per_row: String(rows[0]!.length),
        convention: 'inputs row[:-1], targets row[1:]; mean cross-entropy; gradients of the trainable tensors',
      });
      if (common.json) print(JSON.stringify({ loss, out: outPath, tensors: [...grads.keys()] }) + '\n');
      else print(`loss ${loss}\n${grads.size} gradients written to ${outPath}\n`);
    } finally {
      for (const parts of grads.values()) for (const g of parts) g.dispose();
    }
    return 0;
  } finally {
    closeCheckpoint(ckpt, device);
  }
}
