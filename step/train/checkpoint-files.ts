/**
 * Strict parsers of a run's small JSON files: `trainer-state.json` (inside a checkpoint) and
 * `latest.json` (the run's pointer to its newest checkpoint). Any input gives either a valid object
 * or a StepError naming the file and the field; a hand-edited or half-copied file never reaches
 * the trainer as a half-valid state.
 */
import { StepError } from '../../engine/errors.js';

export const TRAINER_STATE_FORMAT = 'step-webgpu/trainer-state';
export const TRAINING_METHODS = ['vanilla', 'step', 'relora', 'galore', 'sft'] as const;

/** What a checkpoint needs beyond the tensors to resume exactly. */
export interface TrainerState {
  format: typeof TRAINER_STATE_FORMAT;
  version: 1;
  method: (typeof TRAINING_METHODS)[number];
  /** Optimizer steps done (the sampler's step equals it times the gradient accumulation). */
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
  /** null before the first step (and where JSON could not hold the value: NaN, Inf). */
  lastLoss: number | null;
  lastValLoss: number | null;
}

/** A checkpoint folder's name: step-NNNNNN (at least six digits). */
export const CHECKPOINT_NAME = /^step-(\d{6,})$/;
export const checkpointName = (step: number) => `step-${String(step).padStart(6, '0')}`;

/** What the caller knows that the file must agree with. */
export interface TrainerStateContext {
  /** The step in the folder's name (step-NNNNNN). */
  folderStep?: number;
  /** Layers of the checkpoint's model (config.json's num_hidden_layers). */
  layers?: number;
  /** The run's gradient accumulation and seed (train-config.json). */
  gradAccum?: number;
  seed?: number;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

function parseJSON(text: string, path: string, what: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new StepError(`${path}: not valid JSON (${(e as Error).message}); ${what}`);
  }
}

/** Parses and checks every field of a trainer-state.json; throws a StepError naming `path` and the field. */
export function parseTrainerState(text: string, path: string, ctx: TrainerStateContext = {}): TrainerState {
  const fix = 'the checkpoint is corrupt or was edited; resume from another step-NNNNNN folder';
  const s = parseJSON(text, path, fix);
  const bad = (field: string, want: string, got: unknown): never => {
    let shown: string;
    try { shown = JSON.stringify(got) ?? String(got); } catch { shown = String(got); }
    throw new StepError(`${path}: field "${field}" must be ${want}, got ${shown.length > 60 ? `${shown.slice(0, 57)}...` : shown}; ${fix}`);
  };
  if (!isObject(s)) return bad('(top level)', 'an object', s);
  if (s.format !== TRAINER_STATE_FORMAT) bad('format', `"${TRAINER_STATE_FORMAT}" (not a trainer state of this library)`, s.format);
  if (s.version !== 1) bad('version', '1', s.version);
  if (!(TRAINING_METHODS as readonly unknown[]).includes(s.method)) bad('method', TRAINING_METHODS.join(', ').replace(/, (?=[^,]*$)/, ' or '), s.method);
  for (const k of ['step', 'tokens', 'stage', 'stageStartStep', 'lastRestart'] as const) {
    if (!isCount(s[k])) bad(k, 'an integer >= 0', s[k]);
  }
  const step = s.step as number;
  if (ctx.folderStep !== undefined && step !== ctx.folderStep) bad('step', `${ctx.folderStep} (the folder's name says step ${ctx.folderStep})`, step);
  if ((s.stageStartStep as number) > step) bad('stageStartStep', `at most step ${step}`, s.stageStartStep);
  if ((s.lastRestart as number) > step) bad('lastRestart', `at most step ${step}`, s.lastRestart);
  const sampler = s.sampler;
  if (!isObject(sampler)) return bad('sampler', 'an object {seed, step}', sampler);
  if (!isCount(sampler.seed)) bad('sampler.seed', 'an integer >= 0', sampler.seed);
  if (!isCount(sampler.step)) bad('sampler.step', 'an integer >= 0', sampler.step);
  const samplerStep = sampler.step as number;
  if (ctx.gradAccum !== undefined) {
    if (samplerStep !== step * ctx.gradAccum) bad('sampler.step', `${step * ctx.gradAccum} (step ${step} x --grad-accum ${ctx.gradAccum})`, samplerStep);
  } else if (step === 0 ? samplerStep !== 0 : samplerStep < step || samplerStep % step !== 0) {
    bad('sampler.step', `a multiple of step ${step} (step x gradient accumulation)`, samplerStep);
  }
  if (ctx.seed !== undefined && sampler.seed !== ctx.seed) bad('sampler.seed', `the run's --seed ${ctx.seed}`, sampler.seed);
  const frozen = s.frozenLayers;
  if (!Array.isArray(frozen) || !frozen.every(isCount)) return bad('frozenLayers', 'an array of layer indices (integers >= 0)', frozen);
  if (new Set(frozen).size !== frozen.length) bad('frozenLayers', 'distinct layer indices', frozen);
  if (ctx.layers !== undefined) {
    const out = frozen.find((i) => i >= ctx.layers!);
    if (out !== undefined) bad('frozenLayers', `indices below the model's ${ctx.layers} layers (config.json)`, frozen);
  }
  const lora = s.lora;
  if (lora !== null) {
    if (!isObject(lora)) return bad('lora', 'null or an object {rank, alpha}', lora);
    if (!isCount(lora.rank) || lora.rank < 1) bad('lora.rank', 'an integer >= 1', lora.rank);
    if (typeof lora.alpha !== 'number' || !Number.isFinite(lora.alpha) || lora.alpha <= 0) bad('lora.alpha', 'a finite number > 0', lora.alpha);
  }
  if (frozen.length > 0 && lora === null) bad('lora', 'an object {rank, alpha} (frozenLayers has LoRA layers)', lora);
  if (s.method === 'vanilla' && (frozen.length > 0 || s.stage !== 0)) bad(frozen.length > 0 ? 'frozenLayers' : 'stage', 'empty / 0 for a vanilla run', frozen.length > 0 ? frozen : s.stage);
  for (const k of ['lastLoss', 'lastValLoss'] as const) {
    const v = s[k];
    if (v !== null && (typeof v !== 'number' || !Number.isFinite(v))) bad(k, 'a finite number or null', v);
  }
  return s as unknown as TrainerState;
}

/** latest.json: `{ "checkpoint": "step-NNNNNN", "step": N }`, naming a folder directly under the run's checkpoints/. */
export interface LatestPointer {
  checkpoint: string;
  step: number | null;
}

/** Parses latest.json; refuses anything but an object naming a step-NNNNNN folder (no paths, no `..`). */
export function parseLatestPointer(text: string, path: string): LatestPointer {
  const fix = "point it at a folder under this run's checkpoints/, e.g. {\"checkpoint\": \"step-000600\", \"step\": 600}";
  const p = parseJSON(text, path, fix);
  const bad = (what: string): never => { throw new StepError(`${path}: ${what}; ${fix}`); };
  if (!isObject(p)) return bad(`must be an object, got ${Array.isArray(p) ? 'an array' : p === null ? 'null' : typeof p}`);
  const name = p.checkpoint;
  if (typeof name !== 'string') return bad(`field "checkpoint" must be a folder name, got ${name === undefined ? 'nothing' : typeof name}`);
  const m = CHECKPOINT_NAME.exec(name);
  if (!m) return bad(`field "checkpoint" must name a step-NNNNNN folder directly under checkpoints/ (no path separators or ".."), got ${JSON.stringify(name.slice(0, 80))}`);
  const folderStep = Number(m[1]);
  if (!Number.isSafeInteger(folderStep)) return bad(`field "checkpoint" names step ${m[1]}, beyond any run`);
  if (p.step !== undefined && p.step !== folderStep) bad(`field "step" must equal the folder's step ${folderStep}, got ${JSON.stringify(p.step)}`);
  return { checkpoint: name, step: folderStep };
}
