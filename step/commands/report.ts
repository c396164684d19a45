import { StepError } from '../../engine/errors.js';
import { join } from 'node:path';
import { writeReport } from '../report/html.js';
import { resolveRunDir } from '../report/load-run.js';

const USAGE = `usage: step report RUN... [--out FILE.html]
  RUN          a run folder (runs/NAME) or a NAME under ./runs; give several to compare them
  --out FILE   where to write the page (default: report.html, or RUN/report.html for one run)`;

/** `step report`: one self-contained HTML page for the runs (loss, memory, planner, configs). */
export async function report(args: string[]): Promise<number> {
  const runs: string[] = [];
  let out: string | null = null;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--help' || a === '-h') { process.stdout.write(USAGE + '\n'); return 0; }
    if (a === '--out' || a.startsWith('--out=')) {
      const v = a === '--out' ? args[++i] : a.slice('--out='.length);
      if (!v || v.startsWith('--')) throw new StepError(`step report: --out needs a file name\n${USAGE}`);
      out = v;
    } else if (a.startsWith('-')) {
      throw new StepError(`step report: unknown option ${a}\n${USAGE}`);
    } else {
      runs.push(a);
    }
  }
  if (runs.length === 0) throw new StepError(`step report: give at least one run\n${USAGE}`);
  const { path, summaries } = await writeReport(runs, out ?? (runs.length === 1 ? join(resolveRunDir(runs[0]!), 'report.html') : 'report.html'));
  for (const s of summaries) {
    process.stdout.write(`${s.name}: ${s.description}; validation perplexity ${s.valPerplexity?.toFixed(1) ?? 'n/a'} (unigram ${s.unigramPerplexity?.toFixed(1) ?? 'n/a'}), peak model state ${s.peakModelState ?? 'n/a'} B\n`);
  }
  process.stdout.write(`report: ${path}\n`);
  return 0;
}
