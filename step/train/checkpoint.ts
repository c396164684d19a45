import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { StepError } from '../../engine/errors.js';
import type { Optimizer, BaseHyper } from '../../engine/optim/optimizer.js';
import { loadOptimizerState, saveOptimizerState } from '../../engine/optim/state-io.js';
import { openSafetensors, saveSafetensors } from '../../engine/safetensors.js';
import { formatShape } from '../../engine/shape.js';
import type { LlamaConfig } from '../../models/config.js';
import { configToJSON, parseConfigJSON } from '../../models/config.js';
import { writeFileAtomic } from '../../engine/atomic-write.js';
import type { LlamaModel } from '../../models/llama.js';
import type { BpeTokenizer } from '../../models/tokenizer/bpe.js';

export const TRAINER_STATE_FORMAT = 'step-webgpu/trainer-state';

/** What a checkpoint needs beyond the tensors to resume exactly. */
export interface TrainerState {
  format: typeof TRAINER_STATE_FORMAT;
  version: 1;
  method: 'vanilla' | 'step' | 'relora';
  /** Optimizer steps done (the sampler's step equals it). */
  step: number;
  tokens: number;
  sampler: { seed: number; step: number };
  /** STEP: the stage being trained (0-based) and its first step; layers frozen with LoRA. */
  stage: number;
  stageStartStep: number;
  frozenLayers: number[];
  lora: { rank: number; alpha: number } | null;
  /** ReLoRA: the step of the last merge-and-restart. */
  lastRestart: number;
  lastLoss: number | null;
  lastValLoss: number | null;
}

export const checkpointName = (step: number) => `step-${String(step).padStart(6, '0')}`;

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
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  await saveSafetensors(join(tmp, 'model.safetensors'), new Map(parts.model.namedTensors()), { format: 'pt' });
  await writeFileAtomic(join(tmp, 'config.json'), JSON.stringify(configToJSON(parts.config), null, 2) + '\n');
  if (parts.tokenizer) await parts.tokenizer.save(join(tmp, 'tokenizer.json'));
  if (parts.optimizer) await saveOptimizerState(parts.optimizer, join(tmp, 'optimizer.safetensors'));
  await writeFileAtomic(join(tmp, 'trainer-state.json'), JSON.stringify(parts.state, null, 2) + '\n');
  if (existsSync(final)) {
    const old = `${final}.old-${process.pid}`;
    await rename(final, old);
    await rename(tmp, final);
    await rm(old, { recursive: true, force: true });
  } else {
    await rename(tmp, final);
  }
  await writeFileAtomic(join(runDir, 'latest.json'), JSON.stringify({ checkpoint: name, step: parts.state.step }) + '\n');
  return final;
}

/** The folder of the run's latest complete checkpoint, or null when it has none. */
export async function latestCheckpoint(runDir: string): Promise<string | null> {
  const pointer = join(runDir, 'latest.json');
  if (!existsSync(pointer)) return null;
  let name: string;
  try {
    name = (JSON.parse(await readFile(pointer, 'utf8')) as { checkpoint: string }).checkpoint;
  } catch (e) {
    throw new StepError(`${pointer} is corrupt (${(e as Error).message}); point it at a folder in ${join(runDir, 'checkpoints')}`);
  }
  const dir = join(runDir, 'checkpoints', name);
  if (!existsSync(join(dir, 'trainer-state.json'))) throw new StepError(`${pointer} names ${dir}, which is missing or incomplete`);
  return dir;
}

export async function readTrainerState(dir: string): Promise<TrainerState> {
  const path = join(dir, 'trainer-state.json');
  let s: TrainerState;
  try {
    s = JSON.parse(await readFile(path, 'utf8')) as TrainerState;
  } catch (e) {
    throw new StepError(`${path}: cannot read the trainer state (${(e as Error).message})`);
  }
  if (s.format !== TRAINER_STATE_FORMAT || s.version !== 1) throw new StepError(`${path}: not a trainer state of this library (format ${JSON.stringify(s.format)}, version ${s.version})`);
  return s;
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
    const named = model.namedTensors();
    const want = new Set(named.map(([n]) => n));
    const missing = named.map(([n]) => n).filter((n) => !reader.names.includes(n));
    const extra = reader.names.filter((n) => !want.has(n));
    if (missing.length || extra.length) {
      throw new StepError(`${path} does not fit this model (another method, stage or config?): ` +
        `${missing.length ? `missing ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ` and ${missing.length - 5} more` : ''}` : ''}` +
        `${missing.length && extra.length ? '; ' : ''}${extra.length ? `unexpected ${extra.slice(0, 5).join(', ')}${extra.length > 5 ? ` and ${extra.length - 5} more` : ''}` : ''}`);
    }
    for (const [name, t] of named) {
      const e = reader.entry(name);
      if (e.shape.join() !== t.shape.join()) throw new StepError(`${path}: ${name} is ${formatShape(e.shape)} in the file but ${formatShape(t.shape)} in the model`);
      t.backend.write(t.storage, await reader.values(name));
    }
  } finally {
    await reader.close();
  }
}

export async function loadOptimizer<H extends BaseHyper>(optimizer: Optimizer<H>, dir: string): Promise<void> {
  await loadOptimizerState(optimizer, join(dir, 'optimizer.safetensors'));
}
