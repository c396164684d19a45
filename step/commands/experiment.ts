import { join } from 'node:path';
import { UsageError } from '../cli-args.js';
import { EXPERIMENT_USAGE, parseExperimentArgs } from '../experiment/design.js';
import { experimentRuns } from '../experiment/runs.js';
import { runExperiment } from '../experiment/run.js';

/** `step experiment`: vanilla, STEP K=2 and K=3, ReLoRA and the ablations over several seeds, at equal tokens and FLOPs, then the report (see EXPERIMENT_USAGE). */
export async function experiment(args: string[]): Promise<number> {
  const options = parseExperimentArgs(args);
  if (options.help) {
    process.stdout.write(EXPERIMENT_USAGE + '\n');
    return 0;
  }
  try {
    experimentRuns(options, join(options.out, 'runs')); // every run's options are checked before any folder is created
  } catch (e) {
    if (e instanceof UsageError) throw new UsageError(e.message.replace(/^step train: /, 'step experiment: '));
    throw e;
  }
  const { finishedOnly, ...design } = options;
  await runExperiment(design, ['step', 'experiment', ...args].join(' '), undefined, finishedOnly ?? false);
  return 0;
}
