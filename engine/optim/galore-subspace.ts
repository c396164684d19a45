/**
 * GaLore's subspace: the top-r singular vectors of a gradient G [m, n] on its smaller side, by
 * seeded orthogonal (subspace) iteration on the device. Left side (m < n): Y = G Omega, then
 * `iterations` times Y = G (G^T Q); right side (m >= n): the same on G^T. Each Y is
 * orthonormalised by a Householder QR (kernels/galore.ts), so the columns converge in order to
 * the singular vectors (at rate (sigma_{i+1} / sigma_i)^2 per iteration) and stay orthonormal
 * when G has rank below r. Omega comes from a Philox stream keyed by the caller's seed, so both
 * backends draw the same numbers and a run repeats exactly.
 */
import { empty, randn } from '../creation.js';
import { StepError } from '../errors.js';
import { Generator } from '../random.js';
import { runKernel } from '../registry.js';
import type { Tensor } from '../tensor.js';
import { matmul } from '../../kernels/matmul.js';
import { householderQrKernel } from './galore-kernels.js';

export type ProjectionSide = 'left' | 'right';

/** GaLore's reference projects the smaller dimension: left (U_r, [m, r]) when m < n, else right (V_r, [n, r]). */
export function projectionSide(shape: readonly number[]): ProjectionSide {
  return shape[0]! < shape[1]! ? 'left' : 'right';
}

/** Orthonormal Q [s, r] with the span of Y [s, r] (Y is consumed). */
function orthonormalize(y: Tensor): Tensor {
  const [rows, cols] = y.shape as [number, number];
  const q = empty([rows, cols], { device: y.backend, label: 'galore.q' }, 'galore.subspace');
  try {
    runKernel(householderQrKernel, { inputs: {}, outputs: { a: y, q }, attrs: { rows, cols } });
  } finally {
    y.dispose();
  }
  return q;
}

export interface SubspaceOptions {
  rank: number;
  /** Power (orthogonal) iterations after the first product; each costs 2 matmuls and a QR. */
  iterations: number;
  /** Seeds the Philox stream of the random start (derive it from the parameter and the refresh). */
  seed: number;
}

/**
 * An orthonormal basis Q [min(m, n), r] (temporary) of the approximate top-r singular subspace of
 * f32 `g` [m, n] on its smaller side: left singular vectors when m < n, right ones otherwise.
 */
export function topSingularSubspace(g: Tensor, o: SubspaceOptions): Tensor {
  if (g.rank !== 2 || g.dtype !== 'f32') throw new StepError(`galore.subspace: needs an f32 matrix, got ${g.describe()}`);
  const [m, n] = g.shape as [number, number];
  if (!Number.isInteger(o.rank) || o.rank < 1 || o.rank > Math.min(m, n)) throw new StepError(`galore.subspace: rank ${o.rank} must be an integer in 1..${Math.min(m, n)} for ${g.describe()}`);
  const left = projectionSide(g.shape) === 'left';
  const generator = new Generator(o.seed);
  // left: G Omega with Omega [n, r]; right: G^T Omega with Omega [m, r].
  const omega = randn([left ? n : m, o.rank], { device: g.backend, generator, label: 'galore.omega' });
  let q: Tensor;
  try {
    q = orthonormalize(left ? matmul(g, omega, { label: 'galore.y' }) : matmul(g, omega, { transA: true, label: 'galore.y' }));
  } finally {
    omega.dispose();
  }
  for (let k = 0; k < o.iterations; k++) {
    const z = left ? matmul(g, q, { transA: true, label: 'galore.z' }) : matmul(g, q, { label: 'galore.z' });
    q.dispose();
    try {
      q = orthonormalize(left ? matmul(g, z, { label: 'galore.y' }) : matmul(g, z, { transA: true, label: 'galore.y' }));
    } finally {
      z.dispose();
    }
  }
  return q;
}
