/**
 * `step experiment-tasks`: the comparison of issue 13. For each model of a `step experiment`
 * folder (kinds x seeds): the tasks zero-shot, the instruction tuning (tune.ts, identical for every
 * model), the tasks again on the tuned model; then the aggregate (aggregate.ts) as
 * OUT/NAME/summary.json, summary.md and report.html. Every piece is written atomically when it is
 * done (OUT/NAME/models/KIND-seedS/zero-shot.json and tuned.json, the tuning run's final/), and a
 * rerun reuses it, so an interrupted comparison continues where it stopped.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Backend } from '../../engine/backend.js';
import { getDevice, initDevice, setDevice } from '../../engine/device.js';
import { StepError } from '../../engine/errors.js';
import { writeFileAtomic } from '../../models/data/atomic-write.js';
import { loadCheckpointModel } from '../commands/checkpoint-model.js';
import { writeReport } from '../report/html.js';
import { evaluateCheckpointTasks, type TaskEvaluation } from '../tasks/evaluate-model.js';
import { loadTaggedBrown, type TaggedBrown } from '../tasks/brown-tagged.js';
import { loadTasks, writePosSftSet } from '../tasks/suite.js';
import type { Task } from '../tasks/task.js';
import { FINAL_MARKER } from '../train/final-model.js';
import type { GroupStats, ModelResult, Stage } from './aggregate.js';
import { aggregateResults, compareMarkdown, STAGE_LABEL } from './aggregate.js';
import type { ComparedModel } from './models.js';
import { findModels } from './models.js';
import type { CompareOptions } from './options.js';
import { tasksSection } from './report-section.js';
import type { TuningStatus } from './tune.js';
import { tuneModel, tuningOptions } from './tune.js';

/** One stage's results of one model, as saved in OUT/NAME/models/KIND-seedS/STAGE.json. */
export interface SavedEvaluation extends TaskEvaluation {
  /** The model evaluated and the step its final/ was written at. */
  model: string;
  step: number;
  seconds: number;
}

export interface CompareResult {
  dir: string;
  groups: GroupStats[];
  markdown: string;
  reportPath: string;
}

/** What the results depend on: a rerun with other values would mix results, so it is refused. */
function settingsOf(o: CompareOptions, sftData: string): Record<string, unknown> {
  const sha = (f: string) => createHash('sha256').update(readFileSync(f)).digest('hex');
  return {
    tasks: o.tasks, taskFiles: o.taskFiles.map((f) => ({ path: f, sha256: sha(f) })), limit: o.limit, generationLimit: o.generationLimit, taskSeed: o.taskSeed, maxWords: o.maxWords,
    template: o.template, sftData: o.sftData === null ? 'pos-brown' : { path: sftData, sha256: sha(sftData) }, sftSteps: o.sftSteps,
    sftEpochs: o.sftSteps ? null : o.sftEpochs, sftLr: o.sftLr, sftBatch: o.sftBatch, sftSeed: o.sftSeed, loraRank: o.loraRank,
  };
}

const FLAGS: Record<string, string> = {
  tasks: '--tasks', taskFiles: '--task-file', limit: '--limit', generationLimit: '--generation-limit', taskSeed: '--task-seed', maxWords: '--max-words', template: '--template', sftData: '--sft-data',
  sftSteps: '--sft-steps', sftEpochs: '--sft-epochs', sftLr: '--sft-lr', sftBatch: '--sft-batch', sftSeed: '--sft-seed', loraRank: '--lora-rank',
};

async function checkSettings(dir: string, settings: Record<string, unknown>): Promise<void> {
  const path = join(dir, 'settings.json');
  if (existsSync(path)) {
    const saved = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
    const differ = Object.keys(settings).filter((k) => JSON.stringify(saved[k]) !== JSON.stringify(settings[k]));
    if (differ.length) {
      throw new StepError(`step experiment-tasks: ${dir} holds a comparison made with other settings (${differ.map((k) => `${FLAGS[k]} ${JSON.stringify(saved[k])} there, ${JSON.stringify(settings[k])} now`).join('; ')}); give the same flags to continue it, or another --name`);
    }
    return;
  }
  await writeFileAtomic(path, JSON.stringify(settings, null, 2) + '\n');
}

/** The saved results of a stage, or null; a result of another model or step is refused. */
function savedEvaluation(path: string, model: string, step: number): SavedEvaluation | null {
  if (!existsSync(path)) return null;
  const saved = JSON.parse(readFileSync(path, 'utf8')) as SavedEvaluation;
  if (saved.model !== model || saved.step !== step) {
    throw new StepError(`step experiment-tasks: ${path} holds results of ${saved.model} at step ${saved.step}, but the model is now ${model} at step ${step}; delete ${join(path, '..')} (and its tuning run) to evaluate it again, or choose another --name`);
  }
  return saved;
}

async function evaluateStage(path: string, modelDir: string, step: number, device: Backend, tasks: () => Promise<Task[]>, o: CompareOptions): Promise<{ result: SavedEvaluation; reused: boolean }> {
  const saved = savedEvaluation(path, modelDir, step);
  if (saved) return { result: saved, reused: true };
  const built = await tasks();
  const t0 = performance.now();
  const ckpt = await loadCheckpointModel(modelDir, device);
  try {
    const ev = await evaluateCheckpointTasks(ckpt, built, { template: o.template, limit: o.limit, generationLimit: o.generationLimit, command: 'step experiment-tasks' });
    const result: SavedEvaluation = { model: modelDir, step, ...ev, seconds: (performance.now() - t0) / 1000 };
    await writeFileAtomic(path, JSON.stringify(result, null, 2) + '\n');
    return { result, reused: false };
  } finally {
    ckpt.model.dispose();
  }
}

const finalStep = (dir: string) => (JSON.parse(readFileSync(join(dir, FINAL_MARKER), 'utf8')) as { step: number }).step;
const brief = (e: SavedEvaluation) => e.rows.filter((r) => r.stderr !== null).map((r) => `${r.task} ${r.metric} ${r.value.toFixed(3)}`).join(', ');

export async function runComparison(o: CompareOptions, command = 'step experiment-tasks', say: (line: string) => void = (l) => process.stdout.write(l + '\n')): Promise<CompareResult> {
  const started = performance.now();
  // the models and the settings are checked before anything is written
  const models = findModels(o.experiment, o.kinds, o.seeds);
  // the tasks are built (and task files checked) when the first evaluation needs them: a rerun whose results are all saved builds none
  let tagged: Promise<TaggedBrown> | null = null, built: Promise<Task[]> | null = null;
  const corpus = () => (tagged ??= loadTaggedBrown());
  const tasks = () => (built ??= (async () => loadTasks(o.tasks, o.taskFiles, { seed: o.taskSeed, maxWords: o.maxWords }, o.tasks.length ? await corpus() : undefined))());
  const dir = join(o.experiment, o.name);
  const sftData = o.sftData ?? join(dir, 'pos-brown-sft.jsonl');
  for (const f of [...o.taskFiles, ...(o.sftData === null ? [] : [o.sftData])]) {
    if (!existsSync(f)) throw new StepError(`step experiment-tasks: ${f} does not exist (${o.taskFiles.includes(f) ? '--task-file' : '--sft-data'}); give a .jsonl file`);
  }
  await mkdir(join(dir, 'models'), { recursive: true });
  await checkSettings(dir, settingsOf(o, o.sftData ?? 'pos-brown'));
  if (o.sftData === null && !existsSync(sftData)) {
    const set = await writePosSftSet(sftData, { seed: o.taskSeed, maxWords: o.maxWords }, await corpus());
    say(`wrote pos-brown's SFT set (Brown training documents): ${set.examples.length} records to ${sftData}`);
  }
  say(`comparing ${models.length} models (${o.kinds.join(', ')} x seeds ${[...new Set(models.map((m) => m.seed))].join(', ')}) of ${o.experiment}; results in ${dir}`);
  const device = await initDevice(o.device);
  const results: ModelResult[] = [];
  const perModel: Record<string, unknown>[] = [];
  try {
    for (const [i, m] of models.entries()) {
      const t0 = performance.now();
      const folder = join(dir, 'models', m.name);
      await mkdir(folder, { recursive: true });
      say(`\n== model ${i + 1}/${models.length}: ${m.name} (${m.finalDir}, step ${m.step}) ==`);
      const zero = await evaluateStage(join(folder, 'zero-shot.json'), m.finalDir, m.step, device, tasks, o);
      say(`zero-shot: ${zero.reused ? 'reused' : `${zero.result.seconds.toFixed(0)} s`}; ${brief(zero.result)}`);
      const tuning = tuningOptions(o, m.finalDir, sftData, join(dir, 'sft'), m.name);
      const tuned = await tuneModel(tuning);
      // step sft opened a device of its own (the default device now): free it, with the buffers its pool keeps
      const used = getDevice();
      if (used !== device && used.name === 'webgpu') used.destroy();
      setDevice(device);
      say(`tuning (${join(tuning.runsDir, tuning.name)}): ${tuned.status === 'reused' ? 'finished before, reused' : tuned.status}`);
      const after = await evaluateStage(join(folder, 'tuned.json'), tuned.finalDir, finalStep(tuned.finalDir), device, tasks, o);
      say(`after SFT: ${after.reused ? 'reused' : `${after.result.seconds.toFixed(0)} s`}; ${brief(after.result)}`);
      results.push(resultOf(m, 'zero-shot', zero.result), resultOf(m, 'tuned', after.result));
      perModel.push(modelEntry(m, zero.result, after.result, tuned.finalDir, tuned.status, (performance.now() - t0) / 1000));
    }
  } finally {
    if (device.name === 'webgpu') device.destroy();
  }
  const groups = aggregateResults(results, o.kinds);
  const header = describe(o, models, command, sftData);
  const markdown = compareMarkdown(groups, results, header);
  const wallSeconds = (performance.now() - started) / 1000;
  await writeFileAtomic(join(dir, 'summary.json'), JSON.stringify({ command, options: o, header, models: perModel, groups, wallSecondsThisProcess: wallSeconds }, null, 2) + '\n');
  await writeFileAtomic(join(dir, 'summary.md'), markdown);
  const { path: reportPath } = await writeReport(models.map((m) => m.runDir), join(dir, 'report.html'), process.cwd(), () => tasksSection(groups, header));
  say(`\n${markdown}\ncomparison took ${(wallSeconds / 60).toFixed(1)} min in this process\nreport: ${reportPath}\nsummary: ${join(dir, 'summary.md')}`);
  return { dir, groups, markdown, reportPath };
}

function resultOf(m: ComparedModel, stage: Stage, e: SavedEvaluation): ModelResult {
  return { name: m.name, kind: m.kind, seed: m.seed, stage, rows: e.rows };
}

function modelEntry(m: ComparedModel, zero: SavedEvaluation, tuned: SavedEvaluation, tunedDir: string, status: TuningStatus, seconds: number): Record<string, unknown> {
  return { name: m.name, kind: m.kind, seed: m.seed, base: m.finalDir, baseStep: m.step, tuned: tunedDir, tuning: status, [STAGE_LABEL['zero-shot']]: zero, [STAGE_LABEL.tuned]: tuned, seconds };
}

/** The lines above the tables: what was compared, on what, and how it was tuned. */
function describe(o: CompareOptions, models: readonly ComparedModel[], command: string, sftData: string): string[] {
  const seeds = [...new Set(models.map((m) => m.seed))];
  return [
    `Command: \`${command}\``,
    '',
    `Models: the final model (adapters merged) of each run ${o.kinds.map((k) => `\`${k}-seedS\``).join(', ')} of \`${o.experiment}\`, seeds ${seeds.join(', ')} (${models.length} models).`,
    `Tasks: ${[...o.tasks, ...o.taskFiles].join(', ')}; the first ${o.limit} examples of each log-likelihood task and ${o.generationLimit} of each instruction task (task seed ${o.taskSeed}, pos-brown sentences of at most ${o.maxWords} tokens), template ${o.template}; built-in tasks use the Brown validation documents only.`,
    `Instruction tuning, the same for every model: ${o.loraRank ? `LoRA rank ${o.loraRank} on every linear (merged)` : 'full fine-tuning'}, ${o.sftSteps ? `${o.sftSteps} steps` : `${o.sftEpochs} epochs`} of ${o.sftBatch} records, lr ${o.sftLr} (warm-up 0, cosine to 0.1x), data order seed ${o.sftSeed}, on ${o.sftData ?? `pos-brown's SFT set from the Brown training documents (${sftData})`}; loss on the response tokens only.`,
  ];
}
