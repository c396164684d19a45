/**
 * The model a finished run hands over: `runs/NAME/final/`, a plain Hugging Face
 * `LlamaForCausalLM` folder (model.safetensors with HF names and no LoRA tensors, config.json
 * with the full layer count, tokenizer.json) and `final.json` naming the step it was made at.
 * A STEP or ReLoRA run merges its adapters into their weights first (in place: the run is over).
 * The checkpoints stay as they are (adapters and optimizer state), so `--resume` can still
 * continue the run; a resumed run writes final/ again at its end. `step eval` / `step generate`
 * given the run folder use final/ when it is the latest step's model.
 */
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../../engine/atomic-write.js';
import { saveSafetensors } from '../../engine/safetensors.js';
import { configToJSON } from '../../models/config.js';
import { mergeLora } from '../freeze.js';
import { checkpointWriteError, renameIntoPlace } from './checkpoint.js';
import type { Run } from './trainer.js';

export const FINAL_DIR = 'final';
export const FINAL_MARKER = 'final.json';

/** Merges the adapters and writes runs/NAME/final/ atomically (temp folder, then rename); returns its path. */
export async function writeFinalModel(run: Run): Promise<string> {
  const merged = mergeLora(run.model);
  const dir = join(run.runDir, FINAL_DIR);
  const tmp = `${dir}.tmp-${process.pid}`;
  const tensors = run.model.hfTensors(); // a table split into row blocks is one tensor of the file
  try {
    await rm(tmp, { recursive: true, force: true });
    await mkdir(tmp);
    await saveSafetensors(join(tmp, 'model.safetensors'), new Map(tensors), { format: 'pt' });
    await writeFileAtomic(join(tmp, 'config.json'), JSON.stringify(configToJSON({ ...run.config, num_hidden_layers: run.model.layers.length }), null, 2) + '\n');
    if (run.data.tokenizer) await run.data.tokenizer.save(join(tmp, 'tokenizer.json'));
    await writeFileAtomic(join(tmp, FINAL_MARKER), JSON.stringify({ step: run.state.step, method: run.options.method, mergedAdapters: merged, layers: run.model.layers.length }, null, 2) + '\n');
  } catch (e) {
    await rm(tmp, { recursive: true, force: true }).catch(() => {});
    throw checkpointWriteError(e, tmp, dir);
  }
  await renameIntoPlace(tmp, dir); // a resumed run's new final/ replaces the old one safely
  run.log.write('final', { step: run.state.step, dir, mergedAdapters: merged, layers: run.model.layers.length, tensors: tensors.length });
  run.progress.note(`final model (plain LlamaForCausalLM${merged ? `, ${merged} adapters merged` : ''}): ${dir}`);
  return dir;
}

/** A run folder's final/ when it holds the model of the run's latest checkpoint, else null. */
export function finalModelDir(runDir: string): string | null {
  const dir = join(runDir, FINAL_DIR);
  try {
    const final = JSON.parse(readFileSync(join(dir, FINAL_MARKER), 'utf8')) as { step?: unknown };
    const latest = JSON.parse(readFileSync(join(runDir, 'latest.json'), 'utf8')) as { step?: unknown };
    return final.step === latest.step && existsSync(join(dir, 'model.safetensors')) ? dir : null;
  } catch {
    return null; // no final model, or a stale or unreadable one: the latest checkpoint stands
  }
}
