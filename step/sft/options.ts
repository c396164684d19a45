/**
 * The options of `step sft`, their flags, ranges (shared with `step train` where the option is the
 * same) and the checks made before anything is read or created.
 */
import type { NumberRule } from '../cli-args.js';
import { describeRule, fitsRule, numberValue, parseArgs, UsageError } from '../cli-args.js';
import type { CommandSpec } from '../cli-args.js';
import type { TemplateName } from '../instruct/template.js';
import { TEMPLATE_NAMES } from '../instruct/template.js';
import type { TrainOptions } from '../train/options.js';
import { CHOICES, checkRunName, NUMBER_RULES, OPTION_FLAG } from '../train/validate-options.js';

/** The options `step sft` shares with `step train`: the same meaning, flags and ranges. */
export const SHARED_WITH_TRAIN = [
  'name', 'runsDir', 'batchSize', 'gradAccum', 'lr', 'minLrRatio', 'warmupSteps', 'weightDecay', 'beta1', 'beta2', 'eps', 'clip',
  'evalEvery', 'evalBatches', 'checkpointEvery', 'logEvery', 'seed', 'precision', 'device', 'loraAlpha', 'loraDropout',
  'checkpointActivations', 'stopAfter',
] as const satisfies readonly (keyof TrainOptions)[];

/** Everything an SFT run is made of; saved in runs/NAME/sft-config.json (steps and seq-len resolved). */
export interface SftOptions extends Pick<TrainOptions, (typeof SHARED_WITH_TRAIN)[number]> {
  /** The model to tune: a checkpoint folder, or a run folder (its latest checkpoint). */
  checkpoint: string;
  /** Alpaca records: FILE.jsonl (one per line) or FILE.json (an array). */
  data: string;
  /** Held-out records for the response-only validation loss (none: no evaluation). */
  valData: string | null;
  template: TemplateName;
  epochs: number;
  /** Optimizer steps; 0: as many as --epochs takes. */
  steps: number;
  /** Positions per example; 0: the model's max_position_embeddings. */
  seqLen: number;
  /** 0: full fine-tuning; R > 0: LoRA adapters of rank R on every linear, everything else frozen. */
  loraRank: number;
}

/** The defaults of `step sft` (3 epochs, batch 8, lr 3e-4, no weight decay, full fine-tuning). */
export const DEFAULT_SFT_OPTIONS: SftOptions = {
  checkpoint: '', data: '', valData: null, template: 'alpaca', name: '', runsDir: 'runs', epochs: 3, steps: 0, seqLen: 0,
  batchSize: 8, gradAccum: 1, lr: 3e-4, minLrRatio: 0.1, warmupSteps: 0, weightDecay: 0, beta1: 0.9, beta2: 0.95, eps: 1e-8,
  clip: 1, evalEvery: 0, evalBatches: 16, checkpointEvery: 200, logEvery: 1, seed: 1, precision: 'fp32', device: 'auto',
  loraRank: 0, loraAlpha: 16, loraDropout: 0, checkpointActivations: false, stopAfter: null,
};

export const SFT_FLAG: Record<keyof SftOptions, string> = {
  ...(Object.fromEntries(SHARED_WITH_TRAIN.map((k) => [k, OPTION_FLAG[k]])) as Record<(typeof SHARED_WITH_TRAIN)[number], string>),
  checkpoint: '--checkpoint', data: '--data', valData: '--val-data', template: '--template', epochs: '--epochs', steps: '--steps',
  seqLen: '--seq-len', loraRank: '--lora-rank',
};

type NumericKey = { [K in keyof SftOptions]: SftOptions[K] extends number | null ? K : never }[keyof SftOptions];

/** Ranges: `step train`'s where the option means the same, and those of sft's own options. */
export const SFT_NUMBER_RULES: Record<NumericKey, NumberRule> = {
  ...(Object.fromEntries(SHARED_WITH_TRAIN.filter((k) => k in NUMBER_RULES).map((k) => [k, NUMBER_RULES[k as keyof typeof NUMBER_RULES]])) as Record<Exclude<NumericKey, 'epochs' | 'steps' | 'seqLen' | 'loraRank'>, NumberRule>),
  epochs: { min: 0, minExclusive: true, reason: 'passes over the training records; fractions allowed' },
  steps: { integer: true, min: 0, reason: '0: as many as --epochs takes' },
  seqLen: { integer: true, min: 0, reason: "0: the model's max_position_embeddings" },
  loraRank: { integer: true, min: 0, reason: '0: full fine-tuning' },
};

export const SFT_CHOICES = { template: TEMPLATE_NAMES, precision: CHOICES.precision, device: CHOICES.device } as const;

/** What `--resume NAME` may change: how long, how often to evaluate, save and log, where it runs. */
export const SFT_RESUME_OVERRIDABLE: ReadonlySet<keyof SftOptions> = new Set<keyof SftOptions>([
  'steps', 'evalEvery', 'evalBatches', 'checkpointEvery', 'logEvery', 'stopAfter', 'device', 'checkpointActivations', 'runsDir',
]);

const SWITCHES: readonly (keyof SftOptions)[] = ['checkpointActivations'];
const LORA_ONLY: readonly (keyof SftOptions)[] = ['loraAlpha', 'loraDropout'];

export const SFT_USAGE = `usage: step sft --checkpoint DIR --data FILE.jsonl|FILE.json [options]
  supervised fine-tuning on Alpaca records {"instruction", "input" (optional), "output"}; the loss
  counts only the response tokens (the prompt and the padding are masked)
  --checkpoint DIR       the model to tune: a checkpoint folder or a run folder (its latest checkpoint)
  --data FILE            training records, one JSON object per line (.jsonl) or a JSON array (.json)
  --val-data FILE        held-out records: their response-only loss at --eval-every and at the end
  --template T           ${TEMPLATE_NAMES.join(' | ')} (default alpaca; compact drops Alpaca's preamble)
  --lora-rank R          LoRA fine-tuning: adapters of rank R on every linear, the rest frozen, merged
                         at the end (default 0: full fine-tuning)   --lora-alpha A --lora-dropout P
  --epochs E (default 3) or --steps S   --batch-size B --grad-accum A
  --seq-len T            positions per example (default: the model's max_position_embeddings); a longer
                         response is cut, an example whose prompt alone is longer is skipped (both counted)
  --lr X (default 3e-4) --min-lr-ratio R --warmup W --weight-decay D (default 0) --beta1 --beta2 --eps --clip C
  --eval-every N --eval-batches N --checkpoint-every N --log-every N --seed S --stop-after N
  --precision fp32|mixed --device auto|webgpu|cpu --checkpoint-activations
  --name NAME --runs-dir DIR --overwrite
  --resume NAME          continue the run RUNS_DIR/NAME exactly; only these may be given with it:
                         ${[...SFT_RESUME_OVERRIDABLE].map((k) => SFT_FLAG[k]).join(' ')}
The tuned model (adapters merged) is written to RUNS_DIR/NAME/final: a plain checkpoint that
step eval, step generate and step sft load.`;

const FLAG_KEY: ReadonlyMap<string, keyof SftOptions> = new Map((Object.entries(SFT_FLAG) as [keyof SftOptions, string][]).map(([k, f]) => [f, k]));

const SFT_SPEC: CommandSpec = {
  command: 'sft',
  usage: SFT_USAGE,
  flags: [
    ...[...FLAG_KEY].map(([name, key]) => ({
      name, takesValue: !SWITCHES.includes(key),
      ...(key in SFT_CHOICES ? { choices: SFT_CHOICES[key as keyof typeof SFT_CHOICES] } : {}),
    })),
    { name: '--resume', takesValue: true },
    { name: '--overwrite', takesValue: false },
  ],
};

function fail(message: string): never {
  throw new UsageError(`step sft: ${message}`);
}

/** Checks each of `keys` on its own: numbers in range, choices, names. */
export function checkSftValues(o: SftOptions, keys: Iterable<keyof SftOptions>): void {
  for (const k of keys) {
    if (k in SFT_NUMBER_RULES) {
      const rule = SFT_NUMBER_RULES[k as NumericKey], v = o[k as NumericKey];
      if (v === null && k === 'stopAfter') continue;
      if (typeof v !== 'number' || !fitsRule(v, rule)) fail(`${SFT_FLAG[k]} must be ${describeRule(rule)}, got ${String(v)}${rule.reason ? ` (${rule.reason})` : ''}`);
    } else if (k in SFT_CHOICES) {
      const valid = SFT_CHOICES[k as keyof typeof SFT_CHOICES] as readonly string[];
      if (!valid.includes(o[k] as string)) fail(`${SFT_FLAG[k]} must be one of ${valid.join(', ')}, got ${JSON.stringify(o[k])}`);
    } else if (k === 'name' && o.name !== '') {
      checkRunName(o.name, '--name');
    }
  }
}

/** Checks a new run's options: every value, the required flags, and flags that would have no effect. */
export function validateSftOptions(o: SftOptions, given: ReadonlySet<keyof SftOptions> = new Set()): SftOptions {
  checkSftValues(o, Object.keys(SFT_FLAG) as (keyof SftOptions)[]);
  if (!o.checkpoint) fail('--checkpoint DIR is required (the model to tune)');
  if (!o.data) fail('--data FILE is required (Alpaca records, .jsonl or .json)');
  const ignored = o.loraRank === 0 ? LORA_ONLY.filter((k) => given.has(k)) : [];
  if (ignored.length) fail(`${ignored.map((k) => SFT_FLAG[k]).join(', ')} only ${ignored.length > 1 ? 'apply' : 'applies'} to LoRA fine-tuning; add --lora-rank R, or leave ${ignored.length > 1 ? 'them' : 'it'} out`);
  if (given.has('steps') && given.has('epochs')) fail('--steps and --epochs both set the run\'s length; give one of them');
  if (o.steps > 0 && o.warmupSteps >= o.steps) fail(`--warmup (${o.warmupSteps}) must be below --steps (${o.steps})`);
  return o;
}

/** What parseSftArgs read: the options, the run to resume, --overwrite, the flags given, --help. */
export interface ParsedSftArgs {
  options: SftOptions;
  resume: string | null;
  overwrite: boolean;
  given: ReadonlySet<keyof SftOptions>;
  help: boolean;
}

/** Parses `step sft` arguments; every refusal is one line naming the flag. */
export function parseSftArgs(args: readonly string[]): ParsedSftArgs {
  const a = parseArgs(SFT_SPEC, args);
  const o: SftOptions = { ...DEFAULT_SFT_OPTIONS };
  const given = new Set<keyof SftOptions>();
  const resume = a.values.get('--resume')?.[0] ?? null;
  const overwrite = a.values.has('--overwrite');
  if (a.help) return { options: o, resume, overwrite, given, help: true };
  for (const [flag, values] of a.values) {
    if (flag === '--resume' || flag === '--overwrite') continue;
    const key = FLAG_KEY.get(flag)!;
    const raw = values[0]!;
    const value = SWITCHES.includes(key) ? true : key in SFT_NUMBER_RULES ? numberValue('sft', flag, raw, SFT_NUMBER_RULES[key as NumericKey]) : raw;
    (o as unknown as Record<string, unknown>)[key] = value;
    given.add(key);
  }
  if (resume === null) return { options: validateSftOptions(o, given), resume, overwrite, given, help: false };
  checkRunName(resume, '--resume');
  if (overwrite) fail('--overwrite and --resume contradict each other: --resume continues the run, --overwrite starts it afresh; give one');
  const refused = [...given].filter((k) => !SFT_RESUME_OVERRIDABLE.has(k));
  if (refused.length) {
    fail(`${refused.map((k) => SFT_FLAG[k]).join(', ')} cannot be given with --resume (the run keeps its saved settings); flags allowed with --resume: ${[...SFT_RESUME_OVERRIDABLE].map((k) => SFT_FLAG[k]).join(', ')}`);
  }
  checkSftValues(o, given);
  return { options: o, resume, overwrite, given, help: false };
}
