/**
 * Loading a checkpoint folder for `step eval`, `step grads` and `step generate`: config.json (Hugging
 * Face LlamaConfig keys), model.safetensors (HF tensor names), tokenizer.json when present, and
 * trainer-state.json when present (for the LoRA alpha of a STEP or ReLoRA checkpoint). A run folder
 * (runs/NAME, with latest.json) stands for its latest checkpoint. The model's structure comes from
 * the files themselves: layers whose linears carry `lora_A` / `lora_B` tensors are built frozen with
 * adapters of that rank, as training left them, so the trainable tensors are the ones training had.
 */
import { existsSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import type { Backend } from '../../engine/backend.js';
import type { DeviceChoice } from '../../engine/device.js';
import { initDevice } from '../../engine/device.js';
import { StepError } from '../../engine/errors.js';
import type { ParsedArgs } from '../cli-args.js';
import { choiceFlag, flagValue, hasFlag, parseArgs, switches, UsageError, valued } from '../cli-args.js';
import { openSafetensors } from '../../engine/safetensors.js';
import type { LlamaConfig } from '../../models/config.js';
import { initLlama } from '../../models/llama.js';
import type { LlamaModel } from '../../models/llama.js';
import { BpeTokenizer } from '../../models/tokenizer/bpe.js';
import { freezeLayersWithLora } from '../freeze.js';
import type { TrainerState } from '../train/checkpoint.js';
import { FINAL_DIR, finalModelDir } from '../train/final-model.js';
import { latestCheckpoint, loadModelWeights, readCheckpointConfig, readTrainerState } from '../train/checkpoint.js';

export interface LoadedCheckpoint {
  /** The checkpoint folder (a run folder resolved to its latest checkpoint). */
  dir: string;
  config: LlamaConfig;
  model: LlamaModel;
  /** null when the folder has no tokenizer.json (a run on a pre-tokenized .bin shard). */
  tokenizer: BpeTokenizer | null;
  /** null when the folder has no trainer-state.json (e.g. weights written by another framework). */
  state: TrainerState | null;
}

/** `--checkpoint DIR`: a checkpoint folder, or a run folder (its final model when it finished, else its latest checkpoint). */
export async function resolveCheckpointDir(arg: string): Promise<string> {
  const dir = resolve(arg);
  if (!existsSync(dir)) throw new StepError(`checkpoint folder ${dir} does not exist; pass a folder such as runs/NAME/checkpoints/step-000600 (or the run folder runs/NAME)`);
  if (!statSync(dir).isDirectory()) throw new StepError(`${dir} is a file; --checkpoint takes a checkpoint folder (holding config.json and model.safetensors)`);
  if (!existsSync(join(dir, 'config.json')) && existsSync(join(dir, 'latest.json'))) {
    const final = finalModelDir(dir); // a finished run's plain model (adapters merged)
    if (final) return final;
    const latest = await latestCheckpoint(dir);
    if (latest) return latest;
  }
  return dir;
}

/** LoRA structure recorded in model.safetensors: the frozen layers and the adapters' rank. */
async function loraInFile(dir: string): Promise<{ layers: number[]; rank: number } | null> {
  const path = join(dir, 'model.safetensors');
  if (!existsSync(path)) throw new StepError(`${dir}: no model.safetensors; the checkpoint is incomplete (copy it again, or use another step-NNNNNN folder)`);
  const reader = await openSafetensors(path);
  try {
    const layers = new Set<number>();
    let rank = 0;
    for (const name of reader.names) {
      const m = /^model\.layers\.(\d+)\..*\.lora_A$/.exec(name);
      if (!m) continue;
      layers.add(Number(m[1]));
      const r = reader.entry(name).shape[0]!;
      if (rank && r !== rank) throw new StepError(`${path}: LoRA adapters of different ranks (${rank} and ${r}, ${name}); not a checkpoint of this library`);
      rank = r;
    }
    return layers.size ? { layers: [...layers].sort((a, b) => a - b), rank } : null;
  } finally {
    await reader.close();
  }
}

/**
 * Reads and checks a checkpoint and loads its model (f32) onto `device`. Errors name the file and
 * what to do: a missing config.json or model.safetensors, a truncated file, tensors that do not fit
 * the config, a tokenizer whose vocabulary differs from config.json's vocab_size.
 */
export async function loadCheckpointModel(dirArg: string, device: Backend): Promise<LoadedCheckpoint> {
  const dir = await resolveCheckpointDir(dirArg);
  const config = await readCheckpointConfig(dir);
  const tokPath = join(dir, 'tokenizer.json');
  const tokenizer = existsSync(tokPath) ? await BpeTokenizer.load(tokPath) : null;
  if (tokenizer && tokenizer.vocabSize !== config.vocab_size) {
    throw new StepError(`vocabulary mismatch in ${dir}: tokenizer.json has ${tokenizer.vocabSize} tokens but config.json says vocab_size ${config.vocab_size}; the two files come from different runs`);
  }
  const state = existsSync(join(dir, 'trainer-state.json')) ? await readTrainerState(dir, { layers: config.num_hidden_layers }) : null;
  const lora = await loraInFile(dir);
  const model = initLlama(config, { device, seed: 0 });
  try {
    if (lora) {
      if (!state?.lora) throw new StepError(`${join(dir, 'model.safetensors')} holds LoRA adapters but ${join(dir, 'trainer-state.json')} (which records their alpha) is missing or has none`);
      freezeLayersWithLora(model, lora.layers, { rank: lora.rank, alpha: state.lora.alpha, seed: 0 });
    }
    await loadModelWeights(model, dir);
  } catch (e) {
    model.dispose();
    throw e;
  }
  return { dir, config, model, tokenizer, state };
}

/** Frees the model and, on WebGPU, the device (so the process can exit at once). */
export function closeCheckpoint(c: LoadedCheckpoint, device: Backend): void {
  c.model.dispose();
  if (device.name === 'webgpu') device.destroy();
}

/** The options every checkpoint command shares. */
export interface CommonArgs {
  checkpoint: string;
  device: DeviceChoice;
  json: boolean;
}

/**
 * Parses a checkpoint command's arguments with the shared parser (--flag value, --flag=value,
 * --help), against the valued flags and switches (default --json) it knows.
 */
export function parseFlags(command: string, usage: string, args: readonly string[], valuedFlags: readonly string[], booleans: readonly string[] = ['--json']): ParsedArgs {
  return parseArgs({ command, usage, flags: [...valued(valuedFlags, { '--device': DEVICE_CHOICES }), ...switches(booleans)] }, args);
}

const DEVICE_CHOICES = ['auto', 'webgpu', 'cpu'] as const;

/** --checkpoint (required), --device (auto|webgpu|cpu, default auto), --json. */
export function commonArgs(command: string, usage: string, flags: ParsedArgs): CommonArgs {
  const checkpoint = flagValue(flags, '--checkpoint');
  if (!checkpoint) throw new UsageError(`step ${command}: --checkpoint DIR is required\n${usage}`);
  const device = choiceFlag(command, flags, '--device', DEVICE_CHOICES) ?? 'auto';
  return { checkpoint, device, json: hasFlag(flags, '--json') };
}

/**
 * Opens the device the user asked for (auto: WebGPU when present, else cpu with a note on stderr)
 * and loads the checkpoint onto it; on failure the device is released before the error is thrown.
 */
export async function openCheckpoint(dirArg: string, choice: DeviceChoice): Promise<{ device: Backend; ckpt: LoadedCheckpoint }> {
  const device = await initDevice(choice);
  try {
    return { device, ckpt: await loadCheckpointModel(dirArg, device) };
  } catch (e) {
    if (device.name === 'webgpu') device.destroy();
    throw e;
  }
}

/** The run's train-config.json next to a checkpoint (runs/NAME/checkpoints/step-N/../../), or null. */
export async function runTrainConfig(dir: string): Promise<Record<string, unknown> | null> {
  // runs/NAME/checkpoints/step-N or runs/NAME/final (a finished run's plain model)
  const path = basename(dir) === FINAL_DIR ? join(dir, '..', 'train-config.json') : join(dir, '..', '..', 'train-config.json');
  if (!existsSync(path)) return null;
  try {
    return JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>;
  } catch {
    return null;
  }
}
