import type { LlamaModel } from '../models/llama.js';
import type { LoraOptions } from './freeze.js';
import { freezeLayersWithLora, mergeLora } from './freeze.js';
import type { GrowthOptions } from './growth.js';
import { growModel } from './growth.js';

export interface StageResult {
  /** The grown model; the input model must not be used afterwards. */
  model: LlamaModel;
  /** Indices (in the grown model) of the old layers, now frozen with LoRA adapters. */
  frozenLayers: number[];
  /** Indices of the layers this stage added (fully trainable). */
  newLayers: number[];
}

/** What nextStage frees before it grows: the previous stage's optimizer (its state dies with it). */
export interface Disposable { dispose(): void }

/**
 * One STEP stage transition, as `step train --method step` does it: frees the previous stage's
 * optimizer (`options.optimizer`, when given) and every gradient of the model first, so the grown
 * model is never allocated beside them; then merges any LoRA adapters into their weights, inserts
 * `newLayers` layers (Interpolation-Mean in the upper part by default), freezes every old layer
 * and gives each of its linears a fresh LoRA adapter. Then train `model.parameters()` (the new
 * layers, the adapters, embeddings, final norm and head) with a new optimizer: the old one's
 * state belonged to tensors that are now frozen or gone.
 */
export function nextStage(model: LlamaModel, newLayers: number, options: { lora: LoraOptions; growth?: GrowthOptions; optimizer?: Disposable }): StageResult {
  options.optimizer?.dispose();
  for (const [, t] of model.namedTensors()) { t.grad?.dispose(); t.grad = null; }
  mergeLora(model);
  const grown = growModel(model, newLayers, { operator: 'interpolation-mean', placement: 'upper', ...options.growth });
  const frozenLayers = grown.origin.flatMap((o, i) => (o === null ? [] : [i]));
  const added = grown.origin.flatMap((o, i) => (o === null ? [i] : []));
  freezeLayersWithLora(grown.model, frozenLayers, options.lora);
  return { model: grown.model, frozenLayers, newLayers: added };
}
