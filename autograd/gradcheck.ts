import type { Backend } from '../engine/backend.js';
import { CpuBackend } from '../engine/cpu/backend.js';
import { fromArray } from '../engine/creation.js';
import { philox4x32, splitU64 } from '../engine/random.js';
import { scope } from '../engine/scope.js';
import type { Tensor } from '../engine/tensor.js';
import { StepError } from '../engine/errors.js';
import { grad } from './backward.js';
import { noGrad } from './grad-mode.js';

export interface GradcheckInput {
  values: ArrayLike<number>;
  shape: readonly number[];
  /** Inputs with requiresGrad false are held fixed (e.g. integer ids or masks). */
  requiresGrad?: boolean;
  dtype?: 'f64' | 'i32';
}

export interface GradcheckOptions {
  /** Finite-difference step (default 1e-6). */
  eps?: number;
  /** Pass when |analytic - numeric| <= atol + rtol * |numeric| everywhere (defaults 1e-6, 1e-4). */
  atol?: number;
  rtol?: number;
  /** Seed of the random output weighting used for non-scalar outputs. */
  seed?: number;
}

export interface GradcheckResult {
  ok: boolean;
  /** Largest |analytic - numeric| and largest error relative to the tolerance, with where. */
  maxAbsError: number;
  maxRelError: number;
  worst: { input: number; index: number; analytic: number; numeric: number } | null;
  /** The analytic and numeric gradients, input by input (null for fixed inputs). */
  analytic: (Float64Array | null)[];
  numeric: (Float64Array | null)[];
}

/** Deterministic weights in [-1, 1) from Philox, so a non-scalar output reduces to one number. */
function weights(n: number, seed: number): Float64Array {
  const w = new Float64Array(n);
  const [k0, k1] = splitU64(seed);
  for (let i = 0; i < n; i++) {
    const [lo, hi] = splitU64(Math.floor(i / 4));
    w[i] = (philox4x32(lo, hi, 0, 0, k0, k1)[i % 4]! / 2 ** 32) * 2 - 1;
  }
  return w;
}

/**
 * Compares autograd's gradient of `fn` with central finite differences, in f64 on the cpu
 * backend. A non-scalar output y is reduced to sum(y * w) with fixed random weights w (the
 * analytic side runs backward with grad = w). Reports the worst absolute and relative errors
 * and where they occur.
 */
export async function gradcheck(fn: (...xs: Tensor[]) => Tensor, inputs: readonly GradcheckInput[], options: GradcheckOptions = {}): Promise<GradcheckResult> {
  const eps = options.eps ?? 1e-6, atol = options.atol ?? 1e-6, rtol = options.rtol ?? 1e-4;
  const device: Backend = new CpuBackend();
  const make = (k: number, values: ArrayLike<number>) => {
    const spec = inputs[k]!;
    const t = fromArray(values, spec.shape, { dtype: spec.dtype ?? 'f64', device });
    t.requiresGrad = (spec.requiresGrad ?? true) && (spec.dtype ?? 'f64') === 'f64';
    return t;
  };
  const base = inputs.map((s) => Float64Array.from(s.values as ArrayLike<number>));
  // analytic gradients
  const { analytic, w } = await scope(async () => {
    const xs = base.map((v, k) => make(k, v));
    const y = fn(...xs);
    if (y.dtype !== 'f64') throw new StepError(`gradcheck: the function returned ${y.dtype}; it must compute in f64 on the cpu backend`);
    const weight = weights(y.size, options.seed ?? 1);
    const wanted = xs.filter((x) => x.requiresGrad);
    if (wanted.length === 0) throw new StepError('gradcheck: no input requires grad');
    const gs = grad(y, wanted, { grad: fromArray(weight, y.shape, { dtype: 'f64', device }) });
    const arrays = await Promise.all(gs.map((g) => g.toArray()));
    let j = 0;
    return { analytic: xs.map((x) => (x.requiresGrad ? Float64Array.from(arrays[j++]!) : null)), w: weight };
  });
  // numeric gradients: central differences of sum(fn(x) * w)
  const evaluate = (vals: Float64Array[]) => scope(async () => noGrad(async () => {
    const y = fn(...vals.map((v, k) => make(k, v)));
    const out = await y.toArray();
    let s = 0;
    for (let i = 0; i < out.length; i++) s += out[i]! * w[i]!;
    return s;
  }));
  const numeric: (Float64Array | null)[] = [];
  let maxAbs = 0, maxRel = 0;
  let worst: GradcheckResult['worst'] = null;
  for (let k = 0; k < base.length; k++) {
    if (!analytic[k]) { numeric.push(null); continue; }
    const num = new Float64Array(base[k]!.length);
    for (let i = 0; i < num.length; i++) {
      const orig = base[k]![i]!;
      base[k]![i] = orig + eps;
      const plus = await evaluate(base);
      base[k]![i] = orig - eps;
      const minus = await evaluate(base);
      base[k]![i] = orig;
      num[i] = (plus - minus) / (2 * eps);
      const a = analytic[k]![i]!;
      const err = Math.abs(a - num[i]!);
      const rel = err / (atol + rtol * Math.abs(num[i]!));
      maxAbs = Math.max(maxAbs, err);
      if (rel > maxRel || Number.isNaN(rel)) {
        maxRel = Number.isNaN(rel) ? Infinity : rel;
        worst = { input: k, index: i, analytic: a, numeric: num[i]! };
      }
    }
    numeric.push(num);
  }
  return { ok: maxRel <= 1, maxAbsError: maxAbs, maxRelError: maxRel, worst, analytic, numeric };
}
