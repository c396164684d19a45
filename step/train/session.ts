import type { Backend } from '../../engine/backend.js';
import { AdamW } from '../../engine/optim/adam.js';
import { GaLoreAdamW } from '../../engine/optim/galore.js';
import type { Tensor } from '../../engine/tensor.js';
import type { LlamaConfig } from '../../models/config.js';
import { initLlama } from '../../models/llama.js';
import type { LlamaModel } from '../../models/llama.js';
import { freezeLayersWithLora } from '../freeze.js';
import type { TrainOptions } from './options.js';

/** The optimizers a run uses: AdamW, or GaLore's projected AdamW for `--method galore`. */
export type TrainOptimizer = AdamW | GaLoreAdamW;

/**
 * AdamW over the trainable tensors in two groups: matrices with weight decay, vectors (norms)
 * without, as is usual for LLaMA pre-training. With `--method galore` the decoder layers' linears
 * form a third group, projected at --galore-rank (GaLore's reference: attention and MLP modules).
 */
export function makeOptimizer(model: LlamaModel, o: TrainOptions): TrainOptimizer {
  const params = model.parameters();
  const options = {
    lr: o.lr, betas: [o.beta1, o.beta2] as [number, number], eps: o.eps, weightDecay: o.weightDecay,
    precision: o.precision, maxGradNorm: o.clip, lossScaling: o.precision === 'mixed',
  };
  const projected = o.method === 'galore' ? new Set(model.layers.flatMap((l) => l.linears.map((x) => x.weight))) : new Set<Tensor>();
  const decay = params.filter((p) => p.rank >= 2 && !projected.has(p)), noDecay = params.filter((p) => p.rank < 2);
  const groups: { params: Tensor[]; weightDecay?: number; rank?: number }[] = [];
  if (decay.length) groups.push({ params: decay });
  if (noDecay.length) groups.push({ params: noDecay, weightDecay: 0 });
  if (o.method !== 'galore') return new AdamW(groups, options);
  groups.push({ params: params.filter((p) => projected.has(p)), rank: o.galoreRank! });
  return new GaLoreAdamW(groups, { ...options, updateGap: o.galoreUpdateGap, scale: o.galoreScale, seed: o.seed });
}

/** A model of the given structure: fresh weights from the seed, with LoRA adapters on `frozenLayers`. */
export function buildModel(config: LlamaConfig, device: Backend, o: TrainOptions, frozenLayers: readonly number[], loraSeed: number): LlamaModel {
  const model = initLlama(config, { device, seed: o.seed, dtype: o.precision === 'mixed' ? 'f16' : 'f32' });
  if (frozenLayers.length) freezeLayersWithLora(model, frozenLayers, { rank: o.loraRank, alpha: o.loraAlpha, seed: loraSeed, dropout: o.loraDropout ?? 0 });
  return model;
}
