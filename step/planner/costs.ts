/**
 * Stage costs for the two planner modes, per memory category.
 *
 * - paper: the published programme, layers only: stage i costs
 *   16 n_i P + 2 N_{i-1} P + 16 N_{i-1} E bytes (P: parameters of one layer including its two
 *   RMSNorm weights; E: LoRA parameters of one layer = r * sum over its 7 linears of (in + out)).
 *   Split into categories as mixed precision with Adam, the paper's setting: per trainable
 *   parameter 2 `parameter` + 2 `gradient` + 12 `optimizer` (m, v, f32 master); per frozen 2.
 *   Vanilla: 16 L P.
 * - engine: the bytes our engine allocates (step/planner/tensors.ts), embeddings, head and norms
 *   included, for fp32 or mixed precision. Vanilla: every parameter of the target trained.
 */
import type { LlamaConfig } from '../../models/config.js';
import { countParameters, loraParamsPerLayer } from '../../models/config-params.js';
import type { StageCost } from './solve.js';
import type { Precision, StateBytes } from './tensors.js';
import { layerTensors, outerTensors, sumByCategory } from './tensors.js';

export type PlannerMode = 'paper' | 'engine';
export const PLANNER_MODES: readonly PlannerMode[] = ['paper', 'engine'];

export interface CostModel {
  mode: PlannerMode;
  /** Bytes per category of a stage training n new layers on top of prev frozen ones. */
  breakdown(n: number, prev: number): StateBytes;
  /** breakdown(n, prev).total, the programme's objective. */
  cost: StageCost;
  /** Vanilla training of the whole target (all L layers trainable). */
  vanilla: StateBytes;
}

function bytesOf(parts: Omit<StateBytes, 'total'>): StateBytes {
  return { ...parts, total: parts.parameter + parts.frozen + parts.gradient + parts.optimizer };
}

/** The paper's programme for P parameters and E LoRA parameters per layer, L layers. */
export function paperCostModel(P: number, E: number, layers: number): CostModel {
  const breakdown = (n: number, prev: number): StateBytes => {
    const trainable = n * P + prev * E;
    return bytesOf({ parameter: 2 * trainable, frozen: 2 * prev * P, gradient: 2 * trainable, optimizer: 12 * trainable });
  };
  return {
    mode: 'paper',
    breakdown,
    // Written as in the paper; equals breakdown(n, prev).total (tested).
    cost: (n, prev) => 16 * n * P + 2 * prev * P + 16 * prev * E,
    vanilla: breakdown(layers, 0),
  };
}

/** P and E of a config (the paper's per-layer parameter and LoRA counts). */
export function paperCounts(c: LlamaConfig, rank: number): { P: number; E: number } {
  return { P: countParameters(c).perLayer.total, E: loraParamsPerLayer(c, rank) };
}

function scale(b: StateBytes, k: number): StateBytes {
  return { parameter: b.parameter * k, frozen: b.frozen * k, gradient: b.gradient * k, optimizer: b.optimizer * k, total: b.total * k };
}

function add(...bs: StateBytes[]): StateBytes {
  return bs.reduce((a, b) => ({
    parameter: a.parameter + b.parameter, frozen: a.frozen + b.frozen, gradient: a.gradient + b.gradient,
    optimizer: a.optimizer + b.optimizer, total: a.total + b.total,
  }));
}

/**
 * The engine's bytes, from the tensor listing of one trainable layer, one frozen layer with its
 * adapters, and the embeddings/norm/head (layer bytes do not depend on the layer's index). A test
 * checks breakdown(n, prev) against the sum of listStageTensors for whole stages.
 */
export function engineCostModel(c: LlamaConfig, rank: number, precision: Precision, trainEmbeddings = true, pet = true): CostModel {
  const trainLayer = sumByCategory(layerTensors(c, 0, true, rank, precision));
  const frozenLayer = sumByCategory(layerTensors(c, 0, false, rank, precision, pet));
  const outerTrain = sumByCategory(outerTensors(c, true, precision));
  const outerLater = trainEmbeddings ? outerTrain : sumByCategory(outerTensors(c, false, precision));
  // prev = 0 exactly in stage 1, where everything trains.
  const breakdown = (n: number, prev: number): StateBytes =>
    add(scale(trainLayer, n), scale(frozenLayer, prev), prev === 0 ? outerTrain : outerLater);
  return { mode: 'engine', breakdown, cost: (n, prev) => breakdown(n, prev).total, vanilla: breakdown(c.num_hidden_layers, 0) };
}
