import { join } from 'node:path';
import { UsageError } from '../cli-args.js';
import { EXPERIMENT_USAGE, experimentRuns, parseExperimentArgs } from '../experiment/design.js';
import { runExperiment } from '../experiment/run.js';

/** `step experiment`: vanilla vs STEP (2 and 3 stages) vs ReLoRA at equal tokens, then the report (see EXPERIMENT_USAGE). */
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
  await runExperiment(options, ['step', 'experiment', ...args].join(' '));
  return 0;
}
