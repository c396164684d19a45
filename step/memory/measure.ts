/**
 * `step memory`'s measurement: builds the model on a device and runs real training steps
 * (forward, backward, optimizer step) on random tokens through every stage of a split and every
 * transition between stages, in the trainer's order (build, optimizer, steps; at a boundary:
 * free the optimizer and gradients, then `nextStage`: merge, grow, freeze with fresh adapters;
 * then a new optimizer). Each stage and each transition is one peak window of the device's
 * tracker (engine/peak-window.ts), and one more covers the whole run: the tracker's own peak is
 * never reset. Beside each window stands the planner's prediction (engine mode): the model-state
 * bytes must equal it to the byte.
 */
import type { Backend } from '../../engine/backend.js';
import { fromArray, zeros } from '../../engine/creation.js';
import type { ByCategory } from '../../engine/memory.js';
import type { PeakWindow } from '../../engine/peak-window.js';
import type { CarriedState } from '../../engine/optim/optimizer.js';
import { keep, scope, scopeSync } from '../../engine/scope.js';
import { backward } from '../../autograd/backward.js';
import type { LlamaConfig } from '../../models/config.js';
import type { LlamaModel } from '../../models/llama.js';
import type { Plan, Precision, StateBytes } from '../planner/index.js';
import { planStages } from '../planner/index.js';
import { outerParameters } from '../freeze.js';
import { nextStage } from '../stage.js';
import { DEFAULT_TRAIN_OPTIONS } from '../train/options.js';
import type { TrainOptions } from '../train/options.js';
import type { TrainOptimizer } from '../train/session.js';
import { buildModel, makeOptimizer } from '../train/session.js';

export type MemoryMethod = 'vanilla' | 'step';
export const MEMORY_METHODS: readonly MemoryMethod[] = ['vanilla', 'step'];

export interface MemoryRunOptions {
  /** The target model (all L layers). */
  config: LlamaConfig;
  method: MemoryMethod;
  /** Layers added per stage, n_1..n_K; [L] for vanilla. */
  split: readonly number[];
  rank: number;
  precision: Precision;
  batch: number;
  seq: number;
  checkpointActivations: boolean;
  /**
   * Optimizer steps per stage. Each stage allocates its gradients (zeros) with its optimizer, as
   * they are live from a run's second step on, so the first step already shows the steady peak.
   */
  stepsPerStage: number;
  seed: number;
}

export interface PhaseMeasurement {
  phase: 'stage' | 'transition';
  /** The stage (1-based); for a transition, the stage it leads into. */
  stage: number;
  /** Layers of the model during the phase (after growth, for a transition). */
  layers: number;
  newLayers: number;
  frozenLayers: number;
  /** The planner's model-state bytes for the phase. */
  predicted: StateBytes;
  /** The most model state live at once in the phase, with its split. */
  measured: StateBytes;
  match: boolean;
  /** The activation category's own peak in the phase. */
  activation: number;
  /** The phase's peak of all allocated bytes, with the split at that moment. */
  peak: { total: number; breakdown: ByCategory };
  /** Losses of the phase's steps (none for a transition). */
  losses: number[];
  seconds: number;
}

export interface MemoryMeasurement {
  device: string;
  plan: Plan;
  phases: PhaseMeasurement[];
  /** The window over the whole run: model build, every step and transition. */
  wholeRun: { peak: { total: number; breakdown: ByCategory }; modelState: StateBytes; activation: number; predicted: number; match: boolean };
  /** Every phase and the whole run match the planner. */
  match: boolean;
}

/** The planner's engine-mode plan of the run: per stage and transition bytes, and the whole-run peak. */
export function planFor(o: Pick<MemoryRunOptions, 'config' | 'split' | 'rank' | 'precision'>): Plan {
  return planStages({ config: o.config, split: o.split, rank: o.rank, mode: 'engine', precision: o.precision });
}

/** The trainer's options for the building blocks shared with `step train` (model, optimizer, adapters). */
function trainerOptions(o: MemoryRunOptions): TrainOptions {
  return { ...DEFAULT_TRAIN_OPTIONS, precision: o.precision, loraRank: o.rank, loraDropout: 0, seed: o.seed };
}

function stateOf(split: ByCategory | StateBytes): StateBytes {
  const s = { parameter: split.parameter, frozen: split.frozen, gradient: split.gradient, optimizer: split.optimizer, total: 0 };
  s.total = s.parameter + s.frozen + s.gradient + s.optimizer;
  return s;
}

const sameState = (a: StateBytes, b: StateBytes): boolean =>
  a.parameter === b.parameter && a.frozen === b.frozen && a.gradient === b.gradient && a.optimizer === b.optimizer;

/** Random token windows (inputs and the shifted targets) from a small seeded generator (mulberry32). */
function randomBatch(vocab: number, batch: number, seq: number, seed: number): { inputs: number[]; targets: number[] } {
  let a = seed >>> 0;
  const next = (): number => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) % vocab;
  };
  const inputs: number[] = [], targets: number[] = [];
  for (let b = 0; b < batch; b++) {
    const row = Array.from({ length: seq + 1 }, next);
    inputs.push(...row.slice(0, seq));
    targets.push(...row.slice(1));
  }
  return { inputs, targets };
}

/** One training step as `step train` takes it (no accumulation): loss, backward (scaled in mixed precision), AdamW, zeroGrad. */
async function trainingStep(model: LlamaModel, optimizer: TrainOptimizer, o: MemoryRunOptions, device: Backend, seed: number): Promise<number> {
  return scope(async () => {
    const loss = scopeSync(() => {
      const { inputs, targets } = randomBatch(o.config.vocab_size, o.batch, o.seq, seed);
      const l = model.loss(fromArray(inputs, [o.batch, o.seq], { dtype: 'i32', device }), fromArray(targets, [o.batch, o.seq], { dtype: 'i32', device }));
      backward(optimizer.lossScaler ? optimizer.lossScaler.scaleLoss(l) : l);
      return l.detach();
    });
    optimizer.step();
    optimizer.zeroGrad();
    return loss.item();
  });
}

/**
 * Zero gradients for every trainable tensor, as `step train` holds them from its second step on
 * (zeroGrad keeps them); backward then accumulates into them in place.
 */
function allocateGradients(model: LlamaModel): void {
  for (const p of model.parameters()) p.grad ??= keep(zeros(p.shape, { dtype: p.dtype, device: p.backend, category: 'gradient', label: `grad:${p.label}` }));
}

/**
 * Runs the measurement (see the file comment). `onPhase` hears each phase as it ends (progress).
 * Everything it allocated is freed when it returns or throws.
 */
export async function measureMemory(o: MemoryRunOptions, device: Backend, onPhase?: (p: PhaseMeasurement) => void): Promise<MemoryMeasurement> {
  const plan = planFor(o);
  const train = trainerOptions(o);
  const phases: PhaseMeasurement[] = [];
  let model: LlamaModel | null = null;
  let optimizer: TrainOptimizer | null = null;
  let window: PeakWindow | null = null;
  let started = 0;
  const open = (): void => { window = device.tracker.openPeakWindow(); started = performance.now(); };
  const close = (m: Omit<PhaseMeasurement, 'measured' | 'match' | 'activation' | 'peak' | 'seconds'>): void => {
    const w = window!;
    w.close();
    const r = w.report();
    const measured = stateOf(r.peakModelState.breakdown);
    const phase = { ...m, measured, match: sameState(measured, m.predicted), activation: r.peakByCategory.activation, peak: r.peak, seconds: (performance.now() - started) / 1000 };
    phases.push(phase);
    onPhase?.(phase);
  };
  const whole = device.tracker.openPeakWindow();
  let carried: CarriedState[] = [];
  try {
    let layers = 0;
    for (const [i, n] of o.split.entries()) {
      const stage = i + 1, before = layers;
      if (stage === 1) {
        open();
        model = buildModel({ ...o.config, num_hidden_layers: n }, device, train, [], o.seed + 1);
      } else {
        // the trainer's boundary (--stage-optimizer keep, its default): the Adam state of the
        // embeddings, norm and head, which train on, is handed over; the rest of the old optimizer
        // state and every gradient go first (not part of the transition's window: the planner's
        // transition starts once they are freed)
        carried = await optimizer!.releaseState(outerParameters(model!));
        optimizer!.dispose();
        optimizer = null;
        for (const [, t] of model!.namedTensors()) { t.grad?.dispose(); t.grad = null; }
        open();
        const next = nextStage(model!, n, { lora: { rank: o.rank, alpha: train.loraAlpha, seed: o.seed + stage, dropout: 0 } });
        model = next.model;
        close({ phase: 'transition', stage, layers: before + n, newLayers: n, frozenLayers: before, predicted: plan.transitions[i - 1]!.bytes, losses: [] });
        open();
      }
      layers += n;
      model!.checkpointActivations = o.checkpointActivations;
      optimizer = makeOptimizer(model!, train, carried);
      carried = [];
      allocateGradients(model!);
      const losses: number[] = [];
      for (let s = 0; s < o.stepsPerStage; s++) losses.push(await trainingStep(model!, optimizer, o, device, o.seed * 7919 + stage * 104729 + s));
      close({ phase: 'stage', stage, layers, newLayers: n, frozenLayers: before, predicted: plan.stages[i]!.bytes, losses });
    }
  } finally {
    (window as PeakWindow | null)?.close();
    whole.close();
    for (const c of carried) { for (const t of c.tensors.values()) t.dispose(); c.master?.dispose(); } // a failed transition
    optimizer?.dispose();
    (model as LlamaModel | null)?.dispose();
  }
  const r = whole.report();
  const modelState = stateOf(r.peakModelState.breakdown);
  const wholeMatch = modelState.total === plan.peak;
  return {
    device: device.description, plan, phases,
    wholeRun: { peak: r.peak, modelState, activation: r.peakByCategory.activation, predicted: plan.peak, match: wholeMatch },
    match: wholeMatch && phases.every((p) => p.match),
  };
}
