import type { DType } from '../engine/dtype.js';
import { DTypeError } from '../engine/errors.js';

/** Threads per workgroup of the 1-D elementwise kernels (a multiple of every subgroup size). */
export const WG_1D = 64;

/** The WGSL type that stores `dtype`. */
export function wgslType(dtype: DType): string {
  switch (dtype) {
    case 'f32': return 'f32';
    case 'f16': return 'f16';
    case 'i32': return 'i32';
    case 'f64': throw new DTypeError('f64 has no WGSL type; use the cpu backend');
  }
}

/** `enable f16;` when any of the dtypes is f16. */
export function enables(...dtypes: DType[]): string {
  return dtypes.includes('f16') ? 'enable f16;\n' : '';
}

/** Workgroup grid for `n` threads of `wg` each, folded into y past 65535 groups in x. */
export function grid1D(n: number, wg = WG_1D): [number, number] {
  const groups = Math.ceil(n / wg);
  if (groups <= 65535) return [groups, 1];
  return [65535, Math.ceil(groups / 65535)];
}

/**
 * Items (vec4s or scalars) each thread of the elementwise kernels maps, strided by the thread
 * count so neighbouring lanes stay on neighbouring items; amortises per-workgroup cost on llvmpipe.
 */
export const PER_THREAD = 4;

/** WGSL that sets `i` to this thread's linear index in a `grid1D` dispatch. */
export const LINEAR_INDEX = `let i = (wid.y * nwg.x + wid.x) * ${WG_1D}u + lid.x;`;

/** The builtins `LINEAR_INDEX` needs, as entry-point parameters. */
export const LINEAR_PARAMS = '@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u';

/** Packs scalar uniforms (each 4 bytes, in order) for a WGSL struct of u32/i32/f32 fields. */
export function packUniforms(fields: readonly (readonly ['u32' | 'i32' | 'f32', number])[]): Uint32Array {
  const out = new Uint32Array(Math.max(4, Math.ceil(fields.length / 4) * 4));
  const f = new Float32Array(out.buffer);
  const s = new Int32Array(out.buffer);
  fields.forEach(([type, v], k) => {
    if (type === 'f32') f[k] = v;
    else if (type === 'i32') s[k] = v;
    else out[k] = v >>> 0;
  });
  return out;
}

/**
 * A WGSL generator that builds each distinct source once. Kernels generate their source per call;
 * for the unrolled matmul and attention kernels that is 30-60 KB of text (~0.2 ms of JS per
 * product, measured), and the pipeline cache then hashes the new string again. The cached string
 * is the same object on every call, so the pipeline lookup reuses its hash. Arguments are
 * compile-time choices (small plain values): the key is their JSON.
 */
export function cachedSource<A extends unknown[]>(generate: (...args: A) => string): (...args: A) => string {
  const sources = new Map<string, string>();
  return (...args: A): string => {
    const key = JSON.stringify(args);
    let source = sources.get(key);
    if (source === undefined) {
      if (sources.size >= 4096) sources.clear(); // variants are few; a bound in case a caller varies one per shape
      source = generate(...args);
      sources.set(key, source);
    }
    return source;
  };
}
