import { CATEGORIES } from '../../engine/memory.js';
import { Generator } from '../../engine/random.js';
import { jaggedCosineSchedule, warmupCosineSchedule } from '../../engine/optim/schedules.js';
import type { LlamaConfig } from '../../models/config.js';
import { freezeLayersWithLora, restartLora } from '../freeze.js';
import type { TrainerState } from './checkpoint.js';
import type { TrainOptions } from './options.js';
import { galorePlan } from './galore-method.js';
import { makeOptimizer } from './session.js';
import { wholeRunPeak } from './run-log.js';
import type { Run } from './trainer.js';
import { stepPlan } from './step-method.js';

/**
 * What a training method decides: the model's structure at each step (growth and freezing for
 * STEP, merge-and-restart for ReLoRA), the learning-rate multiplier, and the stage boundaries.
 */
export interface MethodPlan {
  stages: number;
  /** Layers of the model at step 0. */
  initialLayers: number;
  describe(): string;
  /** Extra fields of the run's `start` event (STEP: the plan it trains with). */
  startFields?(): Record<string, unknown>;
  lrScale(state: TrainerState): number;
  /** Runs before each step: grows, freezes or restarts when the step calls for it. */
  beforeStep(run: Run): Promise<void>;
  /** Runs after the first optimizer step of a stage (model state is then fully allocated). */
  afterFirstStep(run: Run): void;
  firstStepOfStage(stage: number): number;
  isStageEnd(step: number): boolean;
}

export function planMethod(o: TrainOptions, target: LlamaConfig): MethodPlan {
  if (o.method === 'step') return stepPlan(o, target);
  if (o.method === 'relora') return reloraPlan(o, target);
  if (o.method === 'galore') return galorePlan(o, target);
  const schedule = warmupCosineSchedule({ warmupSteps: o.warmupSteps, totalSteps: o.steps, minRatio: o.minLrRatio });
  return {
    stages: 1, initialLayers: target.num_hidden_layers,
    describe: () => `method: vanilla, ${target.num_hidden_layers} layers, ${o.steps} steps`,
    lrScale: (s) => schedule(s.step), beforeStep: async () => {}, afterFirstStep: (run) => logMemory(run, null),
    firstStepOfStage: () => 0, isStageEnd: () => false,
  };
}

/**
 * Logs the model-state bytes by category after a stage's first step, with the planner's
 * prediction, and the run's peak so far (the tracker's peak is never reset inside a run).
 */
export function logMemory(run: Run, predicted: Record<string, number> | null): void {
  const live = run.device.memory().live;
  const measured = Object.fromEntries(CATEGORIES.filter((c) => ['parameter', 'frozen', 'gradient', 'optimizer'].includes(c)).map((c) => [c, live[c]]));
  const total = Object.values(measured).reduce((a, b) => a + b, 0);
  const match = predicted ? Object.keys(measured).every((k) => measured[k] === predicted[k]) : null;
  run.log.write('memory', { step: run.state.step, stage: run.state.stage, measured, measuredTotal: total, predicted, match, peak: wholeRunPeak(run.device) });
  if (predicted && !match) run.progress.note(`warning: stage ${run.state.stage + 1} model-state bytes ${JSON.stringify(measured)} differ from the planner's ${JSON.stringify(predicted)}`);
}

function reloraPlan(o: TrainOptions, target: LlamaConfig): MethodPlan {
  const warm = o.reloraWarmStart, every = o.reloraEvery;
  const schedule = jaggedCosineSchedule({ firstWarmupSteps: o.warmupSteps, restartEvery: every, restartWarmupSteps: Math.min(o.stageWarmupSteps, every), totalSteps: o.steps, minRatio: o.minLrRatio });
  const all = [...Array(target.num_hidden_layers).keys()];
  return {
    stages: 1, initialLayers: target.num_hidden_layers,
    describe: () => `method: ReLoRA, ${target.num_hidden_layers} layers, full-rank warm start ${warm} steps, LoRA rank ${o.loraRank}, restart every ${every} steps`,
    lrScale: (s) => schedule(s.step),
    async beforeStep(run) {
      const { state } = run;
      if (state.step === warm && state.frozenLayers.length === 0) {
        // the full-rank optimizer state and gradients go before the adapters are allocated
        run.optimizer.dispose();
        for (const [, t] of run.model.namedTensors()) { t.grad?.dispose(); t.grad = null; }
        freezeLayersWithLora(run.model, all, { rank: o.loraRank, alpha: o.loraAlpha, seed: o.seed + 1, dropout: o.loraDropout });
        state.frozenLayers = all;
        state.lora = { rank: o.loraRank, alpha: o.loraAlpha };
        state.lastRestart = state.step;
        run.optimizer = makeOptimizer(run.model, o);
        run.log.write('relora-start', { step: state.step });
      } else if (state.frozenLayers.length && state.step > warm && (state.step - warm) % every === 0 && state.lastRestart !== state.step) {
        await restart(run, o);
      }
    },
    afterFirstStep: (run) => logMemory(run, null),
    firstStepOfStage: () => 0, isStageEnd: () => false,
  };
}

/** Linears per decoder layer (q, k, v, o, gate, up, down): the adapter slots of a layer. */
const LINEARS_PER_LAYER = 7;
/** Philox blocks of a restart stream reserved per adapter slot: 2^24 blocks = 2^26 uniforms, more than any A holds. */
const BLOCKS_PER_ADAPTER = 2 ** 24;

/**
 * The random stream an adapter is redrawn from at a ReLoRA restart at `step`: seed
 * runSeed + step, and in it a window of its own per adapter slot (layer, linear), so no two
 * adapters share draws, no two restarts share a seed, and a resumed run redraws exactly the
 * adapters the uninterrupted run drew.
 */
export function restartGenerator(runSeed: number, step: number, layer: number, linear: number): Generator {
  const g = new Generator(runSeed + step);
  g.take((layer * LINEARS_PER_LAYER + linear) * BLOCKS_PER_ADAPTER);
  return g;
}

/** ReLoRA's restart: merge the adapters into the weights, re-initialise them, prune their Adam state (99% by magnitude). */
export async function restart(run: Run, o: TrainOptions): Promise<void> {
  const { state } = run;
  const adapters = run.model.layers.flatMap((l) => l.linears.flatMap((x) => (x.lora ? [x.lora] : [])));
  restartLora(run.model, (layer, linear) => restartGenerator(o.seed, state.step, layer, linear));
  await run.optimizer.resetState(adapters.flatMap((a) => [a.A, a.B]), { mode: 'magnitude', p: 0.99 });
  state.lastRestart = state.step;
  run.log.write('relora-restart', { step: state.step });
}
