/**
 * GaLore's model state (engine/optim/galore.ts), tensor by tensor, for any config: the contract
 * the optimizer follows and `step plan` / `step memory` report beside vanilla and STEP. Every
 * layer trains; each projected linear W [out, in] keeps m and v of the projected gradient's shape
 * ([r, in] when out < in, else [out, r]) and a projector [min(out, in), r], all f32 `optimizer`,
 * plus the f32 master in mixed precision; embeddings, norms and head keep AdamW's m, v (and master).
 */
import { StepError } from '../../engine/errors.js';
import { galoreStateShapes } from '../../engine/optim/galore.js';
import type { LlamaConfig } from '../../models/config.js';
import { layerLinears } from '../../models/config-params.js';
import type { Precision, StateBytes, TensorRole, TensorSpec } from './tensors.js';
import { PRECISIONS, outerTensors, parameterTensors, zeroStateBytes } from './tensors.js';

/** Which linears GaLore projects, as its reference's target modules: attention and/or MLP. */
export type GaLoreModules = 'attn' | 'mlp';
export const GALORE_MODULES: readonly GaLoreModules[] = ['attn', 'mlp'];

export interface GaLoreStateOptions {
  rank: number;
  precision: Precision;
  /** Default both (GaLore's reference: target_modules ["attn", "mlp"]). */
  modules?: readonly GaLoreModules[];
}

/** A model-state tensor of a GaLore run: listStageTensors' roles plus the projector. */
export type GaLoreTensorSpec = Omit<TensorSpec, 'role'> & { role: TensorRole | 'galore.projector' };

export interface GaLoreModelState {
  rank: number;
  precision: Precision;
  /** Bytes per model-state category and in total. */
  bytes: StateBytes;
  /** Every tensor, in state-dict order (as listStageTensors). */
  tensors: GaLoreTensorSpec[];
}

const BYTES = { f32: 4, f16: 2 } as const;

function spec(param: string, role: GaLoreTensorSpec['role'], shape: number[], dtype: 'f32' | 'f16', category: TensorSpec['category']): GaLoreTensorSpec {
  return { param, role, shape, dtype, category, bytes: shape.reduce((a, b) => a * b, 1) * BYTES[dtype] };
}

/** The largest rank GaLore can use on the chosen linears (min over them of min(out, in)). */
export function maxGaloreRank(c: LlamaConfig, modules: readonly GaLoreModules[] = GALORE_MODULES): number {
  return Math.min(...layerLinears(c).filter((l) => modules.includes(l.path.startsWith('mlp') ? 'mlp' : 'attn')).map((l) => Math.min(l.in, l.out)));
}

/** The tensors of one projected linear: weight, gradient, projected m and v, projector, master. */
function projectedTensors(param: string, shape: number[], rank: number, precision: Precision): GaLoreTensorSpec[] {
  const low = precision === 'mixed' ? 'f16' : 'f32';
  const s = galoreStateShapes(shape, rank);
  const out = [
    spec(param, 'weight', shape, low, 'parameter'),
    spec(param, 'grad', shape, low, 'gradient'),
    spec(param, 'adam.m', s.moments, 'f32', 'optimizer'),
    spec(param, 'adam.v', s.moments, 'f32', 'optimizer'),
    spec(param, 'galore.projector', s.projector, 'f32', 'optimizer'),
  ];
  if (precision === 'mixed') out.push(spec(param, 'adam.master', shape, 'f32', 'optimizer'));
  return out;
}

/** GaLore's model-state bytes and tensor list for a config (validated: rank, precision, modules). */
export function galoreModelState(c: LlamaConfig, o: GaLoreStateOptions): GaLoreModelState {
  const where = 'GaLore model state';
  if (!(PRECISIONS as readonly string[]).includes(o.precision)) throw new StepError(`${where}: unknown precision ${JSON.stringify(o.precision)}; valid: ${PRECISIONS.join(', ')}`);
  const modules = o.modules ?? GALORE_MODULES;
  if (modules.length === 0 || modules.some((m) => !(GALORE_MODULES as readonly string[]).includes(m))) {
    throw new StepError(`${where}: modules ${JSON.stringify(modules)} must be a non-empty list of ${GALORE_MODULES.join(', ')}`);
  }
  const max = maxGaloreRank(c, modules);
  if (!Number.isInteger(o.rank) || o.rank < 1 || o.rank > max) throw new StepError(`${where}: rank ${o.rank} must be an integer in 1..${max} (the smallest side of a projected linear)`);
  const layers: GaLoreTensorSpec[] = [];
  for (let i = 0; i < c.num_hidden_layers; i++) {
    const pre = `model.layers.${i}`;
    for (const l of layerLinears(c)) {
      const name = `${pre}.${l.path}.weight`;
      const projected = modules.includes(l.path.startsWith('mlp') ? 'mlp' : 'attn');
      layers.push(...(projected ? projectedTensors(name, [l.out, l.in], o.rank, o.precision) : parameterTensors(name, [l.out, l.in], true, o.precision)));
    }
    for (const norm of ['input_layernorm', 'post_attention_layernorm']) layers.push(...parameterTensors(`${pre}.${norm}.weight`, [c.hidden_size], true, o.precision));
  }
  const outer = outerTensors(c, true, o.precision);
  const tensors = [...outer.filter((t) => t.param.startsWith('model.embed_tokens')), ...layers, ...outer.filter((t) => !t.param.startsWith('model.embed_tokens'))];
  const bytes = zeroStateBytes();
  for (const t of tensors) { bytes[t.category] += t.bytes; bytes.total += t.bytes; }
  return { rank: o.rank, precision: o.precision, bytes, tensors };
}
