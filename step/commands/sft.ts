import { parseSftArgs, SFT_USAGE } from '../sft/options.js';
import { sft } from '../sft/sft.js';

/** `step sft --checkpoint DIR --data FILE [options]`: see SFT_USAGE. */
export async function sftCommand(args: string[]): Promise<number> {
  const { options, resume, overwrite, given, help } = parseSftArgs(args);
  if (help) {
    process.stdout.write(SFT_USAGE + '\n');
    return 0;
  }
  const r = await sft(options, resume, { given, overwrite });
  const name = r.runDir.split('/').pop();
  if (r.stopped) {
    process.stdout.write(`stopped at step ${r.finalStep}; continue with: step sft --resume ${name}${options.runsDir !== 'runs' ? ` --runs-dir ${options.runsDir}` : ''}\n`);
    return 0;
  }
  const val = r.valLoss !== null ? `; validation response loss ${r.valLoss.toFixed(4)}` : '';
  process.stdout.write(`done: ${r.finalStep} steps${val}\ntuned model: ${r.finalDir}\n`);
  return 0;
}
