import { existsSync, mkdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Backend } from '../../engine/backend.js';
import { fromArray } from '../../engine/creation.js';
import { initDevice } from '../../engine/device.js';
import { StepError } from '../../engine/errors.js';
import type { AdamW } from '../../engine/optim/adam.js';
import { Generator } from '../../engine/random.js';
import { scope, scopeSync } from '../../engine/scope.js';
import type { Tensor } from '../../engine/tensor.js';
import { add, mul } from '../../autograd/ops/elementwise.js';
import { backward } from '../../autograd/backward.js';
import type { LlamaConfig } from '../../models/config.js';
import { presetConfig } from '../../models/config-presets.js';
import { WindowSampler } from '../../models/data/windows.js';
import { writeFileAtomic } from '../../engine/atomic-write.js';
import type { LlamaModel } from '../../models/llama.js';
import type { TrainerState } from './checkpoint.js';
import { latestCheckpoint, loadModelWeights, loadOptimizer, readCheckpointConfig, readTrainerState, saveCheckpoint, TRAINER_STATE_FORMAT } from './checkpoint.js';
import type { PreparedData } from './data.js';
import { prepareData, tokenizerFile } from './data.js';
import { evaluate } from './evaluate.js';
import type { MethodPlan } from './methods.js';
import { planMethod } from './methods.js';
import type { TrainOptions } from './options.js';
import { Progress, RunLog } from './run-log.js';
import { buildModel, makeOptimizer } from './session.js';

/** Everything one run holds while it trains. */
export interface Run {
  options: TrainOptions;
  runDir: string;
  device: Backend;
  data: PreparedData;
  config: LlamaConfig;
  model: LlamaModel;
  optimizer: AdamW;
  state: TrainerState;
  log: RunLog;
  progress: Progress;
  plan: MethodPlan;
}

export interface TrainResult {
  runDir: string;
  finalStep: number;
  valLoss: number | null;
  valPerplexity: number | null;
  unigramPerplexity: number;
  stopped: boolean;
}

function timestampName(): string {
  return new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '').replace('T', '-');
}

/**
 * `step train`: trains (or resumes) a run. Each step: forward, backward, clip, AdamW, schedule;
 * gradient accumulation; periodic evaluation and atomic checkpoints. The method (vanilla, STEP,
 * ReLoRA) decides the model's structure per step through its plan (see methods.ts).
 */
export async function train(options: TrainOptions, resumeName: string | null = null, extra: { given?: ReadonlySet<keyof TrainOptions>; overwrite?: boolean } = {}): Promise<TrainResult> {
  void extra; // the command line's explicit options and --overwrite: the run-folder checks use them
  const name = resumeName ?? (options.name || timestampName());
  const runDir = resolve(options.runsDir, name);
  let o = options;
  let resumeDir: string | null = null;
  if (resumeName) {
    resumeDir = await latestCheckpoint(runDir);
    const configPath = join(runDir, 'train-config.json');
    if (!existsSync(configPath)) throw new StepError(`--resume ${resumeName}: ${configPath} not found; is ${runDir} a run folder?`);
    const saved = JSON.parse(await readFile(configPath, 'utf8')) as TrainOptions;
    o = { ...saved, stopAfter: options.stopAfter, device: options.device };
  }
  mkdirSync(runDir, { recursive: true });
  const device = await initDevice(o.device);
  const log = new RunLog(runDir);
  const data = await prepareData(o.data, o.vocabSize, resumeDir ? tokenizerFile(resumeDir) : null);
  let config: LlamaConfig = resumeDir ? await readCheckpointConfig(resumeDir) : presetConfig(o.preset, { ...o.configOverrides, vocab_size: data.vocabSize } as never);
  if (config.vocab_size !== data.vocabSize) throw new StepError(`vocabulary mismatch: the tokenizer has ${data.vocabSize} tokens but the model expects ${config.vocab_size}`);
  const plan = planMethod(o, presetConfig(o.preset, { ...o.configOverrides, vocab_size: data.vocabSize } as never));
  if (!resumeDir) {
    config = { ...config, num_hidden_layers: plan.initialLayers };
    await writeFileAtomic(join(runDir, 'train-config.json'), JSON.stringify(o, null, 2) + '\n');
    if (data.tokenizer) await data.tokenizer.save(join(runDir, 'tokenizer.json'));
    log.write('start', { options: o, device: device.description, data: data.description, trainTokens: data.train.length, validationTokens: data.validation.length, unigramPerplexity: data.unigramPerplexity, plan: plan.describe() });
  }
  const state: TrainerState = resumeDir ? await readTrainerState(resumeDir) : {
    format: TRAINER_STATE_FORMAT, version: 1, method: o.method, step: 0, tokens: 0, sampler: { seed: o.seed, step: 0 },
    stage: 0, stageStartStep: 0, frozenLayers: [], lora: null, lastRestart: 0, lastLoss: null, lastValLoss: null,
  };
  if (state.method !== o.method) throw new StepError(`${resumeDir}: a checkpoint of method ${state.method}, but the run is ${o.method}`);
  const model = buildModel(config, device, o, state.frozenLayers, o.seed + state.stage + 1);
  if (resumeDir) await loadModelWeights(model, resumeDir);
  const optimizer = makeOptimizer(model, o);
  if (resumeDir) await loadOptimizer(optimizer, resumeDir);
  const run: Run = { options: o, runDir, device, data, config, model, optimizer, state, log, plan, progress: new Progress(o.steps, device, Math.max(1, Math.floor(o.steps / 20))) };
  if (resumeDir) {
    log.write('resume', { step: state.step, checkpoint: resumeDir });
    run.progress.note(`resuming ${runDir} from ${resumeDir} (step ${state.step})`);
  } else {
    run.progress.note(`run folder: ${runDir}\ndevice: ${device.description}\ndata: ${data.description}; unigram perplexity ${data.unigramPerplexity.toFixed(1)}\n${plan.describe()}`);
  }
  try {
    return await loop(run);
  } finally {
    run.progress.finish();
    run.optimizer.dispose();
    run.model.dispose();
  }
}

async function loop(run: Run): Promise<TrainResult> {
  const { options: o, state } = run;
  const sampler = new WindowSampler(run.data.train, { batch: o.batchSize, seqLen: o.seqLen, seed: state.sampler.seed });
  let stepsThisProcess = 0;
  let lastVal: { loss: number; perplexity: number } | null = null;
  let t0 = performance.now(), tokensSince = 0;
  while (state.step < o.steps) {
    await run.plan.beforeStep(run); // growth, freezing, ReLoRA restarts at their steps
    run.optimizer.setLrScale(run.plan.lrScale(state));
    const loss = await trainStep(run, sampler);
    if (!Number.isFinite(loss)) {
      const last = await latestCheckpoint(run.runDir);
      run.log.write('nan', { step: state.step, loss });
      throw new StepError(`loss is ${loss} at step ${state.step + 1}; training stopped. The last good checkpoint is ${last ?? '(none yet)'}; resume from it with a lower --lr or a larger --warmup`);
    }
    state.step++;
    state.tokens += o.batchSize * o.seqLen * o.gradAccum;
    state.sampler = { seed: state.sampler.seed, step: state.step * o.gradAccum };
    state.lastLoss = loss;
    tokensSince += o.batchSize * o.seqLen * o.gradAccum;
    const elapsed = (performance.now() - t0) / 1000;
    const lr = run.optimizer.groups[0]!.lr;
    if (state.step % o.logEvery === 0 || state.step === o.steps) {
      run.log.write('train', { step: state.step, tokens: state.tokens, loss, lr, stage: state.stage, tokensPerSecond: tokensSince / elapsed, memory: run.device.memory().live });
    }
    run.progress.update(state.step, { loss, lr, tokensPerSecond: tokensSince / elapsed, stage: run.plan.stages > 1 ? state.stage : undefined });
    if (state.step === run.plan.firstStepOfStage(state.stage) + 1) run.plan.afterFirstStep(run);
    if ((o.evalEvery && state.step % o.evalEvery === 0) || state.step === o.steps) {
      const ev = await evaluate(run.model, run.data.validation, { batch: o.batchSize, seqLen: o.seqLen, maxBatches: o.evalBatches });
      state.lastValLoss = ev.loss;
      lastVal = ev;
      run.log.write('eval', { step: state.step, tokens: state.tokens, loss: ev.loss, perplexity: ev.perplexity, stage: state.stage });
      run.progress.note(`step ${state.step}: validation loss ${ev.loss.toFixed(4)}, perplexity ${ev.perplexity.toFixed(1)} (unigram ${run.data.unigramPerplexity.toFixed(1)})`);
      t0 = performance.now(); tokensSince = 0;
    }
    const boundary = run.plan.isStageEnd(state.step);
    if ((o.checkpointEvery && state.step % o.checkpointEvery === 0) || state.step === o.steps || boundary) {
      await saveCheckpoint(run.runDir, { model: run.model, config: run.config, optimizer: run.optimizer, tokenizer: run.data.tokenizer, state });
      t0 = performance.now(); tokensSince = 0;
    }
    if (o.stopAfter !== null && ++stepsThisProcess >= o.stopAfter && state.step < o.steps) {
      run.log.write('stop', { step: state.step });
      return result(run, lastVal, true);
    }
  }
  run.log.write('end', { step: state.step, tokens: state.tokens, valLoss: lastVal?.loss ?? null, valPerplexity: lastVal?.perplexity ?? null, unigramPerplexity: run.data.unigramPerplexity });
  return result(run, lastVal, false);
}

function result(run: Run, lastVal: { loss: number; perplexity: number } | null, stopped: boolean): TrainResult {
  return { runDir: run.runDir, finalStep: run.state.step, valLoss: lastVal?.loss ?? null, valPerplexity: lastVal?.perplexity ?? null, unigramPerplexity: run.data.unigramPerplexity, stopped };
}

/** One optimizer step (with accumulation); returns the mean loss (one scalar read back). */
async function trainStep(run: Run, sampler: WindowSampler): Promise<number> {
  const { options: o, state, model, optimizer, device } = run;
  // LoRA dropout masks come from a stream keyed by (seed, step): a resumed run draws the same masks
  model.dropoutGenerator = o.loraDropout > 0 ? new Generator(o.seed * 1_000_003 + state.step) : null;
  return scope(async () => {
    // each micro-batch in its own scope: its activations are gone before the next one starts, so
    // the peak stays flat in the number of micro-batches; only its loss (detached) survives
    let total: Tensor | null = null;
    for (let micro = 0; micro < o.gradAccum; micro++) {
      const loss = scopeSync(() => {
        const w = sampler.batchAt(state.step * o.gradAccum + micro);
        const ids = fromArray(w.inputs, [o.batchSize, o.seqLen], { dtype: 'i32', device });
        const targets = fromArray(w.targets, [o.batchSize, o.seqLen], { dtype: 'i32', device });
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
    optimizer.zeroGrad();
    return (await total!.item()) / o.gradAccum; // the one scalar read back per step
  });
}
