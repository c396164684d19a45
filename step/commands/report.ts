import { StepError } from '../../engine/errors.js';
import { flagValue, parseArgs, valued } from '../cli-args.js';
import { join } from 'node:path';
import { writeReport } from '../report/html.js';
import { resolveRunDir } from '../report/load-run.js';

const USAGE = `usage: step report RUN... [--out FILE.html]
  RUN          a run folder (runs/NAME) or a NAME under ./runs; give several to compare them
  --out FILE   where to write the page (default: report.html, or RUN/report.html for one run)`;

/** `step report`: one self-contained HTML page for the runs (loss, memory, planner, configs). */
export async function report(args: string[]): Promise<number> {
  const a = parseArgs({ command: 'report', usage: USAGE, flags: valued(['--out']), positionals: 'RUN' }, args);
  if (a.help) { process.stdout.write(USAGE + '\n'); return 0; }
  const runs = [...a.positionals];
  const out = flagValue(a, '--out') ?? null;
  if (runs.length === 0) throw new StepError(`step report: give at least one run\n${USAGE}`);
  const { path, summaries } = await writeReport(runs, out ?? (runs.length === 1 ? join(resolveRunDir(runs[0]!), 'report.html') : 'report.html'));
  for (const s of summaries) {
    process.stdout.write(`${s.name}: ${s.description}; validation perplexity ${s.valPerplexity?.toFixed(1) ?? 'n/a'} (unigram ${s.unigramPerplexity?.toFixed(1) ?? 'n/a'}), peak model state ${s.peakModelState ?? 'n/a'} B\n`);
  }
  process.stdout.write(`report: ${path}\n`);
  return 0;
}
