/**
 * Signatures of the kernels the engine's tensor creation calls; kernels/ registers their
 * implementations (the engine knows the kernels only by these definitions).
 */
import { defineKernel } from './registry.js';

/** Every element of `out` = value (i32 truncates toward zero). */
export const fillKernel = defineKernel<{ value: number }>()('fill', { inputs: [], outputs: ['out'] });

/** out[i] = start + i * step. */
export const arangeKernel = defineKernel<{ start: number; step: number }>()('arange', { inputs: [], outputs: ['out'] });

/** dst = src converted to dst's dtype (float -> i32 truncates). */
export const copyKernel = defineKernel()('copy', { inputs: ['src'], outputs: ['dst'] });

export interface RandomAttrs {
  /** 'uniform': a + (b - a) u; 'normal': a + b z. */
  kind: 'uniform' | 'normal';
  seed: number;
  /** First Philox block of the draw (see random.ts). */
  offset: number;
  a: number;
  b: number;
}

/** Philox draws into `out` (see kernels/random.ts). */
export const randomKernel = defineKernel<RandomAttrs>()('random', { inputs: [], outputs: ['out'] });
