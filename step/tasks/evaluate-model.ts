/**
 * Runs tasks against one loaded checkpoint: the model's log-likelihood scorer and batched greedy
 * generator, the checkpoint's tokenizer (it must have the end-of-text token, which starts every
 * context and ends every response), the context length from its config. Shared by `step
 * eval-tasks` and `step experiment-tasks`, so both score a model exactly alike.
 */
import { StepError } from '../../engine/errors.js';
import type { TemplateName } from '../instruct/template.js';
import type { LoadedCheckpoint } from '../commands/checkpoint-model.js';
import { EOT } from '../train/data.js';
import { greedyBatch } from './greedy-batch.js';
import { modelScorer } from './loglikelihood.js';
import type { MetricRow } from './metrics.js';
import { runTask, type TaskTokenizer } from './run-task.js';
import type { Task } from './task.js';

export interface TaskEvaluation {
  /** One row per task and metric, in task order. */
  rows: MetricRow[];
  /** Each task's note (how it was built) and what was skipped. */
  notes: string[];
}

/**
 * Every task on the checkpoint's model, in order; `limit` examples of each (`generationLimit` of
 * instruction tasks, which cost a greedy generation each; default `limit`); `command` names the caller in errors.
 */
export async function evaluateCheckpointTasks(ckpt: LoadedCheckpoint, tasks: readonly Task[], options: { template: TemplateName; limit?: number; generationLimit?: number; command: string }): Promise<TaskEvaluation> {
  const bpe = ckpt.tokenizer;
  if (!bpe) throw new StepError(`${options.command}: ${ckpt.dir} has no tokenizer.json, so task text cannot be tokenized (was the run trained on a .bin token shard?)`);
  if (!bpe.specialTokens.includes(EOT)) throw new StepError(`${options.command}: the tokenizer of ${ckpt.dir} has no ${EOT} token, which starts every context and ends every response`);
  const tokenizer: TaskTokenizer = { encode: (t) => bpe.encode(t), decode: (ids) => bpe.decode(ids), eot: bpe.specialId(EOT) };
  const maxContext = ckpt.config.max_position_embeddings;
  const scorer = modelScorer(ckpt.model, { maxContext });
  const generator = (requests: Parameters<typeof greedyBatch>[1]) => greedyBatch(ckpt.model, requests, { eosTokenId: tokenizer.eot, maxContext });
  const rows: MetricRow[] = [], notes: string[] = [];
  for (const task of tasks) {
    if (task.note) notes.push(`${task.name}: ${task.note}`);
    const result = await runTask(task, { tokenizer, scorer, generator, maxContext, template: options.template, limit: task.kind === 'generation' ? options.generationLimit ?? options.limit : options.limit });
    rows.push(...result.rows);
    notes.push(...result.notes);
  }
  return { rows, notes };
}
