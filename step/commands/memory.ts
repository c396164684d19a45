import { initDevice } from '../../engine/device.js';
import { StepError } from '../../engine/errors.js';
import { formatBytes } from '../../engine/memory.js';
import { setMemoryLimit } from '../../engine/memory-api.js';
import type { LlamaConfig } from '../../models/config.js';
import { PRESET_NAMES, presetConfig } from '../../models/config-presets.js';
import type { ParsedArgs } from '../cli-args.js';
import { choiceFlag, flagValue, hasFlag, numberFlag, parseArgs, parseSize, switches, UsageError, valued } from '../cli-args.js';
import type { CommandSpec } from '../cli-args.js';
import type { Precision } from '../planner/index.js';
import { PRECISIONS, maxGaloreRank, planStages } from '../planner/index.js';
import { checkPredictionFits } from '../memory/budget.js';
import { formatMeasurement, measurementJSON } from '../memory/format.js';
import type { MemoryMethod, MemoryRunOptions } from '../memory/measure.js';
import { MEMORY_METHODS, measureMemory, predictMemory } from '../memory/measure.js';
import { DEFAULT_TRAIN_OPTIONS, parseConfigOverride } from '../train/options.js';
import { largestStepBuffers } from '../train/start-checks.js';
import { targetConfig } from '../train/validate-options.js';

export const MEMORY_USAGE = `usage: step memory --preset NAME [--method vanilla|step|galore|relora] [--stages K | --split 9,8,7] [options]
  Builds the model on the device and runs real training steps (forward, backward, optimizer) on random
  tokens through every phase of the method's run: STEP's stages and transitions; GaLore's training,
  projector refresh included; ReLoRA's full-rank warm start, switch to LoRA, LoRA phase and a
  merge-and-restart. Prints, per phase, the measured peak per memory category beside the planner's
  prediction (model state must match to the byte, in every category) and the total peak with
  activations, then the whole run's peak (one window, never reset).
  --preset NAME              ${PRESET_NAMES.join(', ')}
  --set KEY=VALUE            override a LlamaConfig key of the preset (repeatable; e.g. --set num_hidden_layers=6)
  --vocab-size N             the vocabulary size (default the preset's)
  --method M                 vanilla (default), step, galore, relora
  --stages K                 STEP: K >= 2 stages, the planner's optimal split (engine mode)
  --split 9,8,7              STEP: these stage sizes instead
  --rank R                   STEP, ReLoRA: LoRA rank of the adapters (default ${DEFAULT_TRAIN_OPTIONS.loraRank}, step train's --lora-rank)
  --galore-rank R            GaLore: projection rank (default hidden/4, at most the smallest side of a linear; step train's)
  --galore-update-gap T      GaLore: steps between projector refreshes (default ${DEFAULT_TRAIN_OPTIONS.galoreUpdateGap}); the first step refreshes
  --batch B --seq T          tokens per step: B rows of T tokens (default 2 x 256)
  --precision mixed|fp32     default mixed (f16 weights and gradients, f32 master weights and Adam moments)
  --checkpoint-activations   recompute each decoder block in backward (far fewer activation bytes)
  --steps N                  training steps per stage (ReLoRA: in the warm start, before and after the restart;
                             default 1: each stage allocates its optimizer state and its gradients before the
                             first step, as a run holds them from its second step on, so the first step
                             already shows the steady training peak)
  --memory-limit SIZE        refuse, before allocating anything, a run whose model state exceeds SIZE (bytes,
                             or with a unit: 6GB, 5.5GiB, 512MB); past that check the device tracker stops
                             any allocation beyond it (out-of-memory error naming categories and labels)
  --seed S                   seed of the weights, adapters and random tokens (default 1)
  --device webgpu|cpu|auto   default auto
  --json                     print one JSON object (exact bytes) instead of the table
  Exit code 1 when a measured model state differs from the planner's prediction.`;

const VALUE_FLAGS = ['--preset', '--vocab-size', '--method', '--stages', '--split', '--rank', '--galore-rank', '--galore-update-gap',
  '--batch', '--seq', '--precision', '--steps', '--memory-limit', '--seed', '--device'] as const;
const DEVICES = ['auto', 'webgpu', 'cpu'] as const;

const SPEC: CommandSpec = {
  command: 'memory',
  usage: MEMORY_USAGE,
  flags: [
    ...valued(VALUE_FLAGS, { '--preset': PRESET_NAMES, '--method': MEMORY_METHODS, '--precision': PRECISIONS, '--device': DEVICES }),
    { name: '--set', takesValue: true, repeatable: true },
    ...switches(['--checkpoint-activations', '--json']),
  ],
};

export { parseSize }; // defined in cli-args.ts: step train takes --memory-limit too

function parseSplit(text: string): number[] {
  const parts = text.split(',').map((s) => (s.trim() === '' ? NaN : Number(s.trim())));
  if (parts.some((n) => !Number.isSafeInteger(n) || n < 1)) throw new UsageError(`step memory: --split must be positive integers separated by commas, e.g. 9,8,7, got ${JSON.stringify(text)}`);
  return parts;
}

function modelConfig(a: ParsedArgs): { config: LlamaConfig; source: string } {
  const preset = choiceFlag('memory', a, '--preset', PRESET_NAMES);
  if (preset === undefined) throw new UsageError(`step memory: give --preset NAME (${PRESET_NAMES.join(', ')})\n${MEMORY_USAGE}`);
  const overrides: Record<string, unknown> = {};
  for (const text of a.values.get('--set') ?? []) {
    const [key, value] = parseConfigOverride(text, 'memory');
    if (key in overrides) throw new UsageError(`step memory: --set ${key} given twice; give it once`);
    overrides[key] = value;
  }
  const vocab = numberFlag('memory', a, '--vocab-size', { integer: true, min: 2 });
  const checked = targetConfig({ preset, configOverrides: overrides }, 'memory'); // --set keys and values refused here
  const config = vocab === undefined ? checked : presetConfig(preset, { ...overrides, vocab_size: vocab } as Partial<LlamaConfig>);
  if (vocab !== undefined) overrides.vocab_size = vocab;
  const changed = Object.keys(overrides);
  return { config, source: `preset ${preset}${changed.map((k) => (k === 'vocab_size' ? ` --vocab-size ${vocab}` : ` --set ${k}=${String(overrides[k])}`)).join('')}` };
}

/** Every flag checked and the split settled before a device exists; throws one line naming the flag. */
export function parseMemoryArgs(args: readonly string[]): { options: MemoryRunOptions; source: string; device: (typeof DEVICES)[number]; memoryLimit: number | null; json: boolean } | null {
  const a = parseArgs(SPEC, args);
  if (a.help) return null;
  const { config, source } = modelConfig(a);
  const method: MemoryMethod = choiceFlag('memory', a, '--method', MEMORY_METHODS) ?? 'vanilla';
  refuseOtherMethodsFlags(a, method);
  const rank = numberFlag('memory', a, '--rank', { integer: true, min: 1 }) ?? DEFAULT_TRAIN_OPTIONS.loraRank;
  const precision = choiceFlag('memory', a, '--precision', PRECISIONS) ?? 'mixed';
  const seq = numberFlag('memory', a, '--seq', { integer: true, min: 1 }) ?? 256;
  if (seq > config.max_position_embeddings) {
    throw new UsageError(`step memory: --seq ${seq}${hasFlag(a, '--seq') ? '' : ' (the default)'} is beyond the model's max_position_embeddings ${config.max_position_embeddings}; lower --seq or raise it with --set max_position_embeddings=${seq}`);
  }
  const options: MemoryRunOptions = {
    config, method, split: method === 'step' ? stepSplit(a, config, rank, precision) : [config.num_hidden_layers], rank, precision, seq,
    ...(method === 'galore' ? { galore: galoreFlags(a, config) } : {}),
    batch: numberFlag('memory', a, '--batch', { integer: true, min: 1 }) ?? 2,
    checkpointActivations: hasFlag(a, '--checkpoint-activations'),
    stepsPerStage: numberFlag('memory', a, '--steps', { integer: true, min: 1, max: 100 }) ?? 1,
    seed: numberFlag('memory', a, '--seed', { integer: true, min: 0, max: 2 ** 31 - 1 }) ?? 1,
  };
  const limit = flagValue(a, '--memory-limit');
  return {
    options, source, device: choiceFlag('memory', a, '--device', DEVICES) ?? 'auto',
    memoryLimit: limit === undefined ? null : parseSize('--memory-limit', limit), json: hasFlag(a, '--json'),
  };
}

/** The methods each method-specific flag applies to. */
const FLAG_METHODS: Record<string, readonly MemoryMethod[]> = {
  '--stages': ['step'], '--split': ['step'], '--rank': ['step', 'relora'], '--galore-rank': ['galore'], '--galore-update-gap': ['galore'],
};

/** A flag the chosen method would ignore is refused, naming the methods it applies to. */
function refuseOtherMethodsFlags(a: ParsedArgs, method: MemoryMethod): void {
  const ignored = Object.keys(FLAG_METHODS).filter((f) => hasFlag(a, f) && !FLAG_METHODS[f]!.includes(method));
  if (!ignored.length) return;
  const groups = new Map<string, string[]>();
  for (const f of ignored) groups.set(FLAG_METHODS[f]!.join(' or '), [...(groups.get(FLAG_METHODS[f]!.join(' or ')) ?? []), f]);
  const parts = [...groups].map(([methods, flags]) => `${flags.join(', ')} ${flags.length > 1 ? 'apply' : 'applies'} to --method ${methods} only`);
  throw new UsageError(`step memory: ${parts.join('; ')}, not --method ${method}; leave ${ignored.length > 1 ? 'them' : 'it'} out`);
}

/** GaLore's rank (default step train's: hidden/4, capped at the smallest linear side) and update gap. */
function galoreFlags(a: ParsedArgs, config: LlamaConfig): { rank: number; updateGap: number } {
  const max = maxGaloreRank(config);
  const rank = numberFlag('memory', a, '--galore-rank', { integer: true, min: 1, max, reason: 'GaLore projects each gradient to at most the smallest side of the model\'s linears' }) ??
    Math.max(1, Math.min(Math.floor(config.hidden_size / 4), max));
  const updateGap = numberFlag('memory', a, '--galore-update-gap', { integer: true, min: 1 }) ?? DEFAULT_TRAIN_OPTIONS.galoreUpdateGap;
  return { rank, updateGap };
}

/** STEP's split: --split as given (checked against L), or the planner's optimum for --stages K (engine mode). */
function stepSplit(a: ParsedArgs, config: LlamaConfig, rank: number, precision: Precision): number[] {
  const L = config.num_hidden_layers;
  const stages = numberFlag('memory', a, '--stages', { integer: true, min: 2, max: L, reason: `each of the K stages adds at least one of the ${L} layers; one stage is --method vanilla` });
  const given = flagValue(a, '--split');
  if (given === undefined) {
    if (stages === undefined) throw new UsageError('step memory: --method step needs --stages K (the planner\'s split) or --split n1,n2,..');
    return plannerCall(() => planStages({ config, stages, rank, mode: 'engine', precision }).split);
  }
  const split = parseSplit(given);
  const sum = split.reduce((s, n) => s + n, 0);
  if (split.length < 2) throw new UsageError(`step memory: --split ${given} has one stage; STEP needs at least 2 (one stage is --method vanilla)`);
  if (stages !== undefined && stages !== split.length) throw new UsageError(`step memory: --stages ${stages} but --split ${given} has ${split.length} stages; give one of them`);
  if (sum !== L) throw new UsageError(`step memory: --split ${given} sums to ${sum}, but the model has ${L} layers`);
  return split;
}

/** Planner errors (rank too large, K beyond L) as `step memory:` usage errors. */
function plannerCall<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof StepError && !(e instanceof UsageError)) throw new UsageError(`step memory: ${e.message}`);
    throw e;
  }
}

/** `step memory`: see MEMORY_USAGE. */
export async function memoryCommand(args: string[]): Promise<number> {
  const parsed = parseMemoryArgs(args);
  if (!parsed) {
    process.stdout.write(MEMORY_USAGE + '\n');
    return 0;
  }
  const { options: o, source, memoryLimit, json } = parsed;
  const prediction = plannerCall(() => predictMemory(o));
  if (memoryLimit !== null) checkPredictionFits(o, prediction, memoryLimit, 'step memory', '--memory-limit');
  const device = await initDevice(parsed.device);
  const limit = device.maxBufferBytes;
  const over = largestStepBuffers(o.config, { batchSize: o.batch, seqLen: o.seq, precision: o.precision }).filter((b) => b.bytes > limit).sort((x, y) => y.bytes - x.bytes)[0];
  if (over) throw new StepError(`step memory: ${over.what} needs ${formatBytes(over.bytes)}, beyond the ${formatBytes(limit)} the device (${device.description}) can hold in one buffer; lower --batch or --seq, or use a smaller model`);
  if (memoryLimit !== null) setMemoryLimit(memoryLimit, device);
  const m = await measureMemory(o, device, (p) => {
    process.stderr.write(`step memory: ${o.method === 'step' || o.method === 'vanilla' ? (p.phase === 'stage' ? `stage ${p.stage}/${o.split.length}` : `transition into stage ${p.stage}`) : p.label} measured in ${p.seconds.toFixed(1)} s` +
      `${p.losses.length ? ` (losses ${p.losses.map((l) => l.toFixed(3)).join(', ')})` : ''}${p.match ? '' : ': model state differs from the planner'}\n`);
  });
  process.stdout.write(json ? JSON.stringify(measurementJSON(m, o, source), null, 2) + '\n' : formatMeasurement(m, o, source));
  if (!m.match) process.stderr.write('step memory: the measured model state differs from the planner\'s prediction (see the rows marked NO)\n');
  return m.match ? 0 : 1;
}
