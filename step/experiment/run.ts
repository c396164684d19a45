/**
 * Runs the experiment of design.ts / runs.ts one run after another through the programmatic
 * trainer, evaluates each final model on the held-out tokens, then writes the HTML report (with
 * the spread over seeds) and the summary (JSON and Markdown) into the experiment folder.
 * A rerun with the same folder reuses finished runs (when their options are the experiment's)
 * and resumes interrupted ones from their last checkpoint.
 */
import { existsSync, readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { StepError } from '../../engine/errors.js';
import { writeFileAtomic } from '../../models/data/atomic-write.js';
import { writeReport } from '../report/html.js';
import { spreadSection } from '../report/spread.js';
import type { TrainOptions } from '../train/options.js';
import { train } from '../train/trainer.js';
import type { ExperimentOptions } from './design.js';
import type { FinalEval } from './final-eval.js';
import { finalEvaluation } from './final-eval.js';
import { runFlops } from './flops.js';
import type { ExperimentRun } from './runs.js';
import { experimentRuns, experimentTarget } from './runs.js';
import type { ExperimentSummary } from './summary.js';
import { experimentMarkdown, summarizeExperiment } from './summary.js';

export interface ExperimentResult {
  dir: string;
  reportPath: string;
  summary: ExperimentSummary;
  markdown: string;
}

/** Options that must agree for a finished run to be reused (device and stopAfter may differ). */
function comparable(o: TrainOptions): string {
  const { device: _d, stopAfter: _s, runsDir: _r, ...rest } = o;
  return JSON.stringify(rest);
}

/** 'done', 'resume' or 'new'; throws when the folder holds a run that cannot be continued. */
function runStatus(dir: string, o: TrainOptions): 'done' | 'resume' | 'new' {
  if (!existsSync(dir)) return 'new';
  const configPath = join(dir, 'train-config.json');
  const fresh = (why: string) => new StepError(`step experiment: ${dir} ${why}; delete that folder or choose another --out`);
  if (!existsSync(configPath)) throw fresh('exists but holds no train-config.json');
  const saved = JSON.parse(readFileSync(configPath, 'utf8')) as TrainOptions;
  if (comparable(saved) !== comparable(o)) throw fresh('holds a run with other options than this experiment\'s');
  const log = existsSync(join(dir, 'log.jsonl')) ? readFileSync(join(dir, 'log.jsonl'), 'utf8') : '';
  if (/"event":"end"/.test(log)) return 'done';
  if (!existsSync(join(dir, 'latest.json'))) throw fresh('holds an unfinished run without a checkpoint to resume from');
  return 'resume';
}

/**
 * `finishedOnly` (--finished-only): trains nothing; the summary and report cover the runs that
 * have finished (an experiment still running in another process, or interrupted) and name the rest.
 */
export async function runExperiment(e: ExperimentOptions, command = 'step experiment', say: (line: string) => void = (l) => process.stdout.write(l + '\n'), finishedOnly = false): Promise<ExperimentResult> {
  const dir = resolve(e.out);
  const runsDir = join(dir, 'runs');
  await mkdir(runsDir, { recursive: true });
  const all = experimentRuns(e, runsDir);
  // --finished-only reads while another process trains: a run folder without a checkpoint yet (its first
  // stretch) or with other options is simply not finished, not an error
  const finished = (r: ExperimentRun): boolean => {
    try {
      return runStatus(join(runsDir, r.options.name), r.options) === 'done';
    } catch (e) {
      if (e instanceof StepError) return false;
      throw e;
    }
  };
  const runs = finishedOnly ? all.filter(finished) : all;
  const unfinished = all.filter((r) => !runs.includes(r)).map((r) => r.name);
  if (finishedOnly && runs.length === 0) throw new StepError(`step experiment --finished-only: no run of this experiment has finished in ${runsDir} yet`);
  const started = performance.now();
  const evals: FinalEval[] = [];
  for (const [i, r] of runs.entries()) {
    const o = r.options;
    const runDir = join(runsDir, o.name);
    const status = runStatus(runDir, o);
    say(`\n== run ${i + 1}/${runs.length}: ${o.name} (${status === 'done' ? 'finished before, reused' : status === 'resume' ? 'resuming' : `${o.steps} steps`}) ==`);
    const t0 = performance.now();
    if (status !== 'done') await train(o, status === 'resume' ? o.name : null);
    const ev = await finalEvaluation(runDir, o, e.finalEvalTokens);
    evals.push(ev);
    say(`${o.name}: held-out loss ${ev.loss.toFixed(4)}, perplexity ${ev.perplexity.toFixed(1)} on ${ev.tokens} tokens${status === 'done' ? '' : ` in ${((performance.now() - t0) / 60000).toFixed(1)} min`}`);
  }
  const target = experimentTarget(e);
  const flops = runs.map((r) => runFlops(r.options, target));
  let summary: ExperimentSummary | null = null;
  const { path: reportPath } = await writeReport(runs.map((r) => join(runsDir, r.name)), join(dir, 'report.html'), process.cwd(), (sums) => {
    summary = summarizeExperiment(runs, sums, evals, flops);
    return spreadSection(summary.groups, Math.min(...evals.map((x) => x.tokens)));
  });
  const s = summary as unknown as ExperimentSummary;
  const markdown = experimentMarkdown(s, command) + (unfinished.length
    ? `\n**Partial summary**: ${runs.length} of ${all.length} runs finished; not yet: ${unfinished.join(', ')}.\n` : '');
  await writeFileAtomic(join(dir, 'summary.json'), JSON.stringify({ command, options: e, ...s, unfinished }, null, 2) + '\n');
  await writeFileAtomic(join(dir, 'summary.md'), markdown);
  say(`\n${markdown}\nexperiment took ${((performance.now() - started) / 60000).toFixed(1)} min in this process\nreport: ${reportPath}\nsummary: ${join(dir, 'summary.md')}`);
  return { dir, reportPath, summary: s, markdown };
}
