/**
 * A STEP plan for a config and K: the stage sizes (the exact optimum of the integer programme,
 * or a split you give, evaluated and compared with the optimum), model-state bytes per stage and
 * category, the peak, and the reduction against vanilla training of the target.
 */
import type { LlamaConfig } from '../../models/config.js';
import { maxLoraRank, checkLoraRank } from '../../models/config-params.js';
import { StepError } from '../../engine/errors.js';
import type { CostModel, PlannerMode } from './costs.js';
import { PLANNER_MODES, engineCostModel, paperCostModel, paperCounts } from './costs.js';
import { checkSplit, checkStageCount, evaluateSplit, solveSplit } from './solve.js';
import type { Precision, StateBytes } from './tensors.js';
import { PRECISIONS, listStageTensors, sumByCategory } from './tensors.js';
import type { TransitionBytes } from './transition.js';
import { transitionBytes } from './transition.js';

export interface PlanOptions {
  config: LlamaConfig;
  /** K; may be left out when `split` is given. */
  stages?: number;
  /** LoRA rank; default defaultRank(config) = hidden/4. */
  rank?: number;
  /** 'paper' (default): the published programme; 'engine': the bytes our engine allocates. */
  mode?: PlannerMode;
  /** Engine mode only: 'mixed' (default, the paper's setting) or 'fp32'. */
  precision?: Precision;
  /** Engine mode only: do embeddings, final norm and head train after stage 1? Default true. */
  trainEmbeddings?: boolean;
  /** Evaluate this split instead of solving for one. */
  split?: readonly number[];
  /** Frozen layers carry LoRA adapters (default true); false: the no-PET ablation (no adapters). */
  pet?: boolean;
  /**
   * Engine mode: the Adam state of parameters that train on across a boundary (embeddings, final
   * norm, head) is kept through the transition, as `step train` does by default (true); false:
   * every optimizer state is freed before growth (`--stage-optimizer reset`).
   */
  carryOptimizer?: boolean;
}

export interface StagePlan {
  stage: number;
  /** n_i: layers added (trained fully) in this stage. */
  newLayers: number;
  /** N_{i-1}: layers frozen (with LoRA) in this stage. */
  frozenLayers: number;
  /** N_i. */
  layers: number;
  bytes: StateBytes;
}

export interface Plan {
  mode: PlannerMode;
  /** 'mixed' in paper mode (the paper's 16/2 bytes). */
  precision: Precision;
  trainEmbeddings: boolean;
  /** Frozen layers carry LoRA adapters (false: no-PET). */
  pet: boolean;
  /** The Adam state of what trains on is kept through each transition (engine mode). */
  carryOptimizer: boolean;
  rank: number;
  /** L. */
  layers: number;
  /** P: parameters of one layer (linears and both norms). */
  layerParams: number;
  /** E: LoRA parameters of one layer at this rank. */
  loraParams: number;
  split: number[];
  /** Whether `split` attains the least peak (always true when the planner chose it). */
  optimal: boolean;
  /** The planner's optimal split (lexicographically largest at the least peak) and its peak. */
  optimalSplit: number[];
  optimalPeak: number;
  stages: StagePlan[];
  /**
   * Engine mode: the model state live during each stage transition (growth, before stage i+1's
   * first step; see transition.ts). Paper mode: none (the paper's programme counts stages only).
   */
  transitions: TransitionBytes[];
  /** The run's whole-life peak of model state: the max over stages and (engine mode) transitions. */
  peak: number;
  /** The first stage at the peak (a transition into stage i counts as i when it ties or leads). */
  peakStage: number;
  /** Whether the peak is a stage's training or the transition into `peakStage`. */
  peakAt: 'stage' | 'transition';
  vanilla: StateBytes;
  /** 1 - peak / vanilla.total. */
  reduction: number;
}

/** Our default LoRA rank: hidden/4 (256 for 350m), capped at the largest rank the layer takes. */
export function defaultRank(c: LlamaConfig): number {
  return Math.max(1, Math.min(Math.floor(c.hidden_size / 4), maxLoraRank(c)));
}

/** The cost model for the options (validated). */
export function costModelFor(o: PlanOptions): { model: CostModel; rank: number; mode: PlannerMode; precision: Precision; trainEmbeddings: boolean; pet: boolean } {
  const mode = o.mode ?? 'paper';
  if (!(PLANNER_MODES as readonly string[]).includes(mode)) throw new StepError(`STEP planner: unknown mode ${JSON.stringify(mode)}; valid: ${PLANNER_MODES.join(', ')}`);
  if (mode === 'paper' && o.precision !== undefined && o.precision !== 'mixed') {
    throw new StepError(`STEP planner: precision ${JSON.stringify(o.precision)} applies to engine mode only; paper mode is the paper's mixed precision (16 B per trainable, 2 B per frozen parameter)`);
  }
  if (mode === 'paper' && o.trainEmbeddings === false) {
    throw new StepError('STEP planner: freezing embeddings applies to engine mode only; paper mode counts decoder layers only');
  }
  const precision = o.precision ?? 'mixed';
  if (!(PRECISIONS as readonly string[]).includes(precision)) throw new StepError(`STEP planner: unknown precision ${JSON.stringify(precision)}; valid: ${PRECISIONS.join(', ')}`);
  const rank = checkLoraRank(o.config, o.rank ?? defaultRank(o.config), 'STEP planner: LoRA');
  const trainEmbeddings = o.trainEmbeddings ?? true;
  const pet = o.pet ?? true;
  const model = mode === 'paper'
    ? (() => { const { P, E } = paperCounts(o.config, rank); return paperCostModel(P, pet ? E : 0, o.config.num_hidden_layers); })()
    : engineCostModel(o.config, rank, precision, trainEmbeddings, pet);
  return { model, rank, mode, precision, trainEmbeddings, pet };
}

export function planStages(o: PlanOptions): Plan {
  const L = o.config.num_hidden_layers;
  if (o.split === undefined && o.stages === undefined) throw new StepError('STEP planner: give the number of stages K or a split');
  const K = o.stages ?? o.split!.length;
  checkStageCount(L, K);
  if (o.split !== undefined) checkSplit(o.split, L, K);
  const { model, rank, mode, precision, trainEmbeddings, pet } = costModelFor(o);
  const carryOptimizer = o.carryOptimizer ?? true;
  const best = solveSplit(L, K, model.cost);
  const chosen = o.split ? evaluateSplit(o.split, model.cost) : best;
  const stages: StagePlan[] = [];
  let prev = 0;
  for (const [i, n] of chosen.split.entries()) {
    let bytes = model.breakdown(n, prev);
    if (mode === 'engine') {
      // The engine's prediction is the sum over its tensor listing, the contract the model follows.
      bytes = sumByCategory(listStageTensors(o.config, { split: chosen.split, stage: i + 1, rank, precision, trainEmbeddings, pet }));
    }
    stages.push({ stage: i + 1, newLayers: n, frozenLayers: prev, layers: prev + n, bytes });
    prev += n;
  }
  const transitions = mode === 'engine'
    ? chosen.split.slice(1).map((_, i) => transitionBytes(o.config, { split: chosen.split, stage: i + 2, rank, precision, trainEmbeddings, pet, carryOptimizer }))
    : [];
  // The peak over the run's life. A transition never exceeds the stage after it (tested), so the
  // solver's stage-only objective still finds the least whole-run peak; the max is taken anyway.
  let peak = chosen.peak, peakStage = chosen.peakStage, peakAt: Plan['peakAt'] = 'stage';
  for (const t of transitions) if (t.bytes.total > peak) { peak = t.bytes.total; peakStage = t.intoStage; peakAt = 'transition'; }
  const { P, E } = paperCounts(o.config, rank);
  return {
    mode, precision, trainEmbeddings, pet, carryOptimizer, rank, layers: L, layerParams: P, loraParams: pet ? E : 0,
    split: chosen.split, optimal: chosen.peak === best.peak, optimalSplit: best.split, optimalPeak: best.peak,
    stages, transitions, peak, peakStage, peakAt, vanilla: model.vanilla,
    reduction: 1 - peak / model.vanilla.total,
  };
}
