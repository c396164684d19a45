import type { Backend } from '../../engine/backend.js';
import { fromArray } from '../../engine/creation.js';
import { OutOfMemoryError, StepError } from '../../engine/errors.js';
import { describeNonFinite, findNonFinite } from '../../engine/finite-check.js';
import type { TrainOptimizer } from './session.js';
import { Generator } from '../../engine/random.js';
import { scope, scopeSync } from '../../engine/scope.js';
import type { Tensor } from '../../engine/tensor.js';
import { add, mul } from '../../autograd/ops/elementwise.js';
import { backward } from '../../autograd/backward.js';
import type { LlamaConfig } from '../../models/config.js';
import { WindowSampler } from '../../models/data/windows.js';
import { writeFileAtomic } from '../../engine/atomic-write.js';
import type { LlamaModel } from '../../models/llama.js';
import { join } from 'node:path';
import type { TrainerState } from './checkpoint.js';
import { lastGoodCheckpoint, saveCheckpoint } from './checkpoint.js';
import type { BatchSource, PreparedData } from './data.js';
import { evaluate } from './evaluate.js';
import type { MethodPlan } from './methods.js';
import type { TrainOptions } from './options.js';
import type { RunLock } from './run-folder.js';
import type { Progress, RunLog } from './run-log.js';
import { wholeRunPeak } from './run-log.js';
import type { TrainExtra } from './start.js';
import { startRun } from './start.js';
import { writeFinalModel } from './final-model.js';

/** Everything one run holds while it trains. */
export interface Run {
  options: TrainOptions;
  runDir: string;
  device: Backend;
  data: PreparedData;
  config: LlamaConfig;
  model: LlamaModel;
  optimizer: TrainOptimizer;
  state: TrainerState;
  log: RunLog;
  progress: Progress;
  plan: MethodPlan;
  /** This process's ownership of the run folder (released when the run ends). */
  lock: RunLock;
  /** Puts back the device's memory limit from before --memory-limit (called when the run ends). */
  restoreMemoryLimit?: () => void;
  /** The batches and the evaluation; default: windows of data.train and data.validation (step train). */
  source?: BatchSource;
}

export interface TrainResult {
  runDir: string;
  finalStep: number;
  valLoss: number | null;
  valPerplexity: number | null;
  unigramPerplexity: number;
  stopped: boolean;
}

/**
 * `step train`: trains (or resumes) a run. Each step: forward, backward, clip, AdamW, schedule;
 * gradient accumulation; periodic evaluation and atomic checkpoints. The method (vanilla, STEP,
 * ReLoRA) decides the model's structure per step through its plan (see methods.ts). Everything is
 * checked before the run folder is created (see start.ts); the folder is locked while it trains.
 * `extra.given`: the options given on the command line (with --resume they override the run's
 * saved ones where allowed, or are refused); `extra.overwrite`: replace an existing run folder.
 */
export async function train(options: TrainOptions, resumeName: string | null = null, extra: TrainExtra = {}): Promise<TrainResult> {
  return trainToEnd(await startRun(options, resumeName, extra));
}

/**
 * Trains a started run until its last step (or --stop-after), writing RUN/final at the last step,
 * then frees it and releases its lock.
 */
export async function trainToEnd(run: Run): Promise<TrainResult> {
  try {
    return await loop(run);
  } finally {
    run.progress.finish();
    run.optimizer.dispose();
    run.model.dispose();
    run.restoreMemoryLimit?.();
    // the run opened this device (startRun): free it with the buffers its pool keeps and its pipelines.
    // A process that trains run after run (step experiment, experiment-tasks) otherwise keeps every
    // run's device, and lavapipe's memory maps grow until the process dies at vm.max_map_count
    if (run.device.name === 'webgpu') run.device.destroy();
    run.lock.release();
  }
}

/** Stops the run: logs why, and names the last checkpoint a resume can start from. */
async function stopBad(run: Run, what: string, fields: Record<string, unknown>): Promise<never> {
  const last = await lastGoodCheckpoint(run.runDir, run.state.step);
  run.log.write('nan', { step: run.state.step, ...fields, lastGoodCheckpoint: last });
  throw new StepError(`${what}; training stopped. The last good checkpoint is ${last ?? '(none yet)'}; resume from it with a lower --lr or a larger --warmup`);
}

/** An allocation beyond the device's limit (--memory-limit) in a step: logged, with what a resume can change. */
async function stopOutOfMemory(run: Run, e: unknown): Promise<never> {
  if (!(e instanceof OutOfMemoryError)) throw e;
  const last = await lastGoodCheckpoint(run.runDir, run.state.step);
  run.log.write('oom', { step: run.state.step, message: e.message, lastGoodCheckpoint: last, peak: wholeRunPeak(run.device) });
  const name = run.runDir.split(/[\\/]/).pop();
  throw new OutOfMemoryError(`${e.message}\nTraining stopped in step ${run.state.step + 1}; the last checkpoint is ${last ?? '(none yet)'}. ` +
    `Resume with \`step train --resume ${name} --checkpoint-activations\` (far fewer activation bytes) or a higher --memory-limit, or start again with a smaller --batch-size (and --grad-accum to keep the tokens per step)`);
}

/** step train's source: seeded windows of the training tokens, the validation windows' loss. */
function windowSource(run: Run): BatchSource {
  const o = run.options;
  const sampler = new WindowSampler(run.data.train, { batch: o.batchSize, seqLen: o.seqLen, seed: run.state.sampler.seed });
  return {
    batchAt: (index) => ({ ...sampler.batchAt(index), rows: o.batchSize, cols: o.seqLen }),
    evaluate: (model) => evaluate(model, run.data.validation, { batch: o.batchSize, seqLen: o.seqLen, maxBatches: o.evalBatches }),
  };
}

async function loop(run: Run): Promise<TrainResult> {
  const { options: o, state } = run;
  const source = run.source ?? windowSource(run);
  let stepsThisProcess = 0;
  let lastVal: { loss: number; perplexity: number } | null = null;
  let t0 = performance.now(), tokensSince = 0;
  while (state.step < o.steps) {
    // let the event loop run once a step: on the cpu backend nothing else would, and SIGINT /
    // SIGTERM (which release the run's lock) would wait for the end of the run
    await new Promise<void>((resolve) => setImmediate(resolve));
    await run.plan.beforeStep(run); // growth, freezing, ReLoRA restarts at their steps
    run.optimizer.setLrScale(run.plan.lrScale(state));
    const { loss, tokens } = await trainStep(run, source).catch((e: unknown) => stopOutOfMemory(run, e));
    if (!Number.isFinite(loss)) await stopBad(run, `loss is ${loss} at step ${state.step + 1}`, { loss });
    state.step++;
    state.tokens += tokens;
    state.sampler = { seed: state.sampler.seed, step: state.step * o.gradAccum };
    state.lastLoss = loss;
    tokensSince += tokens;
    const elapsed = (performance.now() - t0) / 1000;
    const lr = run.optimizer.groups[0]!.lr;
    if (state.step % o.logEvery === 0 || state.step === o.steps) {
      run.log.write('train', { step: state.step, tokens: state.tokens, loss, lr, stage: state.stage, tokensPerSecond: tokensSince / elapsed, memory: run.device.memory().live });
    }
    run.progress.update(state.step, { loss, lr, tokensPerSecond: tokensSince / elapsed, stage: run.plan.stages > 1 ? state.stage : undefined });
    if (state.step === run.plan.firstStepOfStage(state.stage) + 1) run.plan.afterFirstStep(run);
    // the checkpoint comes before the evaluation of the same step: a failing evaluation loses no steps
    const boundary = run.plan.isStageEnd(state.step);
    let saved: string | null = null;
    if ((o.checkpointEvery && state.step % o.checkpointEvery === 0) || state.step === o.steps || boundary) {
      const bad = await findNonFinite(run.model.namedTensors(), run.device);
      if (bad.length) await stopBad(run, `the weights hold NaN/Inf after step ${state.step}: ${describeNonFinite(bad)}`, { tensors: bad });
      saved = await saveCheckpoint(run.runDir, { model: run.model, config: run.config, optimizer: run.optimizer, tokenizer: run.data.tokenizer, state });
      run.log.write('checkpoint', { step: state.step, dir: saved });
      t0 = performance.now(); tokensSince = 0;
    }
    const evalDue = (o.evalEvery && state.step % o.evalEvery === 0) || state.step === o.steps;
    const ev = evalDue ? await source.evaluate(run.model) : null; // null: nothing held out (step sft without --val-data)
    if (ev) {
      state.lastValLoss = Number.isFinite(ev.loss) ? ev.loss : null;
      lastVal = ev;
      run.log.write('eval', { step: state.step, tokens: state.tokens, loss: ev.loss, perplexity: ev.perplexity, stage: state.stage });
      const unigram = Number.isFinite(run.data.unigramPerplexity) ? ` (unigram ${run.data.unigramPerplexity.toFixed(1)})` : '';
      run.progress.note(`step ${state.step}: validation loss ${ev.loss.toFixed(4)}, perplexity ${ev.perplexity.toFixed(1)}${unigram}`);
      // the checkpoint of this step records the evaluation it just had
      if (saved) await writeFileAtomic(join(saved, 'trainer-state.json'), JSON.stringify(state, null, 2) + '\n');
      t0 = performance.now(); tokensSince = 0;
    }
    if (o.stopAfter !== null && ++stepsThisProcess >= o.stopAfter && state.step < o.steps) {
      run.log.write('stop', { step: state.step, peak: wholeRunPeak(run.device) });
      return result(run, lastVal, true);
    }
  }
  await writeFinalModel(run); // adapters merged: a plain LLaMA in runs/NAME/final
  run.log.write('end', { step: state.step, tokens: state.tokens, valLoss: lastVal?.loss ?? null, valPerplexity: lastVal?.perplexity ?? null, unigramPerplexity: run.data.unigramPerplexity, peak: wholeRunPeak(run.device) });
  return result(run, lastVal, false);
}

function result(run: Run, lastVal: { loss: number; perplexity: number } | null, stopped: boolean): TrainResult {
  return { runDir: run.runDir, finalStep: run.state.step, valLoss: lastVal?.loss ?? null, valPerplexity: lastVal?.perplexity ?? null, unigramPerplexity: run.data.unigramPerplexity, stopped };
}

/** One optimizer step (with accumulation); returns the mean loss (one scalar read back) and the tokens it trained on. */
async function trainStep(run: Run, source: BatchSource): Promise<{ loss: number; tokens: number }> {
  const { options: o, state, model, optimizer, device } = run;
  // LoRA dropout masks come from a stream keyed by (seed, step): a resumed run draws the same masks
  model.dropoutGenerator = o.loraDropout > 0 ? new Generator(o.seed * 1_000_003 + state.step) : null;
  model.checkpointActivations = o.checkpointActivations ?? false; // growth builds new models: set it every step
  return scope(async () => {
    // set-to-none: the last step's gradients go now, so each one is the first contribution of
    // this backward (moved into .grad, not added to a zero buffer: no fill, no add per parameter),
    // and they stay live after the step for the memory log, as the planner counts them
    optimizer.zeroGrad({ setToNone: true });
    // each micro-batch in its own scope: its activations are gone before the next one starts, so
    // the peak stays flat in the number of micro-batches; only its loss (detached) survives
    let total: Tensor | null = null, tokens = 0;
    for (let micro = 0; micro < o.gradAccum; micro++) {
      const loss = scopeSync(() => {
        const w = source.batchAt(state.step * o.gradAccum + micro);
        tokens += w.tokens ?? w.rows * w.cols;
        const ids = fromArray(w.inputs, [w.rows, w.cols], { dtype: 'i32', device });
        const targets = fromArray(w.targets, [w.rows, w.cols], { dtype: 'i32', device });
        const l = model.loss(ids, targets);
        const scaled = o.gradAccum > 1 ? mul(l, 1 / o.gradAccum) : l;
        // mixed precision: scaleLoss multiplies by the device-side loss scale, which the optimizer divides out
        backward(optimizer.lossScaler ? optimizer.lossScaler.scaleLoss(scaled) : scaled);
        return l.detach();
      });
      if (total) {
        const sum = add(total, loss);
        total.dispose();
        loss.dispose();
        total = sum;
      } else total = loss;
    }
    model.dropoutGenerator = null;
    optimizer.step();
    return { loss: (await total!.item()) / o.gradAccum, tokens }; // the one scalar read back per step
  });
}
