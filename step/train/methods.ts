import { CATEGORIES } from '../../engine/memory.js';
import { Generator } from '../../engine/random.js';
import { jaggedCosineSchedule, warmupCosineSchedule } from '../../engine/optim/schedules.js';
import type { LlamaConfig } from '../../models/config.js';
import { freezeLayersWithLora, mergeLora, restartLora } from '../freeze.js';
import { growModel } from '../growth.js';
import { planStages } from '../planner/plan.js';
import { listStageTensors } from '../planner/tensors.js';
import type { TrainerState } from './checkpoint.js';
import type { TrainOptions } from './options.js';
import { galorePlan } from './galore-method.js';
import { makeOptimizer } from './session.js';
import { wholeRunPeak } from './run-log.js';
import type { Run } from './trainer.js';

/**
 * What a training method decides: the model's structure at each step (growth and freezing for
 * STEP, merge-and-restart for ReLoRA), the learning-rate multiplier, and the stage boundaries.
 */
export interface MethodPlan {
  stages: number;
  /** Layers of the model at step 0. */
  initialLayers: number;
  describe(): string;
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

function stepPlan(o: TrainOptions, target: LlamaConfig): MethodPlan {
  const L = target.num_hidden_layers;
  const split = o.split ?? planStages({ config: target, stages: o.stages, rank: o.loraRank, mode: 'engine', precision: o.precision }).split;
  if (split.reduce((a, b) => a + b, 0) !== L) throw new Error(`STEP: the split [${split.join(',')}] must sum to the target's ${L} layers`);
  const K = split.length;
  if (o.stageTokens && o.stageTokens.length !== K) throw new Error(`STEP: --stage-tokens gives ${o.stageTokens.length} stages but the split has ${K}`);
  const perStep = o.batchSize * o.seqLen * o.gradAccum;
  // stage s starts after the tokens of the stages before it (equal shares of the run by default)
  const stageSteps = o.stageTokens ? o.stageTokens.map((t) => Math.round(t / perStep)) : split.map((_, s) => Math.round(((s + 1) * o.steps) / K) - Math.round((s * o.steps) / K));
  const starts = stageSteps.map((_, s) => stageSteps.slice(0, s).reduce((a, b) => a + b, 0));
  const schedule = warmupCosineSchedule({ warmupSteps: o.warmupSteps, totalSteps: o.steps, minRatio: o.minLrRatio });
  const stageOf = (step: number) => starts.filter((st) => st <= step).length - 1;
  return {
    stages: K, initialLayers: split[0]!,
    describe: () => `method: STEP, split [${split.join(', ')}] of ${L} layers, LoRA rank ${o.loraRank}; stages start at steps ${starts.join(', ')}${o.stageReloraEvery ? `; adapters restart every ${o.stageReloraEvery} steps (ReLoRA)` : ''}`,
    lrScale: (s) => {
      const ramp = s.stage > 0 && o.stageWarmupSteps > 0 ? Math.min(1, (s.step - s.stageStartStep + 1) / o.stageWarmupSteps) : 1;
      return schedule(s.step) * ramp;
    },
    async beforeStep(run) {
      const next = stageOf(run.state.step);
      if (next <= run.state.stage) {
        // ReLoRA inside a LoRA stage: periodic merge-and-restart of the adapters
        const { state } = run, every = o.stageReloraEvery;
        const inStage = state.step - state.stageStartStep;
        if (every > 0 && state.stage > 0 && inStage > 0 && inStage % every === 0 && state.lastRestart !== state.step) await restart(run, o);
        return;
      }
      // stage boundary. The old optimizer state and gradients go first, so the grown model is
      // never allocated beside them; then merge the adapters, grow, freeze the old layers with
      // fresh adapters, and make a new optimizer (its state is allocated at the stage's first step).
      const { state } = run;
      run.optimizer.dispose();
      for (const [, t] of run.model.namedTensors()) { t.grad?.dispose(); t.grad = null; }
      mergeLora(run.model);
      const { model, origin } = growModel(run.model, split[next]!, { operator: 'interpolation-mean', placement: 'upper' });
      run.model = model;
      run.config = { ...run.config, num_hidden_layers: model.layers.length };
      state.frozenLayers = origin.flatMap((x, i) => (x === null ? [] : [i]));
      freezeLayersWithLora(model, state.frozenLayers, { rank: o.loraRank, alpha: o.loraAlpha, seed: o.seed + next + 1, dropout: o.loraDropout });
      run.optimizer = makeOptimizer(model, o);
      state.stage = next;
      state.stageStartStep = run.state.step;
      state.lora = { rank: o.loraRank, alpha: o.loraAlpha };
      run.log.write('stage', { stage: next, step: state.step, layers: model.layers.length, frozenLayers: state.frozenLayers });
      run.progress.note(`stage ${next + 1}/${K} at step ${state.step}: ${model.layers.length} layers (${split[next]} new), ${state.frozenLayers.length} frozen with LoRA rank ${o.loraRank}`);
    },
    afterFirstStep(run) {
      const stage = run.state.stage + 1;
      const tensors = listStageTensors({ ...target, vocab_size: run.config.vocab_size }, { split, stage, rank: o.loraRank, precision: o.precision, newLayers: newLayerIndices(run) });
      const predicted: Record<string, number> = { parameter: 0, frozen: 0, gradient: 0, optimizer: 0 };
      for (const t of tensors) predicted[t.category] = (predicted[t.category] ?? 0) + t.bytes;
      logMemory(run, predicted);
    },
    firstStepOfStage: (stage) => starts[stage] ?? 0,
    isStageEnd: (step) => starts.includes(step) && step > 0,
  };
}

function newLayerIndices(run: Run): number[] {
  const frozen = new Set(run.state.frozenLayers);
  return run.model.layers.map((_, i) => i).filter((i) => !frozen.has(i));
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
async function restart(run: Run, o: TrainOptions): Promise<void> {
  const { state } = run;
  const adapters = run.model.layers.flatMap((l) => l.linears.flatMap((x) => (x.lora ? [x.lora] : [])));
  restartLora(run.model, (layer, linear) => restartGenerator(o.seed, state.step, layer, linear));
  await run.optimizer.resetState(adapters.flatMap((a) => [a.A, a.B]), { mode: 'magnitude', p: 0.99 });
  state.lastRestart = state.step;
  run.log.write('relora-restart', { step: state.step });
}
