/**
 * STEP as `step train --method step` runs it: the planner's split for the run's options, stage
 * lengths and learning rates from --stage-timing (stage-schedule.ts), and at each boundary the
 * transition (free, merge, grow, freeze, new optimizer) with the run's procedure choices:
 * growth operator and placement, PET adapters or none (no-PET), embeddings training on or
 * frozen, Adam state of what trains on kept or reset.
 */
import type { LlamaConfig } from '../../models/config.js';
import { formatPlan } from '../planner/format.js';
import { listStageTensors } from '../planner/tensors.js';
import { freezeLayers, freezeLayersWithLora, freezeOuter, mergeLora, outerParameters } from '../freeze.js';
import { growModel } from '../growth.js';
import type { MethodPlan } from './methods.js';
import { logMemory, restart } from './methods.js';
import type { TrainOptions } from './options.js';
import { planCommand, runPlan, runPlanOptions } from './run-plan.js';
import { makeOptimizer } from './session.js';
import { stageLrSchedule, stageSchedule } from './stage-schedule.js';
import type { Run } from './trainer.js';

/** One line per procedure choice, as the run's description, log and report show them. */
export function describeProcedure(o: TrainOptions): string {
  return [
    `growth ${o.growthOperator} / ${o.placement}`,
    o.noPet ? 'old layers frozen without adapters (no-PET)' : `old layers frozen with LoRA rank ${o.loraRank}`,
    o.freezeEmbeddings ? 'embeddings, norm and head frozen after stage 1' : 'embeddings, norm and head train in every stage',
    o.stageOptimizer === 'keep' ? 'their Adam state kept across boundaries' : 'optimizer state reset at each boundary',
    o.stageTiming === 'paper' ? 'paper timing (each stage its own warm-up + cosine, grown at 75% of its plan)' : 'equal timing (one warm-up + cosine over the run)',
  ].join('; ');
}

export function stepPlan(o: TrainOptions, target: LlamaConfig): MethodPlan {
  const L = target.num_hidden_layers;
  const plan = runPlan(o, target);
  const split = plan.split;
  const K = split.length;
  const schedule = stageSchedule(o, K);
  if (schedule.total !== o.steps) throw new Error(`STEP: the stages last ${schedule.total} steps but the run has ${o.steps} (internal error: validateTrainOptions sets --steps)`);
  const lr = stageLrSchedule(o, schedule);
  const { starts } = schedule;
  const stageOf = (step: number) => starts.filter((st) => st <= step).length - 1;
  const command = planCommand(o, target, plan);
  const summary = () => `method: STEP, split [${split.join(', ')}] of ${L} layers; ${describeProcedure(o)}; stages start at steps ${starts.join(', ')}` +
    (o.stageTiming === 'paper' ? ` (planned lengths ${schedule.planned.join(', ')})` : '') +
    (o.stageReloraEvery ? `; adapters restart every ${o.stageReloraEvery} steps (ReLoRA)` : '');
  return {
    stages: K, initialLayers: split[0]!,
    describe: () => `${summary()}\nplan (the same as \`${command}\`):\n${formatPlan(plan, `this run's target (preset ${o.preset})`)}`,
    startFields: () => ({ stepPlan: plan, planCommand: command, stageSteps: schedule.steps, stagePlannedSteps: schedule.planned, procedure: describeProcedure(o) }),
    lrScale: (s) => lr(s.step, s.stage),
    async beforeStep(run) {
      const next = stageOf(run.state.step);
      if (next > run.state.stage) return transition(run, o, next, split);
      // ReLoRA inside a LoRA stage: periodic merge-and-restart of the adapters
      const { state } = run, every = o.stageReloraEvery;
      const inStage = state.step - state.stageStartStep;
      if (every > 0 && state.stage > 0 && inStage > 0 && inStage % every === 0 && state.lastRestart !== state.step) await restart(run, o);
    },
    afterFirstStep(run) {
      const stage = run.state.stage + 1;
      const p = runPlanOptions(o);
      const tensors = listStageTensors({ ...target, vocab_size: run.config.vocab_size }, { split, stage, rank: o.loraRank, precision: o.precision, trainEmbeddings: p.trainEmbeddings, pet: p.pet, newLayers: newLayerIndices(run) });
      const predicted: Record<string, number> = { parameter: 0, frozen: 0, gradient: 0, optimizer: 0 };
      for (const t of tensors) predicted[t.category] = (predicted[t.category] ?? 0) + t.bytes;
      logMemory(run, predicted);
    },
    firstStepOfStage: (stage) => starts[stage] ?? 0,
    isStageEnd: (step) => starts.includes(step) && step > 0,
  };
}

/**
 * A stage boundary. The old optimizer state (but that of parameters that train on, unless
 * --stage-optimizer reset) and the gradients go first, so the grown model is never allocated
 * beside them; then merge the adapters, grow, freeze the old layers (with fresh adapters unless
 * --no-pet; with the embeddings, norm and head for --freeze-embeddings), and make the new
 * optimizer, which adopts the kept state and allocates the rest.
 */
async function transition(run: Run, o: TrainOptions, next: number, split: readonly number[]): Promise<void> {
  const { state } = run;
  const keepOuter = o.stageOptimizer === 'keep' && !o.freezeEmbeddings;
  const carried = keepOuter ? await run.optimizer.releaseState(outerParameters(run.model)) : [];
  run.optimizer.dispose();
  for (const [, t] of run.model.namedTensors()) { t.grad?.dispose(); t.grad = null; }
  mergeLora(run.model);
  const { model, origin } = growModel(run.model, split[next]!, { operator: o.growthOperator, placement: o.placement, seed: o.seed + next });
  run.model = model;
  run.config = { ...run.config, num_hidden_layers: model.layers.length };
  state.frozenLayers = origin.flatMap((x, i) => (x === null ? [] : [i]));
  if (o.noPet) freezeLayers(model, state.frozenLayers);
  else freezeLayersWithLora(model, state.frozenLayers, { rank: o.loraRank, alpha: o.loraAlpha, seed: o.seed + next + 1, dropout: o.loraDropout });
  if (o.freezeEmbeddings) freezeOuter(model);
  run.optimizer = makeOptimizer(model, o, carried);
  state.stage = next;
  state.stageStartStep = state.step;
  state.lora = { rank: o.loraRank, alpha: o.loraAlpha }; // the run's LoRA settings (no adapters exist with --no-pet)
  const newLayers = origin.flatMap((x, i) => (x === null ? [i] : []));
  run.log.write('stage', { stage: next, step: state.step, layers: model.layers.length, frozenLayers: state.frozenLayers, newLayers, carriedOptimizerState: carried.length });
  run.progress.note(`stage ${next + 1}/${split.length} at step ${state.step}: ${model.layers.length} layers (${split[next]} new at ${newLayers.join(', ')}), ${state.frozenLayers.length} frozen ${o.noPet ? 'without adapters' : `with LoRA rank ${o.loraRank}`}`);
}

function newLayerIndices(run: Run): number[] {
  const frozen = new Set(run.state.frozenLayers);
  return run.model.layers.map((_, i) => i).filter((i) => !frozen.has(i));
}
