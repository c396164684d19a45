/**
 * The STEP plan a run trains with: the planner called with the run's options (engine mode, the
 * run's precision, LoRA rank, PET, embeddings and optimizer choices), and the `step plan`
 * command that prints the same plan. The trainer, its log, the report and the experiment all
 * take the plan from here, so they cannot disagree.
 */
import type { LlamaConfig } from '../../models/config.js';
import type { Plan } from '../planner/plan.js';
import { planStages } from '../planner/plan.js';
import type { TrainOptions } from './options.js';

export type RunPlanOptions = Pick<TrainOptions, 'split' | 'stages' | 'loraRank' | 'precision' | 'noPet' | 'freezeEmbeddings' | 'stageOptimizer'>;

/** The planner's options for a run (engine mode: the bytes the engine allocates). */
export function runPlanOptions(o: RunPlanOptions): { rank: number; mode: 'engine'; precision: TrainOptions['precision']; trainEmbeddings: boolean; pet: boolean; carryOptimizer: boolean } {
  return {
    rank: o.loraRank, mode: 'engine', precision: o.precision,
    trainEmbeddings: !(o.freezeEmbeddings ?? false), pet: !(o.noPet ?? false), carryOptimizer: (o.stageOptimizer ?? 'keep') === 'keep',
  };
}

/** The run's plan for its target model (vocab_size: the tokenizer's). */
export function runPlan(o: RunPlanOptions, target: LlamaConfig): Plan {
  const how = o.split ? { split: o.split } : { stages: o.stages };
  return planStages({ config: target, ...how, ...runPlanOptions(o) });
}

/** `step plan` arguments that print the run's plan (its split is given, so the output is the run's even if the solver's tie-break changed). */
export function planCommand(o: RunPlanOptions & Pick<TrainOptions, 'preset' | 'configOverrides'>, target: LlamaConfig, plan: Plan): string {
  const p = runPlanOptions(o);
  const sets = Object.entries(o.configOverrides ?? {}).filter(([k]) => k !== 'vocab_size').map(([k, v]) => `--set ${k}=${String(v)}`);
  return ['step plan', `--preset ${o.preset}`, ...sets, `--vocab-size ${target.vocab_size}`, `--split ${plan.split.join(',')}`, `--rank ${p.rank}`,
    `--precision ${p.precision}`, ...(p.trainEmbeddings ? [] : ['--freeze-embeddings']), ...(p.pet ? [] : ['--no-pet']),
    ...(p.carryOptimizer ? [] : ['--stage-optimizer reset'])].join(' ');
}
