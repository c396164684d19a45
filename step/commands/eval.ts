import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { StepError } from '../../engine/errors.js';
import { flagValue, numberFlag } from '../cli-args.js';
import { prepareData } from '../train/data.js';
import { evaluate } from '../train/evaluate.js';
import { closeCheckpoint, commonArgs, openCheckpoint, parseFlags, resolveCheckpointDir, runTrainConfig } from './checkpoint-model.js';

export const EVAL_USAGE = `usage: step eval --checkpoint DIR [options]
  --checkpoint DIR       a checkpoint folder (runs/NAME/checkpoints/step-N) or a run folder (its latest)
  --data D               brown | FILE.txt | FOLDER | FILE.bin (default: the run's training data, else brown)
  --batch-size B --seq-len T --batches N   (default: the run's batch size, sequence length, eval batches)
  --device auto|webgpu|cpu   --json (one JSON object on stdout)
Validation loss and perplexity over the first N batches of non-overlapping windows of the data's
validation split (the windows training evaluates on), and the unigram baseline perplexity.`;

export interface EvalReport {
  checkpoint: string;
  step: number | null;
  data: string;
  device: string;
  batchSize: number;
  seqLen: number;
  batches: number;
  tokens: number;
  loss: number;
  perplexity: number;
  unigramPerplexity: number;
}

/** `step eval`: see EVAL_USAGE. Returns the exit code (errors throw, the CLI exits 1). `print` receives the output (default: stdout). */
export async function evalCommand(args: string[], print: (text: string) => void = (t) => process.stdout.write(t)): Promise<number> {
  const flags = parseFlags('eval', EVAL_USAGE, args, ['--checkpoint', '--data', '--batch-size', '--seq-len', '--batches', '--device']);
  if (flags.help) { print(EVAL_USAGE + '\n'); return 0; }
  const common = commonArgs('eval', EVAL_USAGE, flags);
  // the flags are checked before the checkpoint is read
  const requestedBatch = numberFlag('eval', flags, '--batch-size', { integer: true, min: 1 });
  const requestedSeq = numberFlag('eval', flags, '--seq-len', { integer: true, min: 1 });
  const requestedBatches = numberFlag('eval', flags, '--batches', { integer: true, min: 1 });
  const dir = await resolveCheckpointDir(common.checkpoint);
  const run = await runTrainConfig(dir);
  const fromRun = (k: string, dflt: number) => (typeof run?.[k] === 'number' ? (run[k] as number) : dflt);
  const data = flagValue(flags, '--data') ?? (typeof run?.data === 'string' ? run.data : 'brown');
  const batchSize = requestedBatch ?? fromRun('batchSize', 16);
  const batches = requestedBatches ?? fromRun('evalBatches', 8);

  const { device, ckpt } = await openCheckpoint(dir, common.device);
  try {
    const seqLen = requestedSeq ?? Math.min(fromRun('seqLen', 64), ckpt.config.max_position_embeddings);
    if (seqLen > ckpt.config.max_position_embeddings) {
      throw new StepError(`step eval: --seq-len ${seqLen} is beyond the model's max_position_embeddings ${ckpt.config.max_position_embeddings}`);
    }
    if (!data.endsWith('.bin') && !ckpt.tokenizer) {
      throw new StepError(`step eval: ${ckpt.dir} has no tokenizer.json, so text data (${data}) cannot be tokenized as in training; pass --data FILE.bin (token ids)`);
    }
    const tokenizerPath = join(ckpt.dir, 'tokenizer.json');
    const prepared = await prepareData(data, ckpt.config.vocab_size, existsSync(tokenizerPath) ? tokenizerPath : null);
    if (prepared.vocabSize !== ckpt.config.vocab_size) {
      throw new StepError(`vocabulary mismatch: the data's tokenizer has ${prepared.vocabSize} tokens but ${join(ckpt.dir, 'config.json')} says vocab_size ${ckpt.config.vocab_size}`);
    }
    const ev = await evaluate(ckpt.model, prepared.validation, { batch: batchSize, seqLen, maxBatches: batches });
    const report: EvalReport = {
      checkpoint: ckpt.dir, step: ckpt.state?.step ?? null, data: prepared.description, device: device.description,
      batchSize, seqLen, batches: Math.min(batches, Math.ceil(ev.tokens / (batchSize * seqLen))), tokens: ev.tokens,
      loss: ev.loss, perplexity: ev.perplexity, unigramPerplexity: prepared.unigramPerplexity,
    };
    if (common.json) {
      print(JSON.stringify(report) + '\n');
    } else {
      print([
        `checkpoint: ${report.checkpoint}${report.step !== null ? ` (step ${report.step})` : ''}`,
        `data: ${report.data}`,
        `device: ${report.device}`,
        `validation: ${report.tokens} tokens (${report.batches} batches of ${batchSize} x ${seqLen})`,
        `loss ${report.loss.toFixed(4)}  perplexity ${report.perplexity.toFixed(2)}  (unigram baseline ${report.unigramPerplexity.toFixed(2)})`,
      ].join('\n') + '\n');
    }
    return 0;
  } finally {
    closeCheckpoint(ckpt, device);
  }
}
