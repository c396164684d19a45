import { COMPARE_USAGE, parseCompareArgs } from '../tasks-compare/options.js';
import { runComparison } from '../tasks-compare/run.js';

/** `step experiment-tasks --experiment OUT`: the experiment's models on downstream tasks, zero-shot and after identical instruction tuning (see COMPARE_USAGE). */
export async function experimentTasks(args: string[]): Promise<number> {
  const options = parseCompareArgs(args);
  if (options.help) {
    process.stdout.write(COMPARE_USAGE + '\n');
    return 0;
  }
  await runComparison(options, ['step', 'experiment-tasks', ...args].join(' '));
  return 0;
}
