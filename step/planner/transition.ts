/**
 * The model state live during a STEP stage transition (engine mode), the moment the per-stage
 * listing does not cover. `step train` (step/train/step-method.ts) and `nextStage` (step/stage.ts)
 * do it in this order:
 *   1. free the old optimizer state and every gradient: only stage s's weights remain
 *      (trainable `parameter`, frozen `frozen`, its adapters `parameter`). With `carryOptimizer`
 *      (step train's default) the Adam state of the parameters that train on in stage s+1
 *      (embeddings, final norm, head when they keep training) is kept and handed to the next
 *      optimizer, so it is live through every moment below;
 *   2. merge the adapters into their frozen weights and free them (one at a time: the most is
 *      live before the first merge, moment 1);
 *   3. grow: allocate the n_{s+1} new layers (`parameter`) beside the old layers;
 *   4. freeze the old layers (retag to `frozen`, same bytes) with fresh adapters (`parameter`):
 *      stage s+1's weights, no gradient or optimizer state yet (both come at its first step).
 * The transition's bytes are the largest of moments 1, 3 and 4 (temporaries of merge and growth
 * are not model state). Each is at most stage s+1's weights plus the carried state (part of stage
 * s+1's optimizer state), so a transition never exceeds the stage after it: a property test checks it.
 */
import type { LlamaConfig } from '../../models/config.js';
import type { StageSpec, StateBytes, TensorSpec } from './tensors.js';
import { layerTensors, listStageTensors, outerTensors, sumByCategory } from './tensors.js';

export type TransitionMoment = 'before merge' | 'after growth' | 'after freeze';

export interface TransitionBytes {
  /** The 1-based stage the transition leads into (2..K). */
  intoStage: number;
  /** The largest of the moments, with its split. */
  bytes: StateBytes;
  moment: TransitionMoment;
}

const isWeight = (t: TensorSpec) => t.role === 'weight';
const isAdapter = (t: TensorSpec) => /\.lora_[AB]$/.test(t.param);

/** The transition into stage `s.stage` (>= 2) of `s.split`. */
export function transitionBytes(c: LlamaConfig, s: Omit<StageSpec, 'newLayers'> & { carryOptimizer?: boolean }): TransitionBytes {
  const { carryOptimizer, ...spec } = s;
  // the optimizer state carried over: that of the outer tensors when they train in both stages
  const carried = (carryOptimizer ?? true) && (s.trainEmbeddings ?? true)
    ? outerTensors(c, true, s.precision).filter((t) => t.role.startsWith('adam.')) : [];
  const before = [...listStageTensors(c, { ...spec, stage: s.stage - 1 }).filter(isWeight), ...carried];
  const n = s.split[s.stage - 1]!;
  // a new layer's weights: trainable, `parameter` (its bytes do not depend on its index)
  const newLayer = layerTensors(c, 0, true, s.rank, s.precision).filter(isWeight);
  const grown = [...before.filter((t) => !isAdapter(t)), ...Array.from({ length: n }, () => newLayer).flat()];
  const after = [...listStageTensors(c, spec).filter(isWeight), ...carried];
  const moments: [TransitionMoment, StateBytes][] = [
    ['before merge', sumByCategory(before)], ['after growth', sumByCategory(grown)], ['after freeze', sumByCategory(after)],
  ];
  let best = moments[0]!;
  for (const m of moments) if (m[1].total >= best[1].total) best = m;
  return { intoStage: s.stage, bytes: best[1], moment: best[0] };
}
