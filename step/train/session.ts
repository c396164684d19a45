import type { Backend } from '../../engine/backend.js';
import { AdamW } from '../../engine/optim/adam.js';
import type { Tensor } from '../../engine/tensor.js';
import type { LlamaConfig } from '../../models/config.js';
import { initLlama } from '../../models/llama.js';
import type { LlamaModel } from '../../models/llama.js';
import type { CarriedState } from '../../engine/optim/optimizer.js';
import { freezeLayers, freezeLayersWithLora, freezeOuter } from '../freeze.js';
import type { TrainOptions } from './options.js';

/**
 * AdamW over the trainable tensors in two groups: matrices with weight decay, vectors (norms)
 * without, as is usual for LLaMA pre-training. `carry`: state released by the previous stage's
 * optimizer for parameters that keep training (adopted, not allocated again).
 */
export function makeOptimizer(model: LlamaModel, o: TrainOptions, carry: readonly CarriedState[] = []): AdamW {
  const params = model.parameters();
  const decay = params.filter((p) => p.rank >= 2), noDecay = params.filter((p) => p.rank < 2);
  const groups: { params: Tensor[]; weightDecay?: number }[] = [];
  if (decay.length) groups.push({ params: decay });
  if (noDecay.length) groups.push({ params: noDecay, weightDecay: 0 });
  return new AdamW(groups, {
    lr: o.lr, betas: [o.beta1, o.beta2], eps: o.eps, weightDecay: o.weightDecay,
    precision: o.precision, maxGradNorm: o.clip, lossScaling: o.precision === 'mixed', carry,
  });
}

/**
 * A model of the given structure: fresh weights from the seed, `frozenLayers` frozen with LoRA
 * adapters (without, for STEP's --no-pet), and for STEP's --freeze-embeddings the embeddings,
 * norm and head frozen once layers are (any stage after the first).
 */
export function buildModel(config: LlamaConfig, device: Backend, o: TrainOptions, frozenLayers: readonly number[], loraSeed: number): LlamaModel {
  const model = initLlama(config, { device, seed: o.seed, dtype: o.precision === 'mixed' ? 'f16' : 'f32' });
  if (!frozenLayers.length) return model;
  if (o.method === 'step' && o.noPet) freezeLayers(model, frozenLayers);
  else freezeLayersWithLora(model, frozenLayers, { rank: o.loraRank, alpha: o.loraAlpha, seed: loraSeed, dropout: o.loraDropout ?? 0 });
  if (o.method === 'step' && o.freezeEmbeddings) freezeOuter(model);
  return model;
}
