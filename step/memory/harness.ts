/**
 * What every `step memory` method shares: random token batches, one training step as `step train`
 * takes it (gradients set to none before the step, made by its backward, live until the next step),
 * and the run's measurement windows
 * (engine/peak-window.ts): one per phase, each compared with the planner's bytes for that phase,
 * while the tracker's own peak (the whole run) is never reset.
 */
import type { Backend } from '../../engine/backend.js';
import { fromArray } from '../../engine/creation.js';
import type { ByCategory } from '../../engine/memory.js';
import type { CarriedState } from '../../engine/optim/optimizer.js';
import type { PeakWindow } from '../../engine/peak-window.js';
import { scope, scopeSync } from '../../engine/scope.js';
import { backward } from '../../autograd/backward.js';
import type { LlamaModel } from '../../models/llama.js';
import type { StateBytes } from '../planner/index.js';
import type { TrainOptions } from '../train/options.js';
import type { TrainOptimizer } from '../train/session.js';
import { makeOptimizer } from '../train/session.js';
import type { MemoryPrediction, MemoryRunOptions, PhaseKind, PredictedPhase } from './predict.js';

export interface PhaseMeasurement extends Omit<PredictedPhase, 'bytes'> {
  /** The planner's model-state bytes for the phase. */
  predicted: StateBytes;
  /** The most model state live at once in the phase, with its split. */
  measured: StateBytes;
  /** Measured = predicted in every category. */
  match: boolean;
  /** The activation category's own peak in the phase. */
  activation: number;
  /** The phase's peak of all allocated bytes, with the split at that moment. */
  peak: { total: number; breakdown: ByCategory };
  /** Losses of the phase's steps (none for a transition). */
  losses: number[];
  seconds: number;
}

export function stateOf(split: ByCategory | StateBytes): StateBytes {
  const s = { parameter: split.parameter, frozen: split.frozen, gradient: split.gradient, optimizer: split.optimizer, total: 0 };
  s.total = s.parameter + s.frozen + s.gradient + s.optimizer;
  return s;
}

/** Equal in every model-state category (a total that matches by luck does not). */
export const sameState = (a: StateBytes, b: StateBytes): boolean =>
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

/**
 * One measured run: the model and optimizer of the moment, the phases measured so far, notes for
 * the reader, and the window of the phase in progress. `dispose` frees whatever is left.
 */
export class MeasuredRun {
  model: LlamaModel | null = null;
  optimizer: TrainOptimizer | null = null;
  /** Optimizer state released at a STEP boundary and not yet adopted. */
  carried: CarriedState[] = [];
  readonly phases: PhaseMeasurement[] = [];
  readonly notes: string[] = [];
  private window: PeakWindow | null = null;
  private started = 0;

  constructor(readonly o: MemoryRunOptions, readonly device: Backend, readonly train: TrainOptions, readonly prediction: MemoryPrediction,
    private readonly onPhase?: (p: PhaseMeasurement) => void) {}

  /** Opens the window of the next phase. */
  open(): void {
    this.window = this.device.tracker.openPeakWindow();
    this.started = performance.now();
  }

  /** Closes the phase's window and records it beside the planner's bytes for (kind, stage). */
  close(kind: PhaseKind, stage: number, losses: number[] = []): void {
    const w = this.window!;
    this.window = null;
    w.close();
    const r = w.report();
    const { bytes, ...meta } = this.predicted(kind, stage);
    const measured = stateOf(r.peakModelState.breakdown);
    const phase: PhaseMeasurement = {
      ...meta, predicted: bytes, measured, match: sameState(measured, bytes), activation: r.peakByCategory.activation,
      peak: r.peak, losses, seconds: (performance.now() - this.started) / 1000,
    };
    this.phases.push(phase);
    this.onPhase?.(phase);
  }

  private predicted(kind: PhaseKind, stage: number): PredictedPhase {
    const p = this.prediction.phases.find((x) => x.phase === kind && x.stage === stage);
    if (!p) throw new Error(`step memory: no predicted ${kind} for stage ${stage} (internal)`);
    return p;
  }

  /** The trainer's optimizer for the model (adopting `carried`); gradients come with the first backward, as in step train. */
  startOptimizer(): void {
    this.optimizer = makeOptimizer(this.model!, this.train, this.carried);
    this.carried = [];
  }

  /** Frees the optimizer (what it did not release) and every gradient, as the trainer does before a structural change. */
  freeOptimizerAndGradients(): void {
    this.optimizer!.dispose();
    this.optimizer = null;
    for (const [, t] of this.model!.namedTensors()) { t.grad?.dispose(); t.grad = null; }
  }

  /** `stepsPerStage` training steps as `step train` takes them (no accumulation); `salt` varies the tokens per call. */
  async steps(salt: number): Promise<number[]> {
    const losses: number[] = [];
    for (let s = 0; s < this.o.stepsPerStage; s++) losses.push(await this.trainingStep(this.o.seed * 7919 + salt * 104729 + s));
    return losses;
  }

  /**
   * zeroGrad (set to none), loss, backward (scaled in mixed precision), optimizer step: step
   * train's order, so every step, the first included, has the steady peak.
   */
  private async trainingStep(seed: number): Promise<number> {
    const { model, optimizer, o, device } = this;
    optimizer!.zeroGrad({ setToNone: true });
    return scope(async () => {
      const loss = scopeSync(() => {
        const { inputs, targets } = randomBatch(o.config.vocab_size, o.batch, o.seq, seed);
        const l = model!.loss(fromArray(inputs, [o.batch, o.seq], { dtype: 'i32', device }), fromArray(targets, [o.batch, o.seq], { dtype: 'i32', device }));
        backward(optimizer!.lossScaler ? optimizer!.lossScaler.scaleLoss(l) : l);
        return l.detach();
      });
      optimizer!.step();
      return loss.item();
    });
  }

  /** Frees everything still allocated (also after a failure mid-phase). */
  dispose(): void {
    this.window?.close();
    for (const c of this.carried) { for (const t of c.tensors.values()) t.dispose(); c.master?.dispose(); }
    this.optimizer?.dispose();
    this.model?.dispose();
  }
}
