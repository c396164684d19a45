import { clone, zeros } from '../engine/creation.js';
import { StepError } from '../engine/errors.js';
import { keep, scopeSync } from '../engine/scope.js';
import type { Tensor } from '../engine/tensor.js';
import { philox4x32, splitU64 } from '../engine/random.js';
import { add, mul } from '../kernels/elementwise.js';
import { noGrad } from '../autograd/grad-mode.js';
import { Linear } from '../models/linear.js';
import { LlamaLayer, LlamaModel } from '../models/llama.js';

/**
 * How a new layer's weights are made:
 * - `interpolation-mean` (the STEP paper): the element-wise mean of the two layers it is put between;
 * - `stack`: a copy of the layer below it;
 * - `function-preserving`: the mean, with the attention output (o_proj) and MLP down projection
 *   zeroed, so the new block adds nothing to the residual stream and the logits do not change.
 */
export type GrowthOperator = 'interpolation-mean' | 'stack' | 'function-preserving';

/** Where new layers go: in the upper gaps (best in the paper), the lower ones, the middle, or at random. */
export type Placement = 'upper' | 'lower' | 'intermediate' | 'random';

export const GROWTH_OPERATORS: readonly GrowthOperator[] = ['interpolation-mean', 'stack', 'function-preserving'];
export const PLACEMENTS: readonly Placement[] = ['upper', 'lower', 'intermediate', 'random'];

export interface GrowthOptions {
  operator?: GrowthOperator;
  placement?: Placement;
  /** Seed for `random` placement. */
  seed?: number;
}

/**
 * The gap each new layer goes into: gap g lies between old layers g and g+1 (g = 0..N-2); with a
 * single old layer the only gap is above it (g = 0, whose upper neighbour is itself). More new
 * layers than gaps cycle through the gaps in the same order.
 */
export function growthGaps(oldLayers: number, newLayers: number, placement: Placement, seed = 0): number[] {
  if (!Number.isInteger(oldLayers) || oldLayers < 1) throw new StepError(`growth: the model needs at least one layer, has ${oldLayers}`);
  if (!Number.isInteger(newLayers) || newLayers < 0) throw new StepError(`growth: the number of new layers must be an integer >= 0, got ${newLayers}`);
  if (!PLACEMENTS.includes(placement)) throw new StepError(`growth: unknown placement "${placement}"; valid: ${PLACEMENTS.join(', ')}`);
  const gaps = Math.max(1, oldLayers - 1);
  let order = [...Array(gaps).keys()];
  if (placement === 'upper') order.reverse();
  else if (placement === 'intermediate') {
    const mid = (gaps - 1) / 2;
    order.sort((a, b) => Math.abs(a - mid) - Math.abs(b - mid) || a - b);
  } else if (placement === 'random') {
    const [k0, k1] = splitU64(seed);
    const keys = order.map((g) => philox4x32(g, 0, 0, 0, k0, k1)[0]);
    order = order.sort((a, b) => keys[a]! - keys[b]! || a - b);
  }
  return Array.from({ length: newLayers }, (_, j) => order[j % gaps]!);
}

function combine(a: Tensor, b: Tensor, operator: GrowthOperator, name: string): Tensor {
  const t = keep(operator === 'stack' ? clone(a, { category: 'parameter', label: name }) : mul(add(a, b), 0.5, { category: 'parameter', label: name }));
  t.requiresGrad = true;
  return t;
}

function newLayer(below: LlamaLayer, above: LlamaLayer, operator: GrowthOperator, index: number): LlamaLayer {
  const p = `model.layers.${index}`;
  const lin = (x: Linear, y: Linear, name: string, zero: boolean) => {
    const full = `${p}.${name}`;
    if (zero) {
      const w = keep(zeros(x.weight.shape as number[], { dtype: x.weight.dtype, device: x.weight.backend, category: 'parameter', label: `${full}.weight` }));
      w.requiresGrad = true;
      return new Linear(full, w);
    }
    return new Linear(full, combine(x.weight, y.weight, operator, `${full}.weight`));
  };
  const fp = operator === 'function-preserving';
  return new LlamaLayer(index,
    combine(below.inputNorm, above.inputNorm, operator, `${p}.input_layernorm.weight`),
    lin(below.q, above.q, 'self_attn.q_proj', false), lin(below.k, above.k, 'self_attn.k_proj', false),
    lin(below.v, above.v, 'self_attn.v_proj', false), lin(below.o, above.o, 'self_attn.o_proj', fp),
    combine(below.postNorm, above.postNorm, operator, `${p}.post_attention_layernorm.weight`),
    lin(below.gate, above.gate, 'mlp.gate_proj', false), lin(below.up, above.up, 'mlp.up_proj', false),
    lin(below.down, above.down, 'mlp.down_proj', fp));
}

/** The same layer under a new index (its tensors, and any LoRA adapter, are shared, not copied). */
function reindex(l: LlamaLayer, index: number): LlamaLayer {
  const p = `model.layers.${index}`;
  const re = (x: Linear, name: string) => {
    const y = new Linear(`${p}.${name}`, x.weight);
    y.lora = x.lora;
    return y;
  };
  return new LlamaLayer(index, l.inputNorm, re(l.q, 'self_attn.q_proj'), re(l.k, 'self_attn.k_proj'), re(l.v, 'self_attn.v_proj'),
    re(l.o, 'self_attn.o_proj'), l.postNorm, re(l.gate, 'mlp.gate_proj'), re(l.up, 'mlp.up_proj'), re(l.down, 'mlp.down_proj'));
}

export interface GrowthResult {
  model: LlamaModel;
  /** For each layer of the grown model: the old index it came from, or null for a new layer. */
  origin: (number | null)[];
}

/**
 * Inserts `newLayers` layers into `model` (STEP's growth step). Old layers keep their tensors
 * (renamed to their new index); new layers get fresh trainable tensors (category `parameter`).
 * The input model object must not be used afterwards: the returned one owns the tensors.
 */
export function growModel(model: LlamaModel, newLayers: number, options: GrowthOptions = {}): GrowthResult {
  const operator = options.operator ?? 'interpolation-mean';
  if (!GROWTH_OPERATORS.includes(operator)) throw new StepError(`growth: unknown operator "${operator}"; valid: ${GROWTH_OPERATORS.join(', ')}`);
  const old = model.layers;
  const gaps = growthGaps(old.length, newLayers, options.placement ?? 'upper', options.seed ?? 0);
  const perGap = new Map<number, number>();
  for (const g of gaps) perGap.set(g, (perGap.get(g) ?? 0) + 1);
  // scopeSync frees the sums made on the way; the new tensors themselves are kept
  return scopeSync(() => noGrad(() => {
    const layers: LlamaLayer[] = [];
    const origin: (number | null)[] = [];
    for (let i = 0; i < old.length; i++) {
      layers.push(reindex(old[i]!, layers.length));
      origin.push(i);
      const count = perGap.get(i) ?? 0;
      const above = old[Math.min(i + 1, old.length - 1)]!;
      for (let c = 0; c < count; c++) {
        layers.push(newLayer(old[i]!, above, operator, layers.length));
        origin.push(null);
      }
    }
    const grown = new LlamaModel({ ...model.config, num_hidden_layers: layers.length }, model.embedBlocks, layers, model.norm, model.headBlocks);
    model.releaseCaches(); // the old object is dropped: its RoPE table would outlive it
    return { model: grown, origin };
  }));
}

