/**
 * The model of an SFT run: the base checkpoint loaded as a plain LLaMA (a STEP or ReLoRA
 * checkpoint's adapters merged first), in the run's precision, and for LoRA fine-tuning every
 * layer's linears given adapters with everything else frozen (embeddings, norms, head included),
 * as PEFT's LoRA does. At the end the trainer merges the adapters and writes the plain model
 * (step/train/final-model.ts).
 */
import type { Backend } from '../../engine/backend.js';
import type { LlamaConfig } from '../../models/config.js';
import { setTrainable } from '../../models/linear.js';
import { initLlama } from '../../models/llama.js';
import type { LlamaModel } from '../../models/llama.js';
import { loadCheckpointModel } from '../commands/checkpoint-model.js';
import { freezeLayersWithLora, mergeLora, outerParameters, unfreezeAll } from '../freeze.js';
import type { SftOptions } from './options.js';

const dtypeOf = (o: Pick<SftOptions, 'precision'>) => (o.precision === 'mixed' ? 'f16' : 'f32');

/** LoRA fine-tuning's structure: adapters on every linear of every layer; nothing else trains. */
export function addTuningAdapters(model: LlamaModel, o: Pick<SftOptions, 'loraRank' | 'loraAlpha' | 'loraDropout' | 'seed' | 'precision'>): void {
  if (o.loraRank === 0) return;
  freezeLayersWithLora(model, model.layers.map((_, i) => i), { rank: o.loraRank, alpha: o.loraAlpha, seed: o.seed, dropout: o.loraDropout });
  for (const t of outerParameters(model)) setTrainable(t, false);
}

/** The structure a run's checkpoint was saved from (weights to be loaded into it). */
export function buildTuningModel(config: LlamaConfig, device: Backend, o: SftOptions): LlamaModel {
  const model = initLlama(config, { device, seed: 0, dtype: dtypeOf(o) });
  addTuningAdapters(model, o);
  return model;
}

/**
 * The base checkpoint as the model to tune: loaded (f32), any LoRA adapters merged, copied to f16
 * for mixed precision, then given the tuning adapters.
 */
export async function loadBaseModel(dir: string, device: Backend, o: SftOptions): Promise<LlamaModel> {
  const base = (await loadCheckpointModel(dir, device)).model;
  let model = base;
  try {
    mergeLora(base);
    unfreezeAll(base);
    if (dtypeOf(o) !== 'f32') {
      model = initLlama(base.config, { device, seed: 0, dtype: dtypeOf(o) });
      const target = new Map(model.namedTensors());
      for (const [name, t] of base.namedTensors()) {
        const into = target.get(name)!;
        into.backend.write(into.storage, await t.toArray());
      }
      base.dispose();
    }
  } catch (e) {
    base.dispose();
    if (model !== base) model.dispose();
    throw e;
  }
  addTuningAdapters(model, o);
  return model;
}
