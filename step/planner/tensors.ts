/**
 * Every tensor of model state in a STEP stage: the contract the model code follows and the
 * planner sums. For a config, a stage and a precision it lists each parameter (Hugging Face
 * name), and for each trainable one its gradient and Adam state, with shape, dtype, the memory
 * tracker category, and bytes.
 *
 * Rules (engine/optim: AdamW holds m and v in f32; in mixed precision also an f32 master copy):
 *   precision  trainable weight   gradient        optimizer                  frozen weight
 *   fp32       f32 `parameter`    f32 `gradient`  m, v f32 `optimizer`       f32 `frozen`
 *   mixed      f16 `parameter`    f16 `gradient`  m, v, master f32 `optimizer`  f16 `frozen`
 * i.e. 16 bytes per trainable parameter in both, 4 (fp32) or 2 (mixed) per frozen one.
 *
 * Stage s of a split n_1..n_K has N_s = n_1 + ... + n_s layers: n_s new ones (trainable, by
 * default the top indices N_{s-1}..N_s - 1; pass `newLayers` for the positions growth chose) and
 * N_{s-1} old ones, frozen with both RMSNorm weights, each of their 7 linears carrying a
 * trainable LoRA adapter `<linear>.lora_A` [r, in] and `<linear>.lora_B` [out, r]. The previous
 * stage's adapters are merged into the frozen weights before a stage starts, so there is one
 * adapter per frozen linear. Embeddings, the final norm and the head (absent when tied) train in
 * stage 1 and, unless `trainEmbeddings` is false, in every later stage. With `pet: false` (the
 * paper's no-PET ablation) the old layers are frozen without adapters. Vanilla training of the
 * target is stage 1 of the split [L].
 */
import type { LlamaConfig } from '../../models/config.js';
import { checkLoraRank, layerLinears } from '../../models/config-params.js';
import { StepError } from '../../engine/errors.js';
import type { Precision } from '../../engine/optim/optimizer.js';
import { checkSplit } from './solve.js';

// The engine's precision modes (engine/optim): the listing mirrors what its optimizer allocates.
export type { Precision };
export const PRECISIONS: readonly Precision[] = ['fp32', 'mixed'];

/** The model-state categories of the engine's memory tracker. */
export type StateCategory = 'parameter' | 'frozen' | 'gradient' | 'optimizer';
export const STATE_CATEGORIES: readonly StateCategory[] = ['parameter', 'frozen', 'gradient', 'optimizer'];

/** The tensor's role for its parameter; optimizer labels in the engine are `adamw.m:<param>` etc. */
export type TensorRole = 'weight' | 'grad' | 'adam.m' | 'adam.v' | 'adam.master';

export interface TensorSpec {
  /** The parameter: e.g. model.layers.3.self_attn.q_proj.weight or model.layers.3.mlp.up_proj.lora_A. */
  param: string;
  role: TensorRole;
  shape: number[];
  dtype: 'f32' | 'f16';
  category: StateCategory;
  bytes: number;
}

export interface StageSpec {
  /** n_1..n_K; [L] with stage 1 is vanilla training of the target. */
  split: readonly number[];
  /** 1-based stage index. */
  stage: number;
  /** LoRA rank of the adapters on frozen layers (unused in stage 1, still checked). */
  rank: number;
  precision: Precision;
  /** Do embeddings, final norm and head train after stage 1? Default true. */
  trainEmbeddings?: boolean;
  /** Indices (in the N_s-layer model) of the n_s new layers; default the top ones. */
  newLayers?: readonly number[];
  /** Do frozen layers carry LoRA adapters (parameter-efficient training)? Default true; false: no-PET. */
  pet?: boolean;
}

const BYTES = { f32: 4, f16: 2 } as const;

function spec(param: string, role: TensorRole, shape: number[], dtype: 'f32' | 'f16', category: StateCategory): TensorSpec {
  return { param, role, shape, dtype, category, bytes: shape.reduce((a, b) => a * b, 1) * BYTES[dtype] };
}

/** The weight of one parameter and, when it trains, its gradient and Adam state. */
export function parameterTensors(param: string, shape: number[], trainable: boolean, precision: Precision): TensorSpec[] {
  const low = precision === 'mixed' ? 'f16' : 'f32';
  if (!trainable) return [spec(param, 'weight', shape, low, 'frozen')];
  const out = [
    spec(param, 'weight', shape, low, 'parameter'),
    spec(param, 'grad', shape, low, 'gradient'),
    spec(param, 'adam.m', shape, 'f32', 'optimizer'),
    spec(param, 'adam.v', shape, 'f32', 'optimizer'),
  ];
  if (precision === 'mixed') out.push(spec(param, 'adam.master', shape, 'f32', 'optimizer'));
  return out;
}

/**
 * One decoder layer at index i, in state-dict order (q, k, v, o, gate, up, down, then the two
 * norms): trainable, or frozen with a LoRA adapter of `rank` on each linear (none when `pet` is false).
 */
export function layerTensors(c: LlamaConfig, i: number, trainable: boolean, rank: number, precision: Precision, pet = true): TensorSpec[] {
  const pre = `model.layers.${i}`;
  const out: TensorSpec[] = [];
  for (const l of layerLinears(c)) {
    out.push(...parameterTensors(`${pre}.${l.path}.weight`, [l.out, l.in], trainable, precision));
    if (!trainable && pet) {
      out.push(...parameterTensors(`${pre}.${l.path}.lora_A`, [rank, l.in], true, precision));
      out.push(...parameterTensors(`${pre}.${l.path}.lora_B`, [l.out, rank], true, precision));
    }
  }
  for (const norm of ['input_layernorm', 'post_attention_layernorm']) {
    out.push(...parameterTensors(`${pre}.${norm}.weight`, [c.hidden_size], trainable, precision));
  }
  return out;
}

/** Embeddings, final norm and head (none when tied). */
export function outerTensors(c: LlamaConfig, trainable: boolean, precision: Precision): TensorSpec[] {
  const v = c.vocab_size, h = c.hidden_size;
  return [
    ...parameterTensors('model.embed_tokens.weight', [v, h], trainable, precision),
    ...parameterTensors('model.norm.weight', [h], trainable, precision),
    ...(c.tie_word_embeddings ? [] : parameterTensors('lm_head.weight', [v, h], trainable, precision)),
  ];
}

/** Checks a stage spec against the config; returns (N_{s-1}, n_s, the set of new layer indices). */
function resolveStage(c: LlamaConfig, s: StageSpec): { prev: number; n: number; isNew: Set<number> } {
  const where = 'STEP stage tensors';
  checkSplit(s.split, c.num_hidden_layers, undefined, where);
  if (!Number.isInteger(s.stage) || s.stage < 1 || s.stage > s.split.length) {
    throw new StepError(`${where}: stage ${s.stage} must be an integer in 1..${s.split.length} (the split [${s.split.join(',')}] has ${s.split.length} stages)`);
  }
  if (!(PRECISIONS as readonly string[]).includes(s.precision)) {
    throw new StepError(`${where}: unknown precision ${JSON.stringify(s.precision)}; valid: ${PRECISIONS.join(', ')}`);
  }
  checkLoraRank(c, s.rank, where);
  const prev = s.split.slice(0, s.stage - 1).reduce((a, b) => a + b, 0);
  const n = s.split[s.stage - 1]!;
  const newLayers = s.newLayers ?? Array.from({ length: n }, (_, j) => prev + j);
  const isNew = new Set(newLayers);
  if (newLayers.length !== n || isNew.size !== n || newLayers.some((i) => !Number.isInteger(i) || i < 0 || i >= prev + n)) {
    throw new StepError(`${where}: newLayers [${newLayers.join(',')}] must be ${n} distinct layer indices in 0..${prev + n - 1} for stage ${s.stage}`);
  }
  return { prev, n, isNew };
}

/** Every model-state tensor of stage `s.stage`: embeddings, layers 0..N_s-1, final norm, head. */
export function listStageTensors(c: LlamaConfig, s: StageSpec): TensorSpec[] {
  const { prev, n, isNew } = resolveStage(c, s);
  const outerTrains = s.stage === 1 || (s.trainEmbeddings ?? true);
  const outer = outerTensors(c, outerTrains, s.precision);
  const layers: TensorSpec[] = [];
  for (let i = 0; i < prev + n; i++) layers.push(...layerTensors(c, i, isNew.has(i), s.rank, s.precision, s.pet ?? true));
  // State-dict order: embeddings, layers, final norm, head.
  return [outer[0]!, ...layers, ...outer.slice(1)];
}

export type StateBytes = Record<StateCategory, number> & { total: number };

export function zeroStateBytes(): StateBytes {
  return { parameter: 0, frozen: 0, gradient: 0, optimizer: 0, total: 0 };
}

/** Bytes per category (and total) of a tensor list. */
export function sumByCategory(tensors: readonly TensorSpec[]): StateBytes {
  const out = zeroStateBytes();
  for (const t of tensors) {
    out[t.category] += t.bytes;
    out.total += t.bytes;
  }
  return out;
}
