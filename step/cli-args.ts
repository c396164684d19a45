/**
 * The one argument parser of every `step` subcommand: `--flag value` and `--flag=value`, boolean
 * flags, `--help`/`-h`, repeatable flags (`--set`), positionals where a command takes them. Errors
 * are one line naming the command and the argument, with a suggestion: the closest known flag for a
 * misspelt one, `--preset tiny` for a stray `tiny`. Values stay strings; `numberValue` converts.
 */
import { StepError } from '../engine/errors.js';

/** A command line that does not fit the command's flags (exit code 2, like other CLIs' usage errors). */
export class UsageError extends StepError {}

export interface FlagSpec {
  /** `--name` */
  name: string;
  /** false: a switch such as `--json` (`--json=x` is refused). */
  takesValue: boolean;
  /** Known values: a stray positional equal to one of them is suggested as `--name value`. */
  choices?: readonly string[];
  /** May be given more than once (each value kept, in order); otherwise a repeat is refused. */
  repeatable?: boolean;
}

export interface CommandSpec {
  /** `train`, `eval`, ...: names the command in every message. */
  command: string;
  usage: string;
  flags: readonly FlagSpec[];
  /** Positionals the command takes (e.g. `RUN` for `step report`); absent: none. */
  positionals?: string;
}

export interface ParsedArgs {
  /** `--help` or `-h` was given: print the usage on stdout and exit 0. */
  help: boolean;
  /** Every value of each flag given, in order (a switch has the value 'true'). */
  values: ReadonlyMap<string, readonly string[]>;
  positionals: readonly string[];
}

/** Helpers over a parse: the (single) value of a flag, whether it was given. */
export function flagValue(a: ParsedArgs, flag: string): string | undefined {
  return a.values.get(flag)?.at(-1);
}

export function hasFlag(a: ParsedArgs, flag: string): boolean {
  return a.values.has(flag);
}

/** Edit distance (insert, delete, substitute, swap of neighbours), for "did you mean". */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[a.length]![b.length]!;
}

/** The known flag closest to `flag` (a prefix counts as close), or null when none is near. */
export function closestFlag(flag: string, known: readonly string[]): string | null {
  const bare = flag.replace(/^-+/, '');
  let best: string | null = null, bestDistance = Infinity;
  for (const k of known) {
    const kb = k.replace(/^-+/, '');
    // a prefix either way (--pres for --preset, --output for --out) counts as one edit
    const dist = (kb.startsWith(bare) && bare.length >= 3) || (bare.startsWith(kb) && kb.length >= 3) ? 1 : editDistance(bare, kb);
    if (dist < bestDistance) { best = k; bestDistance = dist; }
  }
  return best !== null && bestDistance <= Math.max(2, Math.floor(bare.length / 3)) ? best : null;
}

function fail(spec: CommandSpec, message: string, withUsage: boolean): never {
  throw new UsageError(`step ${spec.command}: ${message}${withUsage ? `\n${spec.usage}` : ''}`);
}

/** A value such as `-1` or `-.5` (a negative number), not a flag. */
const isNumberLike = (s: string): boolean => s.trim() !== '' && Number.isFinite(Number(s));

/** Parses `args` against `spec`; throws UsageError on anything it does not know. */
export function parseArgs(spec: CommandSpec, args: readonly string[]): ParsedArgs {
  const byName = new Map(spec.flags.map((f) => [f.name, f]));
  const values = new Map<string, string[]>();
  const positionals: string[] = [];
  // --help wins over everything else on the line, mistakes included
  if (args.some((a) => a === '--help' || a === '-h')) return { help: true, values, positionals };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (!arg.startsWith('-') || arg === '-' || isNumberLike(arg)) {
      if (spec.positionals) { positionals.push(arg); continue; }
      const hint = spec.flags.find((f) => f.choices?.includes(arg));
      fail(spec, `unexpected argument ${JSON.stringify(arg)}${hint ? ` (did you mean ${hint.name} ${arg}?)` : ''}`, !hint);
    }
    const eq = arg.indexOf('=');
    const name = eq > 0 ? arg.slice(0, eq) : arg;
    const flag = byName.get(name);
    if (!flag) {
      const near = closestFlag(name, [...byName.keys()]);
      fail(spec, `unknown option ${name}${near ? ` (did you mean ${near}?)` : `; valid options: ${[...byName.keys()].join(', ')}`}`, !near);
    }
    let value: string;
    if (!flag.takesValue) {
      if (eq > 0) fail(spec, `${name} takes no value, got ${JSON.stringify(arg)}`, false);
      value = 'true';
    } else if (eq > 0) {
      value = arg.slice(eq + 1);
    } else {
      const next = args[i + 1];
      if (next === undefined || (next.startsWith('--') && next.length > 2) || next === '-h') fail(spec, `${name} needs a value`, true);
      value = next;
      i++;
    }
    if (flag.takesValue && value === '') fail(spec, `${name} needs a value, got an empty one`, true);
    const seen = values.get(name);
    if (seen && !flag.repeatable) fail(spec, `${name} given twice (${JSON.stringify(seen[0])} and ${JSON.stringify(value)}); give it once`, false);
    values.set(name, [...(seen ?? []), value]);
  }
  return { help: false, values, positionals };
}

export interface NumberRule {
  integer?: boolean;
  min?: number;
  /** The value must be above `min`, not equal to it. */
  minExclusive?: boolean;
  max?: number;
  maxExclusive?: boolean;
  /** Said after the range when the value is refused (e.g. why the maximum is what it is). */
  reason?: string;
}

/** The range a rule allows, in words: `an integer >= 1`, `a number in (0, 1)`. */
export function describeRule(r: NumberRule): string {
  const kind = r.integer ? 'an integer' : 'a number';
  if (r.min !== undefined && r.max !== undefined) {
    return `${kind} in ${r.minExclusive ? '(' : '['}${r.min}, ${r.max}${r.maxExclusive ? ')' : ']'}`;
  }
  if (r.min !== undefined) return `${kind} ${r.minExclusive ? '>' : '>='} ${r.min}`;
  if (r.max !== undefined) return `${kind} ${r.maxExclusive ? '<' : '<='} ${r.max}`;
  return kind;
}

/** Whether `n` satisfies the rule (finite, integer when asked, in range). */
export function fitsRule(n: number, r: NumberRule): boolean {
  if (!Number.isFinite(n) || (r.integer && !Number.isSafeInteger(n))) return false;
  if (r.min !== undefined && (r.minExclusive ? !(n > r.min) : !(n >= r.min))) return false;
  if (r.max !== undefined && (r.maxExclusive ? !(n < r.max) : !(n <= r.max))) return false;
  return true;
}

/** Converts a flag's text to a number within the rule; throws `step CMD: --flag must be ...`. */
export function numberValue(command: string, flag: string, raw: string, rule: NumberRule): number {
  const n = raw.trim() === '' ? NaN : Number(raw);
  if (!fitsRule(n, rule)) {
    throw new UsageError(`step ${command}: ${flag} must be ${describeRule(rule)}, got ${JSON.stringify(raw)}${rule.reason ? ` (${rule.reason})` : ''}`);
  }
  return n;
}

/** The flag's value as a number within the rule, or undefined when the flag was not given. */
export function numberFlag(command: string, a: ParsedArgs, flag: string, rule: NumberRule): number | undefined {
  const raw = flagValue(a, flag);
  return raw === undefined ? undefined : numberValue(command, flag, raw, rule);
}

/** The flag's value when it is one of `choices`, else undefined when absent; throws otherwise. */
export function choiceFlag<T extends string>(command: string, a: ParsedArgs, flag: string, choices: readonly T[]): T | undefined {
  const raw = flagValue(a, flag);
  if (raw === undefined) return undefined;
  if (!(choices as readonly string[]).includes(raw)) throw new UsageError(`step ${command}: ${flag} must be one of ${choices.join(', ')}, got ${JSON.stringify(raw)}`);
  return raw as T;
}

/** Builds flag specs from names: `value(['--out'])`, `switches(['--json'])`. */
export const valued = (names: readonly string[], choices: Record<string, readonly string[]> = {}): FlagSpec[] =>
  names.map((name) => ({ name, takesValue: true, ...(choices[name] ? { choices: choices[name] } : {}) }));
export const switches = (names: readonly string[]): FlagSpec[] => names.map((name) => ({ name, takesValue: false }));

const UNITS: Record<string, number> = { b: 1, kb: 1e3, mb: 1e6, gb: 1e9, tb: 1e12, kib: 2 ** 10, mib: 2 ** 20, gib: 2 ** 30, tib: 2 ** 40 };

/** `6GB`, `5.5GiB`, `512MB`, `123456` (bytes) -> bytes; throws naming the flag. */
export function parseSize(flag: string, text: string, command = 'memory'): number {
  const m = /^\s*(\d+(?:\.\d+)?(?:e\d+)?)\s*([a-z]*)\s*$/i.exec(text);
  const unit = m ? UNITS[(m[2] || 'b').toLowerCase()] : undefined;
  const bytes = m && unit !== undefined ? Math.floor(Number(m[1]) * unit) : NaN;
  if (!Number.isSafeInteger(bytes) || bytes < 1) {
    throw new UsageError(`step ${command}: ${flag} must be a positive size in bytes, optionally with a unit (B, kB, MB, GB, TB, KiB, MiB, GiB, TiB), got ${JSON.stringify(text)}`);
  }
  return bytes;
}
