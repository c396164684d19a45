/**
 * `step train --memory-limit SIZE`: a run whose model state (parameters, frozen weights, gradients,
 * optimizer state) cannot fit in SIZE is refused before the model is allocated, with the phase,
 * categories and largest tensors that make the peak (the planner knows them to the byte); past
 * that check the device's tracker holds the same limit, so activations that do not fit stop the
 * step with the out-of-memory error naming the live categories and labels, and the run's last
 * checkpoint stays as it was. The limit belongs to the machine, not to the run: it is not saved in
 * train-config.json and may differ on --resume.
 */
import type { LlamaConfig } from '../../models/config.js';
import { checkModelStateFits, checkPredictionFits } from '../memory/budget.js';
import { predictMemory } from '../memory/predict.js';
import { planStages } from '../planner/index.js';
import type { TrainOptions } from './options.js';
import { runPlan, runPlanOptions } from './run-plan.js';

const WHERE = 'step train';
const FLAG = '--memory-limit';

/** Throws OutOfMemoryError when the run's whole-life model state (the planner's, engine mode) exceeds `limit` bytes. */
export function checkTrainFits(o: TrainOptions, target: LlamaConfig, limit: number): void {
  switch (o.method) {
    case 'vanilla': return checkModelStateFits(target, planStages({ config: target, split: [target.num_hidden_layers], ...runPlanOptions(o) }), limit, WHERE, FLAG);
    case 'step': return checkModelStateFits(target, runPlan(o, target), limit, WHERE, FLAG);
    // GaLore's projected state; ReLoRA's phases (its run starts full-rank: the peak is vanilla's), as `step memory` predicts them
    case 'galore': case 'relora': {
      const prediction = predictMemory({
        config: target, method: o.method, split: [target.num_hidden_layers], rank: o.loraRank, precision: o.precision, batch: o.batchSize, seq: o.seqLen,
        checkpointActivations: o.checkpointActivations ?? false, stepsPerStage: 1, seed: o.seed,
        ...(o.method === 'galore' ? { galore: { rank: o.galoreRank!, updateGap: o.galoreUpdateGap } } : {}),
      });
      return checkPredictionFits({ method: o.method, precision: o.precision }, prediction, limit, WHERE, FLAG);
    }
  }
}
