/**
 * ReLoRA's model state in engine mode (Lialin et al., arXiv 2307.05695; `step train --method
 * relora`, step/train/methods.ts reloraPlan), tensor by tensor, for any config: the contract
 * `step memory --method relora` measures and `step plan` reports beside vanilla and STEP.
 * A ReLoRA run has two phases and a switch between them:
 *   1. the full-rank warm start (--relora-warm-start steps, 50 by default): every tensor trains,
 *      i.e. vanilla's bytes;
 *   switch: the warm start's optimizer state and every gradient are freed (nothing is carried:
 *      the LoRA phase gets a new optimizer), then every decoder layer is frozen (its 7 linears and
 *      2 norms, retagged `frozen`) and each linear gets an adapter: the LoRA phase's weights
 *      without gradients or optimizer state;
 *   2. LoRA: adapters lora_A [r, in] and lora_B [out, r] (the weights' dtype: f16 in mixed
 *      precision) train with the embeddings, the final norm and the head. A restart (every
 *      --relora-every steps) merges the adapters into the frozen weights and re-initialises them
 *      in place, and prunes their Adam state in place: the phase's bytes, nothing more.
 * The whole-run peak is the warm start's, which is vanilla's: ReLoRA lowers its LoRA phase only.
 */
import { StepError } from '../../engine/errors.js';
import type { LlamaConfig } from '../../models/config.js';
import { checkLoraRank } from '../../models/config-params.js';
import type { Precision, StateBytes, TensorSpec } from './tensors.js';
import { PRECISIONS, layerTensors, listStageTensors, outerTensors, sumByCategory } from './tensors.js';

export interface ReloraStateOptions {
  /** LoRA rank of the adapters (`step train --lora-rank`). */
  rank: number;
  precision: Precision;
}

/** The phases of a ReLoRA run, in order. */
export type ReloraPhase = 'warm start' | 'switch' | 'LoRA';

export interface ReloraModelState {
  rank: number;
  precision: Precision;
  /** The full-rank warm start: vanilla training of the target. */
  warmStart: StateBytes;
  /** The most live while the layers are frozen and the adapters allocated (old state freed first). */
  switch: StateBytes;
  /** The LoRA phase, restarts included. */
  lora: StateBytes;
  /** The whole run's model-state peak (the max of the three) and the phase that first reaches it. */
  peak: number;
  peakAt: ReloraPhase;
  /** Every model-state tensor of the LoRA phase, in state-dict order. */
  loraTensors: TensorSpec[];
  /** Every model-state tensor of the warm start (vanilla's), in state-dict order. */
  warmStartTensors: TensorSpec[];
}

/** The LoRA phase's tensors: every layer frozen with an adapter on each linear; embeddings, final norm and head train. */
function loraPhaseTensors(c: LlamaConfig, rank: number, precision: Precision): TensorSpec[] {
  const outer = outerTensors(c, true, precision);
  const layers: TensorSpec[] = [];
  for (let i = 0; i < c.num_hidden_layers; i++) layers.push(...layerTensors(c, i, false, rank, precision, true));
  return [outer[0]!, ...layers, ...outer.slice(1)];
}

/** ReLoRA's model-state bytes per phase and its whole-run peak for a config (validated: rank, precision). */
export function reloraModelState(c: LlamaConfig, o: ReloraStateOptions): ReloraModelState {
  const where = 'ReLoRA model state';
  if (!(PRECISIONS as readonly string[]).includes(o.precision)) throw new StepError(`${where}: unknown precision ${JSON.stringify(o.precision)}; valid: ${PRECISIONS.join(', ')}`);
  checkLoraRank(c, o.rank, `${where}: LoRA`);
  const warmStartTensors = listStageTensors(c, { split: [c.num_hidden_layers], stage: 1, rank: o.rank, precision: o.precision });
  const loraTensors = loraPhaseTensors(c, o.rank, o.precision);
  const weights = (ts: TensorSpec[]): StateBytes => sumByCategory(ts.filter((t) => t.role === 'weight'));
  // the switch: the warm start's weights alone, then the frozen layers with their adapters
  const afterRelease = weights(warmStartTensors), afterFreeze = weights(loraTensors);
  const phases: [ReloraPhase, StateBytes][] = [
    ['warm start', sumByCategory(warmStartTensors)],
    ['switch', afterFreeze.total >= afterRelease.total ? afterFreeze : afterRelease],
    ['LoRA', sumByCategory(loraTensors)],
  ];
  let [peakAt, top] = phases[0]!;
  for (const [phase, bytes] of phases) if (bytes.total > top.total) { peakAt = phase; top = bytes; }
  return {
    rank: o.rank, precision: o.precision, warmStart: phases[0]![1], switch: phases[1]![1], lora: phases[2]![1],
    peak: top.total, peakAt, loraTensors, warmStartTensors,
  };
}
