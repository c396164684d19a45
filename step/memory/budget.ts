/**
 * The out-of-memory check made before anything is allocated: the planner knows every model-state
 * tensor of every phase of every method to the byte, so a run whose model state alone cannot fit
 * in a memory limit is refused up front, with the categories and the largest tensors that make
 * it up, instead of failing half-allocated. (Activations are not predicted to the byte: past this
 * check the device tracker's own limit stops an allocation that does not fit, naming the live
 * categories and labels.)
 */
import { OutOfMemoryError } from '../../engine/errors.js';
import { formatBytes } from '../../engine/memory.js';
import type { LlamaConfig } from '../../models/config.js';
import type { Plan } from '../planner/index.js';
import { STATE_CATEGORIES } from '../planner/index.js';
import type { MemoryMethod, MemoryPrediction, MemoryRunOptions, PlannedTensor } from './predict.js';
import { predictionFromPlan } from './predict.js';

/** A group of same-role tensors over every layer (`adam.m of model.layers.*.mlp.up_proj.weight`). */
export interface TensorGroup {
  label: string;
  category: string;
  count: number;
  bytes: number;
}

/** The tensors of a listing grouped by role and parameter name with the layer index as `*`, largest first. */
export function largestTensorGroups(tensors: readonly PlannedTensor[], n: number): TensorGroup[] {
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

/** What to try instead, per method (the precision advice only where it would help). */
function adviceFor(method: MemoryMethod, precision: string): string {
  const mixed = precision === 'fp32' ? ', mixed precision' : '';
  if (method === 'vanilla') return `STEP (--method step --stages K: \`step plan --mode engine\` shows each K's peak)${mixed}, a smaller model`;
  if (method === 'step') return `more stages (--stages), a smaller --rank${mixed}, a smaller model`;
  if (method === 'galore') return `a smaller --galore-rank${mixed}, a smaller model`;
  return `STEP (--method step --stages K: ReLoRA's full-rank warm start holds vanilla's bytes)${mixed}, a smaller model`;
}

/**
 * Throws OutOfMemoryError when the plan's whole-run model-state peak (vanilla: a split of one
 * stage; STEP) exceeds `limit` bytes, naming the phase at the peak, its categories and its largest
 * tensor groups, and what to change.
 */
export function checkModelStateFits(config: LlamaConfig, plan: Plan, limit: number, where: string, flag: string): void {
  const method = plan.split.length === 1 ? 'vanilla' : 'step';
  checkPredictionFits({ method, precision: plan.precision }, predictionFromPlan(config, plan, method), limit, where, flag);
}

/** As checkModelStateFits, for any method's prediction (predict.ts): GaLore's and ReLoRA's too. */
export function checkPredictionFits(o: Pick<MemoryRunOptions, 'method' | 'precision'>, prediction: MemoryPrediction, limit: number, where: string, flag: string): void {
  if (prediction.peak <= limit) return;
  const method = o.method;
  const at = prediction.peakPhase, bytes = at.bytes;
  const cats = [...STATE_CATEGORIES].filter((c) => bytes[c] > 0).sort((a, b) => bytes[b] - bytes[a]).map((c) => `${c} ${formatBytes(bytes[c])}`);
  const largest = largestTensorGroups(prediction.peakTensors, 4).map((g) => `${g.label}${g.count > 1 ? ` x${g.count}` : ''} = ${formatBytes(g.bytes)} [${g.category}]`);
  const phase = method === 'vanilla' ? 'vanilla training' : method === 'step' ? (at.phase === 'transition' ? `the transition into stage ${at.stage}` : `stage ${at.stage} of ${prediction.plan!.split.length}`)
    : method === 'galore' ? 'GaLore training' : `ReLoRA's ${at.label} phase`;
  throw new OutOfMemoryError(
    `${where}: out of memory before allocating anything: the model state alone peaks at ${formatBytes(prediction.peak)} (${prediction.peak} B) in ${phase}, ` +
    `beyond ${flag} ${formatBytes(limit)} (${limit} B). By category: ${cats.join(', ')}. Largest: ${largest.join('; ')}. ` +
    `Use ${adviceFor(method, o.precision)}, or raise ${flag}.`);
}
