import { StepError } from '../../engine/errors.js';
import { flagValue, numberFlag } from '../cli-args.js';
import { generate } from '../../models/generate.js';
import { EOT } from '../train/data.js';
import { closeCheckpoint, commonArgs, openCheckpoint, parseFlags } from './checkpoint-model.js';

export const GENERATE_USAGE = `usage: step generate --checkpoint DIR --prompt TEXT [options]
  --max-new-tokens N     tokens to add (default 50); stops early at the end-of-text token
  --temperature X        0 = greedy (default 1)
  --top-k K              keep the K most likely tokens (default 0: all)
  --top-p P              keep the smallest set of tokens whose probability reaches P (default 1: all)
  --seed S               sampling seed (default 0): the same seed gives the same text
  --device auto|webgpu|cpu   --json (one JSON object: prompt, continuation, token ids)
Prints the continuation of the prompt (not the prompt itself).`;

/** `step generate`: see GENERATE_USAGE. `print` receives the output (default: stdout), `warn` the warnings (default: stderr). */
export async function generateCommand(args: string[], print: (text: string) => void = (t) => process.stdout.write(t),
  warn: (text: string) => void = (t) => process.stderr.write(t)): Promise<number> {
  const flags = parseFlags('generate', GENERATE_USAGE, args, ['--checkpoint', '--prompt', '--max-new-tokens', '--temperature', '--top-k', '--top-p', '--seed', '--device']);
  if (flags.help) { print(GENERATE_USAGE + '\n'); return 0; }
  const common = commonArgs('generate', GENERATE_USAGE, flags);
  const prompt = flagValue(flags, '--prompt');
  if (prompt === undefined || prompt.length === 0) throw new StepError(`step generate: --prompt TEXT is required (non-empty)\n${GENERATE_USAGE}`);
  const maxNewTokens = numberFlag('generate', flags, '--max-new-tokens', { integer: true, min: 0 }) ?? 50;
  const temperature = numberFlag('generate', flags, '--temperature', { min: 0 }) ?? 1;
  const topK = numberFlag('generate', flags, '--top-k', { integer: true, min: 0 }) ?? 0;
  const topP = numberFlag('generate', flags, '--top-p', { min: 0, minExclusive: true, max: 1, reason: '1 keeps every token' }) ?? 1;
  const seed = numberFlag('generate', flags, '--seed', { integer: true, min: 0 }) ?? 0;

  const { device, ckpt } = await openCheckpoint(common.checkpoint, common.device);
  try {
    const tok = ckpt.tokenizer;
    if (!tok) throw new StepError(`step generate: ${ckpt.dir} has no tokenizer.json, so the prompt cannot be encoded (was the run trained on a .bin token shard?)`);
    const ids = tok.encode(prompt);
    const eos = typeof ckpt.config.eos_token_id === 'number' ? ckpt.config.eos_token_id
      : tok.specialTokens.includes(EOT) ? tok.specialId(EOT) : undefined;
    const out = await generate(ckpt.model, ids, {
      maxNewTokens, temperature, topK, topP, seed, eosTokenId: eos, maxContext: ckpt.config.max_position_embeddings,
      onPromptTruncated: (dropped, context) => warn(`step generate: warning: the prompt has ${ids.length} tokens but the model's context is ${context} (max_position_embeddings); its first ${dropped} tokens are dropped and only the last ${context} are seen\n`),
    });
    const text = tok.decode(out.filter((t) => t !== eos));
    if (common.json) print(JSON.stringify({ prompt, promptTokens: ids, tokens: out, continuation: text }) + '\n');
    else print(text + '\n');
    return 0;
  } finally {
    closeCheckpoint(ckpt, device);
  }
}
