/**
 * The out-of-memory check made before anything is allocated: the planner knows every model-state
 * tensor of every stage and transition to the byte, so a run whose model state alone cannot fit
 * in a memory limit is refused up front, with the categories and the largest tensors that make
 * it up, instead of failing half-allocated. (Activations are not predicted to the byte: past this
 * check the device tracker's own limit stops an allocation that does not fit, naming the live
 * categories and labels.)
 */
import { OutOfMemoryError } from '../../engine/errors.js';
import { formatBytes } from '../../engine/memory.js';
import type { LlamaConfig } from '../../models/config.js';
import type { Plan, TensorSpec } from '../planner/index.js';
import { listStageTensors, STATE_CATEGORIES } from '../planner/index.js';

/** A group of same-role tensors over every layer (`adam.m of model.layers.*.mlp.up_proj.weight`). */
export interface TensorGroup {
  label: string;
  category: string;
  count: number;
  bytes: number;
}

/** The tensors of a listing grouped by role and parameter name with the layer index as `*`, largest first. */
export function largestTensorGroups(tensors: readonly TensorSpec[], n: number): TensorGroup[] {
  const groups = new Map<string, TensorGroup>();
  for (const t of tensors) {
    const name = t.param.replace(/^model\.layers\.\d+\./, 'model.layers.*.');
    const label = `${t.role} of ${name} [${t.shape.join(', ')}] ${t.dtype}`;
    const g = groups.get(label) ?? { label, category: t.category, count: 0, bytes: 0 };
    g.count++;
    g.bytes += t.bytes;
    groups.set(label, g);
  }
  return [...groups.values()].sort((a, b) => b.bytes - a.bytes).slice(0, n);
}

/**
 * Throws OutOfMemoryError when the plan's whole-run model-state peak exceeds `limit` bytes,
 * naming the phase at the peak, its categories and its largest tensor groups, and what to change.
 */
export function checkModelStateFits(config: LlamaConfig, plan: Plan, limit: number, where: string, flag: string): void {
  if (plan.peak <= limit) return;
  const stage = plan.stages[plan.peakStage - 1]!;
  const atTransition = plan.peakAt === 'transition';
  const bytes = atTransition ? plan.transitions.find((t) => t.intoStage === plan.peakStage)!.bytes : stage.bytes;
  let tensors = listStageTensors(config, { split: plan.split, stage: plan.peakStage, rank: plan.rank, precision: plan.precision, trainEmbeddings: plan.trainEmbeddings });
  if (atTransition) tensors = tensors.filter((t) => t.role === 'weight');
  const cats = [...STATE_CATEGORIES].filter((c) => bytes[c] > 0).sort((a, b) => bytes[b] - bytes[a]).map((c) => `${c} ${formatBytes(bytes[c])}`);
  const largest = largestTensorGroups(tensors, 4).map((g) => `${g.label}${g.count > 1 ? ` x${g.count}` : ''} = ${formatBytes(g.bytes)} [${g.category}]`);
  const phase = atTransition ? `the transition into stage ${plan.peakStage}` : plan.split.length === 1 ? 'vanilla training' : `stage ${plan.peakStage} of ${plan.split.length}`;
  const advice = plan.split.length === 1
    ? `STEP (--method step --stages K: \`step plan --mode engine\` shows each K's peak)${plan.precision === 'fp32' ? ', mixed precision' : ''}, a smaller model`
    : `more stages (--stages), a smaller --rank${plan.precision === 'fp32' ? ', mixed precision' : ''}, a smaller model`;
  throw new OutOfMemoryError(
    `${where}: out of memory before allocating anything: the model state alone peaks at ${formatBytes(plan.peak)} (${plan.peak} B) in ${phase}, ` +
    `beyond ${flag} ${formatBytes(limit)} (${limit} B). By category: ${cats.join(', ')}. Largest: ${largest.join('; ')}. ` +
    `Use ${advice}, or raise ${flag}.`);
}
