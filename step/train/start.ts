/**
 * The start of `step train`: everything is read and checked first (options, resume overrides,
 * data splits, config, sequence length, device limits, the checkpoint and its tensors), and only
 * then is the run folder created or changed. A start that fails after that removes what it
 * created and releases the lock; nothing that existed before is touched.
 */
import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { writeFileAtomic } from '../../engine/atomic-write.js';
import type { Backend } from '../../engine/backend.js';
import { getDevice, initDevice } from '../../engine/device.js';
import { StepError } from '../../engine/errors.js';
import { describeNonFinite, findNonFinite } from '../../engine/finite-check.js';
import { presetConfig } from '../../models/config-presets.js';
import type { LlamaModel } from '../../models/llama.js';
import type { TrainerState } from './checkpoint.js';
import { latestCheckpoint, loadModelWeights, loadOptimizer, readCheckpointConfig, readTrainerState, TRAINER_STATE_FORMAT } from './checkpoint.js';
import { prepareData, tokenizerFile } from './data.js';
import { planMethod } from './methods.js';
import type { TrainOptions } from './options.js';
import { DEFAULT_TRAIN_OPTIONS, validateTrainOptions } from './options.js';
import { applyOptimizerOverrides, checkPlanAcceptsResume, formatValue, resumeOptions, savedOptions } from './resume.js';
import type { ResumeChange } from './resume.js';
import type { RunLock } from './run-folder.js';
import { acquireRunLock, checkWritable, cleanStaleLeftovers, LOCK_FILE, undoFailedStart } from './run-folder.js';
import { Progress, RunLog } from './run-log.js';
import { buildModel, makeOptimizer } from './session.js';
import type { TrainOptimizer } from './session.js';
import { checkTrainFits } from './memory-limit.js';
import { checkDataSplits, checkDeviceLimits, checkRunName, checkSeqLen, largestStepBuffers, maxBindingBytes } from './start-checks.js';
import type { Run } from './trainer.js';

/** What the command line knows beyond the options: which flags were given, and --overwrite. */
export interface TrainExtra {
  given?: ReadonlySet<keyof TrainOptions>;
  overwrite?: boolean;
  /** --memory-limit in bytes: checked against the planner before the model exists, then held by the device's tracker for the run. */
  memoryLimit?: number | null;
}

function timestampName(): string {
  return new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '').replace('T', '-');
}

async function readSavedOptions(path: string): Promise<TrainOptions> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(path, 'utf8'));
  } catch (e) {
    throw new StepError(`${path}: cannot be read as the run's options (${(e as Error).message}); the run folder is damaged`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new StepError(`${path}: must be an object of training options; the run folder is damaged`);
  try {
    return validateTrainOptions({ ...DEFAULT_TRAIN_OPTIONS, ...(parsed as Partial<TrainOptions>) });
  } catch (e) {
    throw new StepError(`${path}: ${(e as Error).message}`);
  }
}

/** Validates everything, then creates (or, on resume, takes) the run folder; returns the run ready to train. */
export async function startRun(options: TrainOptions, resumeName: string | null, extra: TrainExtra): Promise<Run> {
  const name = resumeName ?? (options.name || timestampName());
  checkRunName(name, resumeName ? '--resume' : '--name');
  const runDir = resolve(options.runsDir, name);
  const created: string[] = []; // removed if this start fails
  let lock: RunLock | null = null;
  let model: LlamaModel | null = null;
  let optimizer: TrainOptimizer | null = null;
  let cleaned: string[] = [];
  let previousLimit: number | null | undefined; // the device's limit before --memory-limit, put back when the run ends
  let opened: Backend | null = null; // the device this start opened: freed if the start fails
  try {
    // ---- read and check; nothing is created or changed in this part but the lock of an existing folder
    let o: TrainOptions;
    let saved: TrainOptions | null = null;
    let changes: ResumeChange[] = [];
    let resumeDir: string | null = null;
    if (resumeName) {
      const configPath = join(runDir, 'train-config.json');
      if (!existsSync(configPath)) throw new StepError(`--resume ${resumeName}: ${configPath} not found; is ${runDir} a run folder?`);
      checkWritable(runDir, 'the run folder');
      lock = acquireRunLock(runDir);
      // leftovers of dead processes go first: a checkpoint whose rename was cut short is put back
      cleaned = cleanStaleLeftovers(runDir);
      saved = await readSavedOptions(configPath);
      ({ options: o, changes } = resumeOptions(saved, options, resumeName, extra.given));
      resumeDir = await latestCheckpoint(runDir);
    } else {
      o = validateTrainOptions({ ...options });
      if (existsSync(runDir)) {
        if (!extra.overwrite) throw new StepError(`step train: the run folder ${runDir} already exists; continue that run with --resume ${name}, or replace it with --overwrite (its checkpoints are deleted)`);
        checkWritable(runDir, 'the run folder');
        lock = acquireRunLock(runDir); // an old run still training there is not replaced under its feet
      }
    }
    const device = await initDevice(o.device);
    opened = device;
    const data = await prepareData(o.data, o.vocabSize, resumeDir ? tokenizerFile(resumeDir) : resumeName ? tokenizerFile(runDir) : null);
    checkDataSplits(data, o.seqLen);
    const target = presetConfig(o.preset, { ...o.configOverrides, vocab_size: data.vocabSize } as never);
    checkSeqLen(o.seqLen, target, 'step train');
    let config = resumeDir ? await readCheckpointConfig(resumeDir) : { ...target };
    if (config.vocab_size !== data.vocabSize) throw new StepError(`vocabulary mismatch: the tokenizer has ${data.vocabSize} tokens but the model expects ${config.vocab_size}`);
    if (resumeDir) checkSeqLen(o.seqLen, config, `--resume ${resumeName} (${join(resumeDir, 'config.json')})`);
    const plan = planMethod(o, target);
    checkDeviceLimits(largestStepBuffers(target, o), maxBindingBytes(device), device.description);
    const memoryLimit = extra.memoryLimit ?? null;
    if (memoryLimit !== null) checkTrainFits(o, target, memoryLimit);
    let state: TrainerState;
    if (resumeDir) {
      state = await readTrainerState(resumeDir, { layers: config.num_hidden_layers, gradAccum: o.gradAccum, seed: o.seed });
      if (state.method !== o.method) throw new StepError(`${resumeDir}: a checkpoint of method ${state.method}, but the run is ${o.method}`);
      checkPlanAcceptsResume(changes.some((c) => c.key === 'steps') ? planMethod(saved!, target) : plan, plan, state, o, resumeName!);
    } else {
      config = { ...config, num_hidden_layers: plan.initialLayers };
      state = {
        format: TRAINER_STATE_FORMAT, version: 1, method: o.method, step: 0, tokens: 0, sampler: { seed: o.seed, step: 0 },
        stage: 0, stageStartStep: 0, frozenLayers: [], lora: null, lastRestart: 0, lastLoss: null, lastValLoss: null,
      };
    }
    if (memoryLimit !== null) {
      previousLimit = device.tracker.limit;
      device.tracker.limit = memoryLimit;
    }
    model = buildModel(config, device, o, state.frozenLayers, o.seed + state.stage + 1);
    if (resumeDir) await loadModelWeights(model, resumeDir); // refuses NaN/Inf weights, naming the tensor
    optimizer = makeOptimizer(model, o);
    if (resumeDir) {
      await loadOptimizer(optimizer, resumeDir);
      const states = optimizer.paramStates().flatMap((s, k) => [...[...s.tensors].map(([n, t]) => [`param.${k}.${n}`, t] as const), ...(s.master ? [[`param.${k}.master`, s.master] as const] : [])]);
      const bad = await findNonFinite(states, device);
      if (bad.length) throw new StepError(`${join(resumeDir, 'optimizer.safetensors')}: ${describeNonFinite(bad)}; the checkpoint's optimizer state holds NaN/Inf. Resume from an earlier step-NNNNNN folder`);
      applyOptimizerOverrides(optimizer, o, changes);
    }

    // ---- create (or take over) the folder
    if (!resumeName) {
      if (lock) {
        // --overwrite: everything checked, now the old run goes (the lock stays ours)
        for (const entry of readdirSync(runDir)) if (entry !== LOCK_FILE) rmSync(join(runDir, entry), { recursive: true, force: true });
        created.push(runDir);
      } else {
        const runsDir = resolve(o.runsDir);
        const first = mkdirSync(runsDir, { recursive: true });
        if (first) created.push(first);
        try {
          mkdirSync(runDir);
        } catch (e) {
          const code = (e as NodeJS.ErrnoException).code;
          if (code === 'EEXIST') throw new StepError(`step train: the run folder ${runDir} was just created by another process; continue that run with --resume ${name}, or choose another --name`);
          throw new StepError(`step train: cannot create the run folder ${runDir} (${code}); check that ${runsDir} is writable, or choose another --runs-dir`);
        }
        if (!first) created.push(runDir);
        lock = acquireRunLock(runDir);
      }
    }
    const checkpoints = join(runDir, 'checkpoints');
    if (!existsSync(checkpoints)) {
      mkdirSync(checkpoints);
      if (resumeName) created.push(checkpoints);
    }
    checkWritable(runDir, 'the run folder');
    checkWritable(checkpoints, 'the checkpoints folder');
    const log = new RunLog(runDir);
    if (!resumeName) {
      await writeFileAtomic(join(runDir, 'train-config.json'), JSON.stringify(o, null, 2) + '\n');
      if (data.tokenizer) await data.tokenizer.save(join(runDir, 'tokenizer.json'));
    } else if (changes.length) {
      await writeFileAtomic(join(runDir, 'train-config.json'), JSON.stringify(savedOptions(o, saved!), null, 2) + '\n');
    }
    lock = lock ?? acquireRunLock(runDir);
    const run: Run = {
      options: o, runDir, device, data, config, model, optimizer, state, log, plan, lock,
      restoreMemoryLimit: () => { if (previousLimit !== undefined) device.tracker.limit = previousLimit; },
      progress: new Progress(o.steps, device, Math.max(1, Math.floor(o.steps / 20))),
    };
    if (lock.tookOver) {
      log.write('lock-takeover', { previous: lock.tookOver });
      run.progress.note(lock.tookOver.pid > 0
        ? `note: took over the lock of process ${lock.tookOver.pid} (started ${lock.tookOver.started}), which is no longer running`
        : `note: took over an unreadable lock file ${lock.path} older than 10 s`);
    }
    for (const c of cleaned) run.progress.note(`note: ${c}`);
    if (resumeName) {
      log.write('resume', { step: state.step, checkpoint: resumeDir, overrides: changes.map(({ key, from, to }) => ({ key, from, to })) });
      for (const c of changes) run.progress.note(`resume: ${c.flag} ${formatValue(c.from)} -> ${formatValue(c.to)}`);
      run.progress.note(resumeDir ? `resuming ${runDir} from ${resumeDir} (step ${state.step})` : `resuming ${runDir} from the start (it has no checkpoint yet)`);
    } else {
      log.write('start', { options: o, device: device.description, data: data.description, trainTokens: data.train.length, validationTokens: data.validation.length, unigramPerplexity: data.unigramPerplexity, plan: plan.describe(), ...plan.startFields?.() });
      run.progress.note(`run folder: ${runDir}\ndevice: ${device.description}\ndata: ${data.description}; unigram perplexity ${data.unigramPerplexity.toFixed(1)}\n${plan.describe()}`);
    }
    return run;
  } catch (e) {
    undoFailedStart({ optimizer, model, lock, created });
    if (previousLimit !== undefined) getDevice().tracker.limit = previousLimit;
    if (opened?.name === 'webgpu') opened.destroy();
    throw e;
  }
}
