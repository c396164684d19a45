import { parseTrainArgs, TRAIN_USAGE } from '../train/options.js';
import { train as runTraining } from '../train/trainer.js';

/** `step train [options]`: see TRAIN_USAGE. */
export async function train(args: string[]): Promise<number> {
  const { options, resume, overwrite, given, help, memoryLimit } = parseTrainArgs(args);
  if (help) {
    process.stdout.write(TRAIN_USAGE + '\n');
    return 0;
  }
  const r = await runTraining(options, resume, { given, overwrite, memoryLimit });
  if (r.stopped) {
    process.stdout.write(`stopped at step ${r.finalStep}; continue with: step train --resume ${r.runDir.split('/').pop()}\n`);
    return 0;
  }
  const ppl = r.valPerplexity;
  process.stdout.write(`done: ${r.finalStep} steps; validation perplexity ${ppl?.toFixed(1) ?? 'n/a'} (unigram baseline ${r.unigramPerplexity.toFixed(1)})\nrun folder: ${r.runDir}\n`);
  return 0;
}
