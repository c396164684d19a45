/**
 * `step train --memory-limit SIZE`: a run whose model state (parameters, frozen weights, gradients,
 * optimizer state) cannot fit in SIZE is refused before the model is allocated, with the phase,
 * categories and largest tensors that make the peak (the planner knows them to the byte); past
 * that check the device's tracker holds the same limit, so activations that do not fit stop the
 * step with the out-of-memory error naming the live categories and labels, and the run's last
 * checkpoint stays as it was. The limit belongs to the machine, not to the run: it is not saved in
 * train-config.json and may differ on --resume.
 */
import { OutOfMemoryError } from '../../engine/errors.js';
import { formatBytes } from '../../engine/memory.js';
import type { LlamaConfig } from '../../models/config.js';
import { checkModelStateFits, largestTensorGroups } from '../memory/budget.js';
import { galoreModelState } from '../planner/galore.js';
import type { TensorSpec } from '../planner/index.js';
import { planStages } from '../planner/index.js';
import type { TrainOptions } from './options.js';
import { runPlan, runPlanOptions } from './run-plan.js';

const WHERE = 'step train';
const FLAG = '--memory-limit';

/** Throws OutOfMemoryError when the run's whole-life model state (the planner's, engine mode) exceeds `limit` bytes. */
export function checkTrainFits(o: TrainOptions, target: LlamaConfig, limit: number): void {
  const vanilla = () => planStages({ config: target, split: [target.num_hidden_layers], ...runPlanOptions(o) });
  switch (o.method) {
    case 'vanilla': return checkModelStateFits(target, vanilla(), limit, WHERE, FLAG);
    case 'step': return checkModelStateFits(target, runPlan(o, target), limit, WHERE, FLAG);
    // ReLoRA trains full-rank during its warm start: its model state then is vanilla's
    case 'relora': if (o.reloraWarmStart > 0) checkModelStateFits(target, vanilla(), limit, WHERE, FLAG); return;
    case 'galore': return checkGaloreFits(o, target, limit);
  }
}

function checkGaloreFits(o: TrainOptions, target: LlamaConfig, limit: number): void {
  const s = galoreModelState(target, { rank: o.galoreRank!, precision: o.precision });
  if (s.bytes.total <= limit) return;
  const cats = (['parameter', 'frozen', 'gradient', 'optimizer'] as const).filter((c) => s.bytes[c] > 0).sort((a, b) => s.bytes[b] - s.bytes[a]).map((c) => `${c} ${formatBytes(s.bytes[c])}`);
  const largest = largestTensorGroups(s.tensors as unknown as TensorSpec[], 4).map((g) => `${g.label}${g.count > 1 ? ` x${g.count}` : ''} = ${formatBytes(g.bytes)} [${g.category}]`);
  throw new OutOfMemoryError(
    `${WHERE}: out of memory before allocating anything: GaLore's model state alone needs ${formatBytes(s.bytes.total)} (${s.bytes.total} B), ` +
    `beyond ${FLAG} ${formatBytes(limit)} (${limit} B). By category: ${cats.join(', ')}. Largest: ${largest.join('; ')}. ` +
    `Use a smaller --galore-rank${o.precision === 'fp32' ? ', mixed precision' : ''}, STEP (--method step), a smaller model, or raise ${FLAG}.`);
}
