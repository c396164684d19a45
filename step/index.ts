/**
 * `step-webgpu/step`: STEP (staged parameter-efficient pre-training) as a library. The planner
 * (stage sizes from the integer programme, predicted bytes per stage and category), the growth
 * operators, LoRA freezing and the in-place merge, the training entry point that the `step train`
 * command runs, and instruction tuning (`sft`, what `step sft` runs). With these a STEP stage on
 * your own loop is: `growModel`, then
 * `freezeLayersWithLora` on the old layers, then an optimizer over `model.parameters()`.
 * The list is curated: a test pins it (test/api/exports.json).
 */
export {
  PLANNER_MODES, PRECISIONS, STATE_CATEGORIES, defaultRank, engineCostModel, evaluateSplit, listStageTensors, paperCostModel,
  paperCounts, paperTable, planStages, solveSplit, galoreModelState, maxGaloreRank, GALORE_MODULES, reloraModelState,
} from './planner/index.js';
export type {
  CostModel, Plan, PlanOptions, PlannerMode, StageCost, StagePlan, StageSpec, StateBytes, StateCategory, SplitResult,
  TableOptions, TensorSpec, GaLoreModelState, GaLoreModules, GaLoreStateOptions, GaLoreTensorSpec, ReloraModelState, ReloraPhase,
  ReloraStateOptions,
} from './planner/index.js';
export { GROWTH_OPERATORS, PLACEMENTS, growModel, growthGaps } from './growth.js';
export type { GrowthOperator, GrowthOptions, GrowthResult, Placement } from './growth.js';
export { freezeLayersWithLora, mergeLora, unfreezeAll } from './freeze.js';
export type { LoraOptions } from './freeze.js';
export { train } from './train/trainer.js';
export type { TrainResult } from './train/trainer.js';
export { DEFAULT_TRAIN_OPTIONS, parseTrainArgs, validateTrainOptions } from './train/options.js';
export type { TrainOptions } from './train/options.js';
export { makeOptimizer } from './train/session.js';
export type { TrainOptimizer } from './train/session.js';
export { sft } from './sft/sft.js';
export type { SftResult } from './sft/sft.js';
export { DEFAULT_SFT_OPTIONS, parseSftArgs } from './sft/options.js';
export type { SftOptions } from './sft/options.js';
export { evaluate } from './train/evaluate.js';
export type { EvalResult } from './train/evaluate.js';
export { nextStage } from './stage.js';
export type { StageResult } from './stage.js';
