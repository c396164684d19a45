/**
 * llvmpipe's SIMD width, chosen before the Vulkan driver loads.
 *
 * Mesa's software driver (lavapipe/llvmpipe) runs each workgroup in vectors of
 * `LP_NATIVE_VECTOR_WIDTH` bits (256 by default); its subgroup size is that width / 32. On a CPU
 * with AVX-512 the matmul kernels run ~1.5x faster at 512 bits (subgroup 16), measured in
 * shared/notes/lavapipe-performance.md. The driver reads the variable once, when it loads, so it
 * must be in `process.env` before the first Dawn instance of the process exists; later changes
 * have no effect. Mesa's disk shader cache key ignores the width (a warm cache of another width
 * gave wrong results and a hang), so a width we choose gets its own `MESA_SHADER_CACHE_DIR`.
 *
 * Only Mesa's llvmpipe reads `LP_NATIVE_VECTOR_WIDTH`; on a real GPU the variable is inert (the
 * cache directory then merely moves that driver's shader cache).
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { StepError } from '../errors.js';

/** 'default' leaves Mesa's own width (256 bits); a number asks for that many bits. */
export type VectorWidthChoice = 'default' | 128 | 256 | 512;

/** What the device init did about the width, for `step info` and benchmarks. */
export interface VectorWidthDecision {
  /** The width in effect for llvmpipe (bits), or null when Mesa's default applies. */
  width: number | null;
  /** Why: set by us, by the user's LP_NATIVE_VECTOR_WIDTH, opted out, or no AVX-512 on this CPU. */
  reason: 'step' | 'user' | 'opt-out' | 'no-avx512';
  /** The shader cache directory we set, if any. */
  cacheDir?: string;
}

const CHOICES = ['default', '128', '256', '512'];

/** Parses `STEP_LP_VECTOR_WIDTH` or the `lpVectorWidth` option. */
export function parseVectorWidth(value: string | number | undefined, from: string): VectorWidthChoice | undefined {
  if (value === undefined || value === '') return undefined;
  const s = String(value).toLowerCase();
  if (!CHOICES.includes(s)) throw new StepError(`${from}: unknown llvmpipe vector width ${JSON.stringify(value)}; valid: ${CHOICES.join(', ')}`);
  return s === 'default' ? 'default' : (Number(s) as 128 | 256 | 512);
}

/** True when /proc/cpuinfo lists AVX-512F (false where it cannot be read: not Linux x86). */
export function cpuHasAvx512(cpuinfo?: string): boolean {
  try {
    return /^flags\s*:.*\bavx512f\b/m.test(cpuinfo ?? readFileSync('/proc/cpuinfo', 'utf8'));
  } catch {
    return false;
  }
}

/** The XDG default for XDG_CACHE_HOME, under the home folder. */
const DEFAULT_CACHE_HOME = '.cache';

/** Where a width's shader cache lives: under XDG_CACHE_HOME (or ~/.cache), one folder per width. */
export function cacheDirFor(width: number, env: NodeJS.ProcessEnv): string {
  return join(env.XDG_CACHE_HOME || join(homedir(), DEFAULT_CACHE_HOME), 'step-webgpu', `mesa-lp${width}`);
}

/**
 * The environment changes for one process, as a pure function (tested): `choice` comes from the
 * option, else STEP_LP_VECTOR_WIDTH, else 512 when the CPU has AVX-512.
 */
export function planVectorWidth(env: NodeJS.ProcessEnv, choice: VectorWidthChoice | undefined, avx512: boolean):
  { decision: VectorWidthDecision; set: Record<string, string> } {
  const user = env.LP_NATIVE_VECTOR_WIDTH;
  if (user) return { decision: { width: Number(user), reason: 'user' }, set: {} };
  const wanted = choice ?? parseVectorWidth(env.STEP_LP_VECTOR_WIDTH, 'STEP_LP_VECTOR_WIDTH') ?? (avx512 ? 512 : 'default');
  if (wanted === 'default') return { decision: { width: null, reason: avx512 ? 'opt-out' : 'no-avx512' }, set: {} };
  const set: Record<string, string> = { LP_NATIVE_VECTOR_WIDTH: String(wanted) };
  if (!env.MESA_SHADER_CACHE_DIR) set.MESA_SHADER_CACHE_DIR = cacheDirFor(wanted, env);
  return { decision: { width: wanted, reason: 'step', cacheDir: set.MESA_SHADER_CACHE_DIR }, set };
}

let decided: VectorWidthDecision | null = null;

/**
 * Applies the width for this process before its first Dawn instance is created; later calls
 * change nothing and return the first decision (the driver has loaded by then). A Dawn instance
 * created outside this library before that is not seen: the width then stays whatever it loaded with.
 */
export function applyVectorWidth(choice: VectorWidthChoice | undefined): VectorWidthDecision {
  if (decided) return decided;
  const { decision, set } = planVectorWidth(process.env, choice, cpuHasAvx512());
  if (set.MESA_SHADER_CACHE_DIR) {
    try {
      mkdirSync(set.MESA_SHADER_CACHE_DIR, { recursive: true });
    } catch {
      // An unwritable cache folder: Mesa then runs without a disk cache, still correct.
    }
  }
  Object.assign(process.env, set);
  decided = decision;
  return decision;
}

/** The decision of this process, or null before the first WebGPU instance. */
export function vectorWidthDecision(): VectorWidthDecision | null {
  return decided;
}
