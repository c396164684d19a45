import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { StepError } from '../../engine/errors.js';
import { describeNonFinite, findNonFinite } from '../../engine/finite-check.js';
import type { Optimizer, BaseHyper } from '../../engine/optim/optimizer.js';
import { loadOptimizerState, saveOptimizerState } from '../../engine/optim/state-io.js';
import { openSafetensors, readRowBlocks, saveSafetensors } from '../../engine/safetensors.js';
import { formatShape } from '../../engine/shape.js';
import type { LlamaConfig } from '../../models/config.js';
import { configToJSON, parseConfigJSON } from '../../models/config.js';
import { writeFileAtomic } from '../../engine/atomic-write.js';
import type { LlamaModel } from '../../models/llama.js';
import type { BpeTokenizer } from '../../models/tokenizer/bpe.js';
import type { TrainerState, TrainerStateContext } from './checkpoint-files.js';
import { CHECKPOINT_NAME, checkpointName, parseLatestPointer, parseTrainerState } from './checkpoint-files.js';

export type { LatestPointer, TrainerState, TrainerStateContext } from './checkpoint-files.js';
export { checkpointName, parseLatestPointer, parseTrainerState, TRAINER_STATE_FORMAT } from './checkpoint-files.js';

/**
 * Writes a checkpoint folder atomically: everything goes into a temp folder first, which is then
 * renamed into place, and only then does `latest.json` point at it. A run killed at any moment
 * leaves either the previous checkpoint or the new one, never a partial one.
 */
export async function saveCheckpoint<H extends BaseHyper>(runDir: string, parts: {
  model: LlamaModel; config: LlamaConfig; optimizer: Optimizer<H> | null; tokenizer: BpeTokenizer | null; state: TrainerState;
}): Promise<string> {
  const name = checkpointName(parts.state.step);
  const final = join(runDir, 'checkpoints', name);
  const tmp = `${final}.tmp-${process.pid}`;
  try {
    await rm(tmp, { recursive: true, force: true });
    await mkdir(tmp, { recursive: true });
    await saveSafetensors(join(tmp, 'model.safetensors'), new Map(parts.model.hfTensors()), { format: 'pt' });
    await writeFileAtomic(join(tmp, 'config.json'), JSON.stringify(configToJSON(parts.config), null, 2) + '\n');
    if (parts.tokenizer) await parts.tokenizer.save(join(tmp, 'tokenizer.json'));
    if (parts.optimizer) await saveOptimizerState(parts.optimizer, join(tmp, 'optimizer.safetensors'));
    await writeFileAtomic(join(tmp, 'trainer-state.json'), JSON.stringify(parts.state, null, 2) + '\n');
  } catch (e) {
    await rm(tmp, { recursive: true, force: true }).catch(() => {});
    throw checkpointWriteError(e, tmp, final);
  }
  await renameIntoPlace(tmp, final);
  try {
    await writeFileAtomic(join(runDir, 'latest.json'), JSON.stringify({ checkpoint: name, step: parts.state.step }) + '\n');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'ENOSPC' && code !== 'EDQUOT') throw e;
    throw new StepError(`${final} is complete, but ${join(runDir, 'latest.json')} could not point at it: disk full (${code}); it still names the previous checkpoint. Free space, then continue with --resume`);
  }
  return final;
}

/**
 * Puts a complete temp folder where `final` is: an existing `final` is moved aside (`.old-PID`,
 * which the run-folder cleaner restores if the process dies between the renames), then removed.
 */
export async function renameIntoPlace(tmp: string, final: string): Promise<void> {
  if (existsSync(final)) {
    const old = `${final}.old-${process.pid}`;
    await rename(final, old);
    await rename(tmp, final);
    await rm(old, { recursive: true, force: true });
  } else {
    await rename(tmp, final);
  }
}

/**
 * The error to report when writing a checkpoint's temp folder failed (the folder is already
 * removed): a full disk or a read-only folder in words, with the paths; anything else as it came.
 */
export function checkpointWriteError(e: unknown, tmp: string, final: string): unknown {
  const code = (e as NodeJS.ErrnoException | null)?.code;
  const where = `writing checkpoint ${final} failed`;
  if (code === 'ENOSPC' || code === 'EDQUOT') {
    return new StepError(`${where}: disk full (${code}); removed the partial ${tmp}; the previous checkpoint is intact. Free space on that disk, then continue with --resume`);
  }
  if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') {
    return new StepError(`${where}: the folder is not writable (${code}); removed the partial ${tmp}. Fix the permissions of ${join(final, '..')}, then continue with --resume`);
  }
  return e;
}

/** The folder of the run's latest complete checkpoint (from latest.json), or null when it has none. */
export async function latestCheckpoint(runDir: string): Promise<string | null> {
  const pointer = join(runDir, 'latest.json');
  if (!existsSync(pointer)) return null;
  let text: string;
  try {
    text = await readFile(pointer, 'utf8');
  } catch (e) {
    throw new StepError(`${pointer}: cannot be read (${(e as Error).message})`);
  }
  const { checkpoint } = parseLatestPointer(text, pointer);
  const dir = join(runDir, 'checkpoints', checkpoint);
  if (!existsSync(join(dir, 'trainer-state.json'))) throw new StepError(`${pointer} names ${dir}, which is missing or incomplete; point it at a complete folder in ${join(runDir, 'checkpoints')}`);
  return dir;
}

/** Reads a checkpoint's trainer-state.json, checking every field (and the step against the folder's name). */
export async function readTrainerState(dir: string, ctx: Omit<TrainerStateContext, 'folderStep'> = {}): Promise<TrainerState> {
  const path = join(dir, 'trainer-state.json');
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new StepError(`${path}: cannot read the trainer state (${(e as Error).message})`);
  }
  const m = CHECKPOINT_NAME.exec(basename(dir));
  return parseTrainerState(text, path, { ...ctx, folderStep: m ? Number(m[1]) : undefined });
}

/**
 * The newest checkpoint at or before `atMost` whose trainer state is valid and whose recorded
 * training loss is finite: where a run that hit NaN should resume from. null when there is none.
 */
export async function lastGoodCheckpoint(runDir: string, atMost: number): Promise<string | null> {
  const folder = join(runDir, 'checkpoints');
  if (!existsSync(folder)) return null;
  const steps = (await readdir(folder)).flatMap((n) => {
    const m = CHECKPOINT_NAME.exec(n);
    return m && Number(m[1]) <= atMost ? [Number(m[1])] : [];
  }).sort((a, b) => b - a);
  for (const step of steps) {
    const dir = join(folder, checkpointName(step));
    try {
      const s = await readTrainerState(dir);
      if (s.lastLoss !== null && Number.isFinite(s.lastLoss)) return dir;
    } catch {
      // an unreadable or corrupt state is no place to resume from: look further back
    }
  }
  return null;
}

export async function readCheckpointConfig(dir: string): Promise<LlamaConfig> {
  const path = join(dir, 'config.json');
  if (!existsSync(path)) throw new StepError(`${dir}: no config.json; is this a checkpoint folder?`);
  return parseConfigJSON(await readFile(path, 'utf8'), path);
}

/**
 * Loads a checkpoint's weights into a model built with the same structure (layers, LoRA
 * adapters). Every tensor must be present with the same shape, and the file must hold nothing
 * else: a checkpoint of another method or stage is refused with the names that differ.
 */
export async function loadModelWeights(model: LlamaModel, dir: string): Promise<void> {
  const path = join(dir, 'model.safetensors');
  if (!existsSync(path)) throw new StepError(`${dir}: no model.safetensors`);
  const reader = await openSafetensors(path);
  try {
    const named = model.hfTensors(); // a table split into row blocks is one tensor of the file
    const want = new Set(named.map(([n]) => n));
    const missing = named.map(([n]) => n).filter((n) => !reader.names.includes(n));
    const extra = reader.names.filter((n) => !want.has(n));
    if (missing.length || extra.length) {
      throw new StepError(`${path} does not fit this model (another method, stage or config?): ` +
        `${missing.length ? `missing ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ` and ${missing.length - 5} more` : ''}` : ''}` +
        `${missing.length && extra.length ? '; ' : ''}${extra.length ? `unexpected ${extra.slice(0, 5).join(', ')}${extra.length > 5 ? ` and ${extra.length - 5} more` : ''}` : ''}`);
    }
    for (const [name, blocks] of named) {
      const e = reader.entry(name);
      const shape = [blocks.reduce((n, t) => n + t.shape[0]!, 0), ...blocks[0]!.shape.slice(1)];
      if (e.shape.join() !== shape.join()) throw new StepError(`${path}: ${name} is ${formatShape(e.shape)} in the file but ${formatShape(shape)} in the model`);
      await readRowBlocks(reader, name, blocks);
    }
  } finally {
    await reader.close();
  }
  const bad = await findNonFinite(model.namedTensors(), model.backend);
  if (bad.length) throw new StepError(`${path}: ${describeNonFinite(bad)}; the checkpoint holds NaN/Inf weights. Use an earlier step-NNNNNN folder (or, for a run, the last checkpoint with a finite loss)`);
}

export async function loadOptimizer<H extends BaseHyper>(optimizer: Optimizer<H>, dir: string): Promise<void> {
  await loadOptimizerState(optimizer, join(dir, 'optimizer.safetensors'));
}
