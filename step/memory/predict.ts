/**
 * What `step memory` expects to measure: for each method the phases its run goes through, in
 * the trainer's order, with the planner's model-state bytes for each (engine mode), and the
 * whole run's peak. Vanilla and STEP come from the STEP planner (stages and transitions),
 * GaLore from galoreModelState (one phase), ReLoRA from reloraModelState (warm start, switch,
 * LoRA phase, restart).
 */
import type { LlamaConfig } from '../../models/config.js';
import type { GaLoreModelState, GaLoreTensorSpec, Plan, Precision, ReloraModelState, StateBytes } from '../planner/index.js';
import { galoreModelState, listStageTensors, planStages, reloraModelState } from '../planner/index.js';

export type MemoryMethod = 'vanilla' | 'step' | 'galore' | 'relora';
export const MEMORY_METHODS: readonly MemoryMethod[] = ['vanilla', 'step', 'galore', 'relora'];

export interface MemoryRunOptions {
  /** The target model (all L layers). */
  config: LlamaConfig;
  method: MemoryMethod;
  /** Layers added per stage, n_1..n_K; [L] for every method but STEP. */
  split: readonly number[];
  /** LoRA rank: STEP's adapters on frozen layers, ReLoRA's on every layer. */
  rank: number;
  precision: Precision;
  batch: number;
  seq: number;
  checkpointActivations: boolean;
  /**
   * Optimizer steps per stage (ReLoRA: in its warm start, before and after its restart). As in
   * step train, every step starts with the gradients set to none and its backward makes them, so
   * the first step already shows the steady peak.
   */
  stepsPerStage: number;
  seed: number;
  /** GaLore only: projection rank and projector refresh period T (steps). */
  galore?: { rank: number; updateGap: number };
}

/** A stage's training, a STEP transition (or ReLoRA's switch to LoRA), or ReLoRA's merge-and-restart with the steps after it. */
export type PhaseKind = 'stage' | 'transition' | 'restart';

export interface PredictedPhase {
  phase: PhaseKind;
  /** The stage (1-based); for a transition, the stage it leads into. */
  stage: number;
  /** The row's name: `stage 2`, `1->2`, `GaLore`, `warm start`, ... */
  label: string;
  /** Layers of the model during the phase (after growth, for a transition). */
  layers: number;
  newLayers: number;
  frozenLayers: number;
  bytes: StateBytes;
}

/** A model-state tensor as the planners list it (STEP's roles plus GaLore's projector). */
export type PlannedTensor = GaLoreTensorSpec;

export interface MemoryPrediction {
  phases: PredictedPhase[];
  /** The whole run's model-state peak, the first phase at it and the tensors live then. */
  peak: number;
  peakPhase: PredictedPhase;
  peakTensors: readonly PlannedTensor[];
  /** Vanilla training of the target (every tensor trains, AdamW). */
  vanilla: StateBytes;
  /** Vanilla and STEP: the STEP planner's plan; GaLore, ReLoRA: their model state. */
  plan: Plan | null;
  galore: GaLoreModelState | null;
  relora: ReloraModelState | null;
  /** The `step plan --mode engine --precision P` flags that print these bytes (and where). */
  planFlags: string;
}

/** The STEP planner's engine-mode plan of a vanilla or STEP run: per stage and transition bytes, and the whole-run peak. */
export function planFor(o: Pick<MemoryRunOptions, 'config' | 'split' | 'rank' | 'precision'>): Plan {
  return planStages({ config: o.config, split: o.split, rank: o.rank, mode: 'engine', precision: o.precision });
}

const phase = (p: PhaseKind, stage: number, label: string, layers: number, newLayers: number, frozenLayers: number, bytes: StateBytes): PredictedPhase =>
  ({ phase: p, stage, label, layers, newLayers, frozenLayers, bytes });

/** A vanilla or STEP plan's phases (each stage after the transition into it), its peak and the tensors live then. */
export function predictionFromPlan(config: LlamaConfig, plan: Plan, method: 'vanilla' | 'step'): MemoryPrediction {
  const phases: PredictedPhase[] = [];
  for (const s of plan.stages) {
    const t = plan.transitions[s.stage - 2];
    if (t) phases.push(phase('transition', s.stage, `${s.stage - 1}->${s.stage}`, s.layers, s.newLayers, s.frozenLayers, t.bytes));
    phases.push(phase('stage', s.stage, `stage ${s.stage}`, s.layers, s.newLayers, s.frozenLayers, s.bytes));
  }
  const peakPhase = phases.find((p) => p.stage === plan.peakStage && p.phase === plan.peakAt)!;
  let peakTensors: PlannedTensor[] = listStageTensors(config, { split: plan.split, stage: plan.peakStage, rank: plan.rank, precision: plan.precision, trainEmbeddings: plan.trainEmbeddings, pet: plan.pet });
  if (plan.peakAt === 'transition') peakTensors = peakTensors.filter((t) => t.role === 'weight');
  const flags = method === 'vanilla' ? `--split ${plan.split.join(',')}` : `--split ${plan.split.join(',')} --rank ${plan.rank}`;
  return { phases, peak: plan.peak, peakPhase, peakTensors, vanilla: plan.vanilla, plan, galore: null, relora: null, planFlags: flags };
}

/** The run's phases with the planner's bytes, in the order `measureMemory` goes through them. */
export function predictMemory(o: MemoryRunOptions): MemoryPrediction {
  if (o.method === 'vanilla' || o.method === 'step') return predictionFromPlan(o.config, planFor(o), o.method);
  const L = o.config.num_hidden_layers;
  const vanilla = planFor({ ...o, split: [L], rank: 1 }).vanilla; // vanilla's bytes do not depend on a LoRA rank
  if (o.method === 'galore') {
    const galore = galoreModelState(o.config, { rank: o.galore!.rank, precision: o.precision });
    const only = phase('stage', 1, 'GaLore', L, L, 0, galore.bytes);
    return { phases: [only], peak: galore.bytes.total, peakPhase: only, peakTensors: galore.tensors, vanilla, plan: null, galore, relora: null, planFlags: `--stages 2 --galore-rank ${galore.rank}: its GaLore line` };
  }
  const relora = reloraModelState(o.config, { rank: o.rank, precision: o.precision });
  const phases = [
    phase('stage', 1, 'warm start', L, L, 0, relora.warmStart),
    phase('transition', 2, 'warm->LoRA', L, 0, L, relora.switch),
    phase('stage', 2, 'LoRA', L, 0, L, relora.lora),
    phase('restart', 2, 'restart', L, 0, L, relora.lora),
  ];
  const peakPhase = phases.find((p) => p.bytes.total === relora.peak)!;
  const peakTensors = relora.peakAt === 'warm start' ? relora.warmStartTensors
    : relora.peakAt === 'LoRA' ? relora.loraTensors : relora.loraTensors.filter((t) => t.role === 'weight');
  return { phases, peak: relora.peak, peakPhase, peakTensors, vanilla, plan: null, galore: null, relora, planFlags: `--stages 2 --rank ${o.rank}: its ReLoRA line` };
}
