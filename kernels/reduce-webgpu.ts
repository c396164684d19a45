import type { Storage } from '../engine/backend.js';
import type { WebGPUBackend } from '../engine/webgpu/backend.js';
import type { WalkDim } from './layout-strides.js';
import { simplifyWalk, walkFields } from './layout-strides.js';
import type { PassMode, ReduceKind } from './reduce-wgsl.js';
import { cols4Source, rows4Source, scalarSource } from './reduce-wgsl.js';
import { grid1D, packUniforms, wgslType } from './wgsl.js';

export type { ReduceKind } from './reduce-wgsl.js';

/**
 * A reduction as a walk: output element o is the `kind`-combination over r < inner of
 * src[kept(o) + red(r)], where kept and red are simplified walks (innermost first, one stride).
 */
export interface ReducePlan {
  kept: WalkDim[];
  red: WalkDim[];
  outer: number;
  inner: number;
}

/**
 * Splitting: a pass gives each output `chunks` invocations so that about TARGET_INVOCATIONS run
 * at once, each combining at least MIN_CHUNK elements (fewer only when the whole row is shorter).
 * The chunking depends on the shape alone, so results are the same bits from run to run.
 */
const TARGET_INVOCATIONS = 8192;
const MIN_CHUNK = 128;

export function chunking(outer: number, inner: number): { chunks: number; chunk: number } {
  if (inner <= MIN_CHUNK) return { chunks: 1, chunk: inner };
  const want = Math.max(1, Math.min(Math.ceil(TARGET_INVOCATIONS / Math.max(outer, 1)), Math.ceil(inner / MIN_CHUNK)));
  const chunk = Math.ceil(inner / want);
  return { chunks: Math.ceil(inner / chunk), chunk };
}

const F32_NEG_INF_BITS = 0xff800000;
const I32_MIN_BITS = 0x80000000;

/** How one pass runs: its mode, its chunking, and whether its partials are [chunks, outer]. */
export interface Pass {
  mode: PassMode;
  chunks: number;
  chunk: number;
  oFast: boolean;
}

/** Picks the fastest mode that fits the walk (see PassMode) and its chunking. */
export function planPass(plan: ReducePlan, srcSize: number): Pass {
  const { kept, red, outer, inner } = plan;
  if (srcSize >= 4 && red.length === 1 && red[0]!.strides[0] === 1 && inner >= 8 && (outer === 1 || inner % 4 === 0)) {
    const c = chunking(outer, inner);
    const chunk = Math.ceil(c.chunk / 4) * 4;
    return { mode: 'rows4', chunks: Math.ceil(inner / chunk), chunk, oFast: false };
  }
  if (srcSize >= 4 && red.length > 0 && kept.length > 0 && kept[0]!.strides[0] === 1 && kept[0]!.size % 4 === 0) {
    return { mode: 'cols4', ...chunking(outer / 4, inner), oFast: true };
  }
  const oFast = kept.length > 0 && red.length > 0 && kept[0]!.strides[0]! < red[0]!.strides[0]!;
  return { mode: 'scalar', ...chunking(outer, inner), oFast };
}

const SOURCES: Record<PassMode, (kind: ReduceKind, inT: string, outT: string) => string> = {
  scalar: scalarSource, rows4: rows4Source, cols4: cols4Source,
};

/** Records one pass of `plan` from `src` into `dst` at element `outOffset`. */
export function dispatchPass(
  backend: WebGPUBackend, kind: ReduceKind, src: Storage, dst: Storage, plan: ReducePlan, pass: Pass, outOffset: number, scale: number,
): void {
  const init = kind !== 'max' ? 0 : src.dtype === 'i32' ? I32_MIN_BITS : F32_NEG_INF_BITS;
  const { mode, chunks, chunk, oFast } = pass;
  const groups = mode === 'cols4' ? plan.outer / 4 : plan.outer;
  backend.dispatch({
    label: `reduce ${kind} ${mode}`,
    source: SOURCES[mode](kind, wgslType(src.dtype), wgslType(dst.dtype)),
    buffers: mode === 'rows4' ? [src, src, dst] : [src, dst],
    uniforms: packUniforms([
      ['u32', groups * chunks], ['u32', chunks], ['u32', chunk], ['u32', plan.inner], ['u32', plan.kept.length],
      ['u32', plan.red.length], ['u32', outOffset], ['f32', scale], ['u32', init], ['u32', plan.outer], ['u32', oFast ? 1 : 0], ['u32', groups],
      ...walkFields(plan.kept, [0]), ...walkFields(plan.red, [0]),
    ]),
    workgroups: grid1D(groups * chunks),
  });
}

/** The plan that reduces the partials of a pass: [outer, chunks], or [chunks, outer] when output-fastest. */
export function partialsPlan(outer: number, chunks: number, oFast = false): ReducePlan {
  return {
    kept: simplifyWalk([{ size: outer, strides: [oFast ? 1 : chunks] }]),
    red: simplifyWalk([{ size: chunks, strides: [oFast ? outer : 1] }]),
    outer,
    inner: chunks,
  };
}

/**
 * Reduces `src` into `dst` in as many passes as the chunking needs. Partials are f32 (i32 for
 * i32 inputs) scratch buffers of this backend, counted as `staging` like its other private
 * buffers (so tensor bytes stay equal across backends), and freed as soon as the next pass is
 * recorded: queue order keeps any reuse of their buffers after these dispatches.
 * `scale` multiplies the final float result.
 */
export function reduceOnDevice(backend: WebGPUBackend, kind: ReduceKind, src: Storage, dst: Storage, plan: ReducePlan, scale: number, dstOffset = 0): void {
  let from = src, p = plan, k = kind;
  const scratch: Storage[] = [];
  try {
    for (;;) {
      const pass = planPass(p, from.size);
      const last = pass.chunks === 1;
      const to = last ? dst : backend.allocate(src.dtype === 'i32' ? 'i32' : 'f32', p.outer * pass.chunks, 'staging', `reduce ${kind} partials`);
      if (!last) scratch.push(to);
      dispatchPass(backend, k, from, to, p, pass, last ? dstOffset : 0, last ? scale : 1);
      if (scratch.length > 1) backend.free(scratch.shift()!);
      if (last) return;
      from = to;
      p = partialsPlan(p.outer, pass.chunks, pass.oFast);
      k = kind === 'max' ? 'max' : 'sum';
    }
  } finally {
    for (const s of scratch) backend.free(s);
  }
}
