import { StepError } from '../engine/errors.js';
import { Generator } from '../engine/random.js';
import { scopeSync } from '../engine/scope.js';
import { noGrad } from '../autograd/grad-mode.js';
import type { Tensor } from '../engine/tensor.js';
import type { Linear } from '../models/linear.js';
import { setTrainable } from '../models/linear.js';
import type { LlamaModel } from '../models/llama.js';

export interface LoraOptions {
  rank: number;
  /** Scale numerator: the adapter adds (alpha / rank) * x A^T B^T (default alpha = rank, scale 1). */
  alpha?: number;
  seed?: number;
  /** Dropout on each adapter's input while training (default 0). */
  dropout?: number;
}

/**
 * STEP step 3: freezes the given layers (every weight and norm: requiresGrad false, category
 * `frozen`, gradients dropped) and gives each of their seven linears a LoRA adapter.
 */
export function freezeLayersWithLora(model: LlamaModel, layers: readonly number[], options: LoraOptions): void {
  const g = new Generator(options.seed ?? 0);
  const alpha = options.alpha ?? options.rank;
  for (const i of layers) {
    const layer = model.layers[i];
    if (!layer) throw new StepError(`freeze: layer ${i} does not exist (the model has ${model.layers.length})`);
    setTrainable(layer.inputNorm, false);
    setTrainable(layer.postNorm, false);
    for (const lin of layer.linears) {
      setTrainable(lin.weight, false);
      lin.addLora(options.rank, alpha, g, lin.weight.dtype, options.dropout ?? 0);
    }
  }
}

/**
 * The paper's no-PET ablation: freezes the given layers (every weight and norm, as
 * freezeLayersWithLora does) without giving them adapters; they no longer change.
 */
export function freezeLayers(model: LlamaModel, layers: readonly number[]): void {
  for (const i of layers) {
    const layer = model.layers[i];
    if (!layer) throw new StepError(`freeze: layer ${i} does not exist (the model has ${model.layers.length})`);
    for (const t of [layer.inputNorm, layer.postNorm, ...layer.linears.map((x) => x.weight)]) setTrainable(t, false);
  }
}

/** The embeddings, final norm and LM head (when untied): what trains besides the layers. */
export function outerParameters(model: LlamaModel): Tensor[] {
  return [...model.embedBlocks, model.norm, ...(model.headBlocks ?? [])]; // every row block of a split table
}

/**
 * Freezes the embeddings, final norm and LM head with the old layers (a literal reading of the
 * paper's Figure 1: after stage 1 only the new layers and the PET parameters train).
 */
export function freezeOuter(model: LlamaModel): void {
  for (const t of outerParameters(model)) setTrainable(t, false);
}

/**
 * Merges every LoRA adapter into its frozen weight (W += (alpha/r) B A, in place, no W-sized
 * temporary) and frees A and B. The logits are unchanged up to f32 rounding.
 */
export function mergeLora(model: LlamaModel): number {
  let merged = 0;
  scopeSync(() => noGrad(() => {
    for (const lin of adaptedLinears(model)) {
      const { A, B } = lin.lora!;
      lin.mergeLoraIntoWeight();
      for (const t of [A, B]) { t.grad?.dispose(); t.grad = null; t.dispose(); }
      lin.lora = null;
      merged++;
    }
  }));
  return merged;
}

/**
 * ReLoRA's restart of the adapters: merges each into its frozen weight and re-initialises it in
 * place as a new adapter (A Kaiming-uniform, B zero), A drawn from `generatorFor(layer, linear)`
 * (linear = its position 0-6 in the layer). The adapters stay the same tensors, so the optimizer
 * keeps (and may prune) their state. The logits are unchanged up to f32 rounding. Returns the
 * adapters restarted.
 */
export function restartLora(model: LlamaModel, generatorFor: (layer: number, linear: number) => Generator): number {
  let restarted = 0;
  scopeSync(() => noGrad(() => {
    for (const [li, layer] of model.layers.entries()) {
      for (const [xi, lin] of layer.linears.entries()) {
        if (!lin.lora) continue;
        lin.mergeLoraIntoWeight();
        lin.initLora(generatorFor(li, xi));
        restarted++;
      }
    }
  }));
  return restarted;
}

/** The linears that carry a LoRA adapter, in layer order. */
function adaptedLinears(model: LlamaModel): Linear[] {
  return model.layers.flatMap((l) => l.linears.filter((x) => x.lora !== null));
}

/** Makes every layer (and the embeddings, final norm and head) trainable again, without adapters. */
export function unfreezeAll(model: LlamaModel): void {
  if (model.layers.some((l) => l.linears.some((x) => x.lora))) throw new StepError('unfreezeAll: merge the LoRA adapters first (mergeLora)');
  for (const [, t] of model.namedTensors()) if (!t.requiresGrad) setTrainable(t, true);
}
