/**
 * `--method galore`: every layer of the target trains from step 0, as vanilla, but the optimizer is
 * GaLore's projected AdamW (session.ts makeOptimizer); after the first step the measured model
 * state is logged beside the planner's GaLore prediction (step/planner/galore.ts).
 */
import { warmupCosineSchedule } from '../../engine/optim/schedules.js';
import type { LlamaConfig } from '../../models/config.js';
import { galoreModelState } from '../planner/galore.js';
import type { MethodPlan } from './methods.js';
import { logMemory } from './methods.js';
import type { TrainOptions } from './options.js';

export function galorePlan(o: TrainOptions, target: LlamaConfig): MethodPlan {
  const schedule = warmupCosineSchedule({ warmupSteps: o.warmupSteps, totalSteps: o.steps, minRatio: o.minLrRatio });
  const rank = o.galoreRank!;
  const { bytes } = galoreModelState(target, { rank, precision: o.precision });
  const predicted = { parameter: bytes.parameter, frozen: bytes.frozen, gradient: bytes.gradient, optimizer: bytes.optimizer };
  return {
    stages: 1, initialLayers: target.num_hidden_layers,
    describe: () => `method: GaLore, ${target.num_hidden_layers} layers, rank ${rank}, projector refreshed every ${o.galoreUpdateGap} steps, scale ${o.galoreScale}, ${o.steps} steps`,
    lrScale: (s) => schedule(s.step), beforeStep: async () => {}, afterFirstStep: (run) => logMemory(run, predicted),
    firstStepOfStage: () => 0, isStageEnd: () => false,
  };
}
