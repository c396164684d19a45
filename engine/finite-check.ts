/**
 * Finds tensors holding NaN or Inf without copying them to the host: the optimizer's
 * `grad_sq_partials` kernel (sum of squares and count of non-finite elements per workgroup) runs
 * over every tensor into one shared buffer, which is read back once.
 */
import type { Backend } from './backend.js';
import { empty } from './creation.js';
import { StepError } from './errors.js';
import { runKernel } from './registry.js';
import type { Tensor } from './tensor.js';

/** A tensor with non-finite values and how many it holds. */
export interface NonFinite {
  name: string;
  count: number;
}

/** Workgroups per tensor: ~4096 elements each, at most 256 (as the optimizer's norm reduction). */
const groupsFor = (n: number) => Math.max(1, Math.min(256, Math.ceil(n / 4096)));

/**
 * The named floating-point tensors that hold NaN or Inf, in the given order (empty when all are
 * finite). All tensors must live on `device`; integer tensors are skipped.
 */
export async function findNonFinite(named: readonly (readonly [string, Tensor])[], device: Backend): Promise<NonFinite[]> {
  const floats = named.filter(([, t]) => t.dtype === 'f32' || t.dtype === 'f16' || t.dtype === 'f64');
  if (floats.length === 0) return [];
  for (const [name, t] of floats) {
    if (t.backend !== device) throw new StepError(`findNonFinite: ${name} is on ${t.backend.name}, not on ${device.name}`);
  }
  const groups = floats.map(([, t]) => groupsFor(t.size));
  const slots = groups.reduce((a, b) => a + b, 0);
  const partials = empty([2 * slots], { device, label: 'finite-check partials' }, 'findNonFinite');
  try {
    let base = 0;
    floats.forEach(([, t], k) => {
      runKernel('grad_sq_partials', { inputs: [t], outputs: [partials], attrs: { base, groups: groups[k] } });
      base += groups[k]!;
    });
    const values = await partials.toArray();
    const out: NonFinite[] = [];
    base = 0;
    floats.forEach(([name], k) => {
      let bad = 0;
      for (let j = base; j < base + groups[k]!; j++) bad += values[2 * j + 1]!;
      if (bad > 0) out.push({ name, count: bad });
      base += groups[k]!;
    });
    return out;
  } finally {
    partials.dispose();
  }
}

/** One line naming the first tensors with NaN/Inf, e.g. "lm_head.weight (3 non-finite values) and 2 more". */
export function describeNonFinite(bad: readonly NonFinite[]): string {
  const shown = bad.slice(0, 3).map((b) => `${b.name} (${b.count} non-finite value${b.count === 1 ? '' : 's'})`).join(', ');
  return bad.length > 3 ? `${shown} and ${bad.length - 3} more` : shown;
}
