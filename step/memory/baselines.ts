/**
 * `step memory` for the paper's two other baselines, in the trainer's order (step/train):
 * - GaLore (galore-method.ts): every layer trains from the start with GaLore's projected AdamW;
 *   its first step refreshes every projector (subspace iteration on that step's gradient), and so
 *   does every `updateGap`-th step after it. One phase.
 * - ReLoRA (methods.ts reloraPlan): the full-rank warm start (vanilla); the switch (optimizer
 *   state and gradients freed, every layer frozen with an adapter on each linear); the LoRA phase
 *   (a new optimizer over the adapters, embeddings, final norm and head); a restart (merge into the
 *   frozen weights, re-initialise in place, prune 99% of the adapters' Adam state by magnitude),
 *   then the steps after it.
 */
import { freezeLayersWithLora, restartLora } from '../freeze.js';
import { restartGenerator } from '../train/methods.js';
import { buildModel } from '../train/session.js';
import type { MeasuredRun } from './harness.js';

/** The model of the whole target, fresh from the seed, as the trainer builds it at step 0. */
function buildTarget(run: MeasuredRun): void {
  run.model = buildModel(run.o.config, run.device, run.train, [], run.o.seed + 1);
  run.model.checkpointActivations = run.o.checkpointActivations;
}

const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;

export async function measureGalore(run: MeasuredRun): Promise<void> {
  const { o } = run;
  run.open();
  buildTarget(run);
  run.startOptimizer();
  run.close('stage', 1, await run.steps(1));
  const gap = o.galore!.updateGap;
  const refreshes = Array.from({ length: o.stepsPerStage }, (_, i) => i + 1).filter((s) => (s - 1) % gap === 0);
  const projected = run.prediction.galore!.tensors.filter((t) => t.role === 'galore.projector').length;
  const skipped = run.optimizer!.lossScaler ? (await run.optimizer!.lossScaler.read()).skippedSteps : 0;
  run.notes.push(`GaLore: the projectors of the ${projected} projected linears were refreshed (subspace iteration on the gradient) at step ${refreshes.join(', ')} ` +
    `of ${o.stepsPerStage} (--galore-update-gap ${gap}); projectors and projected moments count as optimizer state` +
    (skipped ? `; the loss scaler skipped ${plural(skipped, 'step')} (a refresh on a skipped step keeps the previous projector)` : ''));
}

export async function measureRelora(run: MeasuredRun): Promise<void> {
  const { o, train } = run;
  run.open();
  buildTarget(run);
  run.startOptimizer();
  run.close('stage', 1, await run.steps(1));
  // the switch: the full-rank optimizer state and gradients go before the adapters are allocated
  run.freeOptimizerAndGradients();
  run.open();
  freezeLayersWithLora(run.model!, [...Array(o.config.num_hidden_layers).keys()], { rank: o.rank, alpha: train.loraAlpha, seed: o.seed + 1, dropout: 0 });
  run.close('transition', 2);
  run.open();
  run.startOptimizer();
  run.close('stage', 2, await run.steps(2));
  // the trainer's restart (methods.ts restart): merge and re-initialise in place, prune the adapters' state
  run.open();
  const step = 2 * o.stepsPerStage;
  const adapters = run.model!.layers.flatMap((l) => l.linears.flatMap((x) => (x.lora ? [x.lora.A, x.lora.B] : [])));
  const restarted = restartLora(run.model!, (layer, linear) => restartGenerator(o.seed, step, layer, linear));
  await run.optimizer!.resetState(adapters, { mode: 'magnitude', p: 0.99 });
  run.close('restart', 2, await run.steps(3));
  run.notes.push(`ReLoRA: full-rank warm start (${plural(o.stepsPerStage, 'step')}), switch to LoRA rank ${o.rank} on every linear of every layer, ` +
    `${plural(o.stepsPerStage, 'step')}, a restart after step ${step} (${restarted} adapters merged and re-initialised, 99% of their Adam state pruned by magnitude), ` +
    `${plural(o.stepsPerStage, 'step')} after it; the whole run's model-state peak is the ${run.prediction.relora!.peakAt === 'warm start' ? 'full-rank warm start\'s (vanilla\'s)' : `${run.prediction.relora!.peakAt} phase's`}`);
}
