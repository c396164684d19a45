/**
 * The start of `step sft`, on `step train`'s machinery: every check first (options, the base
 * checkpoint, the tokenizer, the records, the sequence length, device limits, on resume the saved
 * settings and the data's hash), and only then is the run folder created (or, on resume, taken).
 * A start that fails after that removes what it created and releases the lock.
 */
import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { writeFileAtomic } from '../../engine/atomic-write.js';
import { initDevice } from '../../engine/device.js';
import { StepError } from '../../engine/errors.js';
import type { TrainOptimizer } from '../train/session.js';
import { warmupCosineSchedule } from '../../engine/optim/schedules.js';
import { kvDim } from '../../models/config.js';
import type { LlamaModel } from '../../models/llama.js';
import { BpeTokenizer } from '../../models/tokenizer/bpe.js';
import { resolveCheckpointDir } from '../commands/checkpoint-model.js';
import type { TrainerState } from '../train/checkpoint.js';
import { latestCheckpoint, loadModelWeights, loadOptimizer, readCheckpointConfig, readTrainerState, TRAINER_STATE_FORMAT } from '../train/checkpoint.js';
import type { MethodPlan } from '../train/methods.js';
import { logMemory } from '../train/methods.js';
import { DEFAULT_TRAIN_OPTIONS } from '../train/options.js';
import type { TrainOptions } from '../train/options.js';
import { formatValue } from '../train/resume.js';
import type { RunLock } from '../train/run-folder.js';
import { acquireRunLock, checkWritable, cleanStaleLeftovers, LOCK_FILE, undoFailedStart } from '../train/run-folder.js';
import { Progress, RunLog } from '../train/run-log.js';
import { makeOptimizer } from '../train/session.js';
import { checkDeviceLimits, checkRunName, largestStepBuffers, maxBindingBytes } from '../train/start-checks.js';
import type { Run } from '../train/trainer.js';
import type { EncodedExamples } from './examples.js';
import { encodeExamples, endOfTextId, InstructionBatches } from './examples.js';
import { evaluateResponses } from './evaluate.js';
import { buildTuningModel, loadBaseModel } from './model.js';
import type { SftOptions } from './options.js';
import { DEFAULT_SFT_OPTIONS, SFT_FLAG, SHARED_WITH_TRAIN, validateSftOptions } from './options.js';
import { readInstructionFile } from './records.js';

/** A run's settings, saved at its start: the options (steps and seq-len resolved) and the data's hashes. */
export const SFT_CONFIG = 'sft-config.json';

export interface SavedSft {
  options: SftOptions;
  dataSha256: string;
  valDataSha256: string | null;
}

export interface SftExtra {
  given?: ReadonlySet<keyof SftOptions>;
  overwrite?: boolean;
}

function timestampName(): string {
  return 'sft-' + new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '').replace('T', '-');
}

/** The trainer's options for an SFT run (its loop, optimizer and checkpoints read these). */
export function trainOptionsOf(o: SftOptions): TrainOptions {
  const shared = Object.fromEntries(SHARED_WITH_TRAIN.map((k) => [k, o[k]])) as Pick<TrainOptions, (typeof SHARED_WITH_TRAIN)[number]>;
  // loraRank only sizes nothing here (the adapters are sft's own); the trainer's validation wants >= 1
  return { ...DEFAULT_TRAIN_OPTIONS, ...shared, data: o.data, seqLen: o.seqLen, steps: o.steps, loraRank: Math.max(1, o.loraRank) };
}

async function readSaved(path: string): Promise<SavedSft> {
  let parsed: Partial<SavedSft>;
  try {
    parsed = JSON.parse(await readFile(path, 'utf8')) as Partial<SavedSft>;
  } catch (e) {
    throw new StepError(`${path}: cannot be read as the run's settings (${(e as Error).message}); the run folder is damaged`);
  }
  if (typeof parsed !== 'object' || parsed === null || typeof parsed.options !== 'object' || typeof parsed.dataSha256 !== 'string') {
    throw new StepError(`${path}: must be {"options": {...}, "dataSha256": "..."}; the run folder is damaged`);
  }
  try {
    return { options: validateSftOptions({ ...DEFAULT_SFT_OPTIONS, ...parsed.options }), dataSha256: parsed.dataSha256, valDataSha256: parsed.valDataSha256 ?? null };
  } catch (e) {
    throw new StepError(`${path}: ${(e as Error).message}`);
  }
}

function sftPlan(o: SftOptions, layers: number, describe: string): MethodPlan {
  const schedule = warmupCosineSchedule({ warmupSteps: o.warmupSteps, totalSteps: o.steps, minRatio: o.minLrRatio });
  return {
    stages: 1, initialLayers: layers, describe: () => describe, lrScale: (s) => schedule(s.step),
    beforeStep: async () => {}, afterFirstStep: (run) => logMemory(run, null), firstStepOfStage: () => 0, isStageEnd: () => false,
  };
}

const countNote = (what: string, e: EncodedExamples, seqLen: number) =>
  `${what}: ${e.examples.length} examples` + (e.truncated || e.skipped ? ` (${e.truncated} with the response cut to fit --seq-len ${seqLen}, ${e.skipped} skipped: the prompt alone is longer)` : '');

/** Validates everything, then creates (or takes) the run folder; returns the run ready to train and the settings. */
export async function startSftRun(options: SftOptions, resumeName: string | null, extra: SftExtra = {}): Promise<{ run: Run; sft: SftOptions; tokenizer: BpeTokenizer }> {
  const name = resumeName ?? (options.name || timestampName());
  checkRunName(name, resumeName ? '--resume' : '--name');
  const runDir = resolve(options.runsDir, name);
  const created: string[] = [];
  let lock: RunLock | null = null, model: LlamaModel | null = null, optimizer: TrainOptimizer | null = null;
  try {
    // ---- read and check
    let o: SftOptions, saved: SavedSft | null = null, resumeDir: string | null = null, cleaned: string[] = [];
    const changes: { flag: string; from: unknown; to: unknown }[] = [];
    if (resumeName) {
      const configPath = join(runDir, SFT_CONFIG);
      if (!existsSync(configPath)) throw new StepError(`--resume ${resumeName}: ${configPath} not found; is ${runDir} a run folder of step sft?`);
      checkWritable(runDir, 'the run folder');
      lock = acquireRunLock(runDir);
      cleaned = cleanStaleLeftovers(runDir);
      saved = await readSaved(configPath);
      o = { ...saved.options, stopAfter: options.stopAfter };
      for (const key of extra.given ?? ['device' as const]) {
        if (key === 'runsDir' || key === 'stopAfter' || JSON.stringify(options[key]) === JSON.stringify(saved.options[key])) continue;
        (o as unknown as Record<string, unknown>)[key] = options[key];
        if (key !== 'device') changes.push({ flag: SFT_FLAG[key], from: saved.options[key], to: options[key] });
      }
      resumeDir = await latestCheckpoint(runDir);
    } else {
      o = validateSftOptions({ ...options }, extra.given);
      if (existsSync(runDir)) {
        if (!extra.overwrite) throw new StepError(`step sft: the run folder ${runDir} already exists; continue that run with --resume ${name}, or replace it with --overwrite (its checkpoints are deleted)`);
        checkWritable(runDir, 'the run folder');
        lock = acquireRunLock(runDir);
      }
    }
    const baseDir = resumeDir ?? await resolveCheckpointDir(o.checkpoint);
    const config = await readCheckpointConfig(baseDir);
    const tokPath = resumeName ? join(runDir, 'tokenizer.json') : join(baseDir, 'tokenizer.json');
    if (!existsSync(tokPath)) throw new StepError(`step sft: ${tokPath} not found; the records are text, so the model's tokenizer is needed (a checkpoint written by step train has one)`);
    const tokenizer = await BpeTokenizer.load(tokPath);
    if (tokenizer.vocabSize !== config.vocab_size) throw new StepError(`vocabulary mismatch: ${tokPath} has ${tokenizer.vocabSize} tokens but ${join(baseDir, 'config.json')} says vocab_size ${config.vocab_size}`);
    const eot = endOfTextId(tokenizer, tokPath);
    const seqLen = o.seqLen || config.max_position_embeddings;
    if (seqLen > config.max_position_embeddings) throw new StepError(`step sft: --seq-len ${seqLen} is beyond the model's max_position_embeddings ${config.max_position_embeddings} (${join(baseDir, 'config.json')}); lower --seq-len, or leave it out to use the whole context`);
    const hidden = Math.min(config.hidden_size, kvDim(config));
    if (o.loraRank > hidden) throw new StepError(`step sft: --lora-rank ${o.loraRank} is above ${hidden}, the smaller side of the model's smallest linear; a LoRA rank is at most that`);

    const trainFile = await readInstructionFile(o.data, '--data');
    if (saved && trainFile.sha256 !== saved.dataSha256) throw new StepError(`--resume ${resumeName}: ${o.data} changed since the run started (its sha256 differs); the data order depends on it. Restore the file, or start a new run`);
    const valFile = o.valData ? await readInstructionFile(o.valData, '--val-data') : null;
    if (saved && valFile && valFile.sha256 !== saved.valDataSha256) throw new StepError(`--resume ${resumeName}: ${o.valData} changed since the run started; restore it, or start a new run`);
    const train = encodeExamples(tokenizer, trainFile.records, o.template, seqLen, eot);
    if (train.examples.length === 0) throw new StepError(`step sft: every record of ${o.data} has a prompt longer than --seq-len ${seqLen} tokens; raise --seq-len (up to max_position_embeddings ${config.max_position_embeddings}) or shorten the prompts`);
    const val = valFile ? encodeExamples(tokenizer, valFile.records, o.template, seqLen, eot) : null;
    if (val && val.examples.length === 0) throw new StepError(`step sft: every record of ${o.valData} has a prompt longer than --seq-len ${seqLen} tokens`);
    const batches = new InstructionBatches(train.examples, o.batchSize, o.seed, eot);
    const steps = o.steps || Math.max(1, Math.ceil(batches.batchesFor(o.epochs) / o.gradAccum));
    o = { ...o, seqLen, steps, checkpoint: resumeName ? o.checkpoint : baseDir, data: resolve(o.data), valData: o.valData && resolve(o.valData) };
    if (o.warmupSteps >= o.steps) throw new StepError(`step sft: --warmup (${o.warmupSteps}) must be below the run's ${o.steps} steps`);
    const device = await initDevice(o.device);
    checkDeviceLimits(largestStepBuffers(config, o), maxBindingBytes(device), device.description);

    let state: TrainerState;
    if (resumeDir) {
      state = await readTrainerState(resumeDir, { layers: config.num_hidden_layers, gradAccum: o.gradAccum, seed: o.seed });
      if (state.method !== 'sft') throw new StepError(`${resumeDir}: a checkpoint of method ${state.method}, not of step sft`);
      if (o.steps < state.step) throw new StepError(`--resume ${resumeName}: --steps ${o.steps} is below the checkpoint's step ${state.step}; give --steps ${state.step} or more`);
      model = buildTuningModel(config, device, o);
      await loadModelWeights(model, resumeDir);
    } else {
      const lora = o.loraRank ? { rank: o.loraRank, alpha: o.loraAlpha } : null;
      state = {
        format: TRAINER_STATE_FORMAT, version: 1, method: 'sft', step: 0, tokens: 0, sampler: { seed: o.seed, step: 0 }, stage: 0, stageStartStep: 0,
        frozenLayers: lora ? [...Array(config.num_hidden_layers).keys()] : [], lora, lastRestart: 0, lastLoss: null, lastValLoss: null,
      };
      model = await loadBaseModel(baseDir, device, o); // also a resume before the first checkpoint
    }
    const trainOptions = trainOptionsOf(o);
    optimizer = makeOptimizer(model, trainOptions);
    if (resumeDir) await loadOptimizer(optimizer, resumeDir);

    // ---- create (or take over) the folder
    if (!resumeName) {
      if (lock) {
        for (const entry of readdirSync(runDir)) if (entry !== LOCK_FILE) rmSync(join(runDir, entry), { recursive: true, force: true });
        created.push(runDir);
      } else {
        const first = mkdirSync(resolve(o.runsDir), { recursive: true });
        if (first) created.push(first);
        try {
          mkdirSync(runDir);
        } catch (e) {
          throw new StepError(`step sft: cannot create the run folder ${runDir} (${(e as NodeJS.ErrnoException).code}); choose another --name or --runs-dir`);
        }
        if (!first) created.push(runDir);
        lock = acquireRunLock(runDir);
      }
    }
    const checkpoints = join(runDir, 'checkpoints');
    if (!existsSync(checkpoints)) mkdirSync(checkpoints);
    checkWritable(checkpoints, 'the checkpoints folder');
    const log = new RunLog(runDir);
    const savedNow: SavedSft = { options: { ...o, stopAfter: saved?.options.stopAfter ?? null }, dataSha256: trainFile.sha256, valDataSha256: valFile?.sha256 ?? null };
    if (!resumeName || changes.length) await writeFileAtomic(join(runDir, SFT_CONFIG), JSON.stringify(savedNow, null, 2) + '\n');
    if (!resumeName) await tokenizer.save(join(runDir, 'tokenizer.json'));
    lock = lock ?? acquireRunLock(runDir);

    const kind = o.loraRank ? `LoRA rank ${o.loraRank} (alpha ${o.loraAlpha}) on every linear, the rest frozen` : 'full fine-tuning';
    const describe = `step sft: ${kind}; ${o.steps} steps of ${o.batchSize}${o.gradAccum > 1 ? ` x ${o.gradAccum}` : ''} examples (${(o.steps * o.batchSize * o.gradAccum / train.examples.length).toFixed(2)} epochs), template ${o.template}, --seq-len ${seqLen}`;
    const evalOptions = { batch: o.batchSize, maxBatches: o.evalBatches, padId: eot };
    const run: Run = {
      options: trainOptions, runDir, device, config, model, optimizer, state, log, lock,
      data: { tokenizer, train: new Uint32Array(0), validation: new Uint32Array(0), vocabSize: config.vocab_size, unigramPerplexity: NaN, description: countNote(o.data, train, seqLen) },
      plan: sftPlan(o, config.num_hidden_layers, describe),
      progress: new Progress(o.steps, device, Math.max(1, Math.floor(o.steps / 20))),
      source: { batchAt: (i) => batches.batchAt(i), evaluate: async (m) => (val ? evaluateResponses(m, val.examples, evalOptions) : null) },
    };
    if (lock.tookOver) run.progress.note(`note: took over the lock of process ${lock.tookOver.pid}, which is no longer running`);
    for (const c of cleaned) run.progress.note(`note: ${c}`);
    const counts = { examples: train.examples.length, truncated: train.truncated, skipped: train.skipped, validation: val && { examples: val.examples.length, truncated: val.truncated, skipped: val.skipped } };
    if (resumeName) {
      log.write('resume', { step: state.step, checkpoint: resumeDir, overrides: changes });
      for (const c of changes) run.progress.note(`resume: ${c.flag} ${formatValue(c.from)} -> ${formatValue(c.to)}`);
      run.progress.note(resumeDir ? `resuming ${runDir} from ${resumeDir} (step ${state.step})` : `resuming ${runDir} from the start (it has no checkpoint yet)`);
    } else {
      log.write('start', { options: o, device: device.description, base: baseDir, data: counts, plan: describe });
      run.progress.note(`run folder: ${runDir}\nbase: ${baseDir}\ndevice: ${device.description}\n${countNote(o.data, train, seqLen)}${val ? `\n${countNote(o.valData!, val, seqLen)}` : ''}\n${describe}`);
    }
    return { run, sft: o, tokenizer };
  } catch (e) {
    undoFailedStart({ optimizer, model, lock, created });
    throw e;
  }
}
