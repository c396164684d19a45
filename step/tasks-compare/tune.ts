/**
 * The instruction tuning of one compared model, through `step sft`'s programmatic entry: the same
 * options for every model except the checkpoint and the run's name (so every model is tuned on the
 * same records, in the same order: a batch is a pure function of the data, --sft-seed and the
 * batch size), in OUT/NAME/sft/KIND-seedS. A finished tuning run is reused, an interrupted one
 * resumed from its last checkpoint, one that died before its first checkpoint started again; a run
 * folder made with other settings is refused.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { StepError } from '../../engine/errors.js';
import type { SftOptions } from '../sft/options.js';
import { DEFAULT_SFT_OPTIONS } from '../sft/options.js';
import { sft } from '../sft/sft.js';
import { SFT_CONFIG } from '../sft/start.js';
import { finalModelDir } from '../train/final-model.js';
import type { CompareOptions } from './options.js';

/** The tuning options of one model: everything but `checkpoint` and `name` is the same for every model. */
export function tuningOptions(o: CompareOptions, checkpoint: string, data: string, runsDir: string, name: string): SftOptions {
  return {
    ...DEFAULT_SFT_OPTIONS, checkpoint, data, runsDir, name, template: o.template, steps: o.sftSteps, epochs: o.sftEpochs, lr: o.sftLr,
    batchSize: o.sftBatch, seed: o.sftSeed, loraRank: o.loraRank, device: o.device,
    // a few checkpoints per run, so an interrupted comparison resumes close to where it stopped
    checkpointEvery: o.sftSteps ? Math.max(1, Math.ceil(o.sftSteps / 4)) : 50,
  };
}

/** Keys a finished or resumed tuning run must share with this comparison's (resolved as step sft saves them). */
function mismatches(saved: SftOptions, wanted: SftOptions): (keyof SftOptions)[] {
  const skip = new Set<keyof SftOptions>(['name', 'runsDir', 'device', 'stopAfter', 'seqLen', ...(wanted.steps === 0 ? ['steps' as const] : [])]);
  const want: SftOptions = { ...wanted, checkpoint: resolve(wanted.checkpoint), data: resolve(wanted.data) };
  return (Object.keys(want) as (keyof SftOptions)[]).filter((k) => !skip.has(k) && JSON.stringify(saved[k]) !== JSON.stringify(want[k]));
}

export type TuningStatus = 'reused' | 'resumed' | 'trained';

/** Tunes (or reuses, or resumes) the model; returns the tuned model's folder (RUN/final). */
export async function tuneModel(options: SftOptions): Promise<{ finalDir: string; status: TuningStatus }> {
  const runDir = join(options.runsDir, options.name);
  let status: TuningStatus = 'trained';
  if (existsSync(runDir)) {
    const configPath = join(runDir, SFT_CONFIG);
    if (existsSync(configPath)) {
      const saved = (JSON.parse(readFileSync(configPath, 'utf8')) as { options: SftOptions }).options;
      const differ = mismatches(saved, options);
      if (differ.length) {
        const now = (k: keyof SftOptions) => JSON.stringify(k === 'checkpoint' || k === 'data' ? resolve(options[k]) : options[k]);
        throw new StepError(`step experiment-tasks: ${runDir} was tuned with other settings (${differ.map((k) => `${k}: ${JSON.stringify(saved[k])} there, ${now(k)} now`).join('; ')}); delete that folder, or choose another --name`);
      }
      const done = finalModelDir(runDir);
      if (done) return { finalDir: done, status: 'reused' };
    }
    status = existsSync(join(runDir, 'latest.json')) ? 'resumed' : 'trained';
  }
  const r = status === 'resumed' ? await sft(options, options.name) : await sft(options, null, { overwrite: existsSync(runDir) });
  if (!r.finalDir) throw new StepError(`step experiment-tasks: the tuning run ${runDir} stopped before its end; rerun the command to resume it`);
  return { finalDir: r.finalDir, status };
}
