/**
 * `step memory`'s measurement: builds the model on a device and runs real training steps
 * (forward, backward, optimizer step) on random tokens through every phase of a method's run, in
 * the trainer's order. Vanilla and STEP: every stage of a split and every transition between
 * stages (build, optimizer, steps; at a boundary: free the optimizer and gradients, then
 * `nextStage`: merge, grow, freeze with fresh adapters; then a new optimizer). GaLore and ReLoRA:
 * see baselines.ts. Each phase is one peak window of the device's tracker (engine/peak-window.ts),
 * and one more covers the whole run: the tracker's own peak is never reset. Beside each window
 * stands the planner's prediction (engine mode, predict.ts): the model-state bytes must equal it
 * to the byte, in every category.
 */
import type { Backend } from '../../engine/backend.js';
import type { ByCategory } from '../../engine/memory.js';
import type { StateBytes } from '../planner/index.js';
import { outerParameters } from '../freeze.js';
import { nextStage } from '../stage.js';
import { DEFAULT_TRAIN_OPTIONS } from '../train/options.js';
import type { TrainOptions } from '../train/options.js';
import { buildModel } from '../train/session.js';
import { measureGalore, measureRelora } from './baselines.js';
import type { PhaseMeasurement } from './harness.js';
import { MeasuredRun, stateOf } from './harness.js';
import type { MemoryPrediction, MemoryRunOptions } from './predict.js';
import { predictMemory } from './predict.js';

export type { PhaseMeasurement } from './harness.js';
export type { MemoryMethod, MemoryRunOptions, MemoryPrediction, PhaseKind } from './predict.js';
export { MEMORY_METHODS, planFor, predictMemory } from './predict.js';

export interface MemoryMeasurement {
  device: string;
  /** The planner's phases and whole-run peak the measurement is compared with. */
  prediction: MemoryPrediction;
  phases: PhaseMeasurement[];
  /** The window over the whole run: model build, every step and transition. */
  wholeRun: { peak: { total: number; breakdown: ByCategory }; modelState: StateBytes; activation: number; predicted: number; match: boolean };
  /** What else the reader should know (GaLore's projector refreshes, ReLoRA's restart). */
  notes: string[];
  /** Every phase and the whole run match the planner. */
  match: boolean;
}

/** The trainer's options for the building blocks shared with `step train` (model, optimizer, adapters). */
function trainerOptions(o: MemoryRunOptions): TrainOptions {
  return {
    ...DEFAULT_TRAIN_OPTIONS, method: o.method, precision: o.precision, loraRank: o.rank, loraDropout: 0, seed: o.seed,
    ...(o.galore ? { galoreRank: o.galore.rank, galoreUpdateGap: o.galore.updateGap } : {}),
  };
}

/** Vanilla (a split of one stage) and STEP: every stage and the transition into it. */
async function measureStages(run: MeasuredRun): Promise<void> {
  const { o, device, train } = run;
  for (const [i, n] of o.split.entries()) {
    const stage = i + 1;
    if (stage === 1) {
      run.open();
      run.model = buildModel({ ...o.config, num_hidden_layers: n }, device, train, [], o.seed + 1);
    } else {
      // the trainer's boundary (--stage-optimizer keep, its default): the Adam state of the
      // embeddings, norm and head, which train on, is handed over; the rest of the old optimizer
      // state and every gradient go first (not part of the transition's window: the planner's
      // transition starts once they are freed)
      run.carried = await run.optimizer!.releaseState(outerParameters(run.model!));
      run.freeOptimizerAndGradients();
      run.open();
      run.model = nextStage(run.model!, n, { lora: { rank: o.rank, alpha: train.loraAlpha, seed: o.seed + stage, dropout: 0 } }).model;
      run.close('transition', stage);
      run.open();
    }
    run.model!.checkpointActivations = o.checkpointActivations;
    run.startOptimizer();
    run.close('stage', stage, await run.steps(stage));
  }
}

/**
 * Runs the measurement (see the file comment). `onPhase` hears each phase as it ends (progress).
 * `prediction`: what to compare with (default the planner's; tests pass a wrong one to see it
 * caught). Everything it allocated is freed when it returns or throws.
 */
export async function measureMemory(o: MemoryRunOptions, device: Backend, onPhase?: (p: PhaseMeasurement) => void,
  prediction: MemoryPrediction = predictMemory(o)): Promise<MemoryMeasurement> {
  const run = new MeasuredRun(o, device, trainerOptions(o), prediction, onPhase);
  const whole = device.tracker.openPeakWindow();
  try {
    if (o.method === 'galore') await measureGalore(run);
    else if (o.method === 'relora') await measureRelora(run);
    else await measureStages(run);
  } finally {
    whole.close();
    run.dispose();
  }
  const r = whole.report();
  const modelState = stateOf(r.peakModelState.breakdown);
  const wholeMatch = modelState.total === prediction.peak;
  return {
    device: device.description, prediction, phases: run.phases, notes: run.notes,
    wholeRun: { peak: r.peak, modelState, activation: r.peakByCategory.activation, predicted: prediction.peak, match: wholeMatch },
    match: wholeMatch && run.phases.length === prediction.phases.length && run.phases.every((p) => p.match),
  };
}
