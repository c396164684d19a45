import { parseExperimentArgs } from '../experiment/design.js';
import { runExperiment } from '../experiment/run.js';

/** `step experiment`: vanilla vs STEP (2 and 3 stages) vs ReLoRA at equal tokens, then the report (see EXPERIMENT_USAGE). */
export async function experiment(args: string[]): Promise<number> {
  const options = parseExperimentArgs(args);
  await runExperiment(options, ['step', 'experiment', ...args].join(' '));
  return 0;
}
