import type { Backend } from '../../engine/backend.js';
import { AdamW } from '../../engine/optim/adam.js';
import type { Tensor } from '../../engine/tensor.js';
import type { LlamaConfig } from '../../models/config.js';
import { initLlama } from '../../models/llama.js';
import type { LlamaModel } from '../../models/llama.js';
import { freezeLayersWithLora } from '../freeze.js';
import type { TrainOptions } from './options.js';

/**
 * AdamW over the trainable tensors in two groups: matrices with weight decay, vectors (norms)
 * without, as is usual for LLaMA pre-training.
 */
export function makeOptimizer(model: LlamaModel, o: TrainOptions): AdamW {
  const params = model.parameters();
  const decay = params.filter((p) => p.rank >= 2), noDecay = params.filter((p) => p.rank < 2);
  const groups: { params: Tensor[]; weightDecay?: number }[] = [];
  if (decay.length) groups.push({ params: decay });
  if (noDecay.length) groups.push({ params: noDecay, weightDecay: 0 });
  return new AdamW(groups, {
    lr: o.lr, betas: [o.beta1, o.beta2], eps: o.eps, weightDecay: o.weightDecay,
    precision: o.precision, maxGradNorm: o.clip, lossScaling: o.precision === 'mixed',
  });
}

/** A model of the given structure: fresh weights from the seed, with LoRA adapters on `frozenLayers`. */
export function buildModel(config: LlamaConfig, device: Backend, o: TrainOptions, frozenLayers: readonly number[], loraSeed: number): LlamaModel {
  const model = initLlama(config, { device, seed: o.seed, dtype: o.precision === 'mixed' ? 'f16' : 'f32' });
  if (frozenLayers.length) freezeLayersWithLora(model, frozenLayers, { rank: o.loraRank, alpha: o.loraAlpha, seed: loraSeed, dropout: o.loraDropout ?? 0 });
  return model;
}
