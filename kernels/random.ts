import type { CpuBackend } from '../engine/cpu/backend.js';
import { f32ToF16Bits } from '../engine/dtype.js';
import { philox4x32, splitU64, TWO_POW_M24 } from '../engine/random.js';
import { randomKernel } from '../engine/creation-kernels.js';
import { registerKernel } from '../engine/registry.js';
import { enables, grid1D, LINEAR_INDEX, LINEAR_PARAMS, packUniforms, wgslType } from './wgsl.js';

/**
 * random: Philox4x32-10 draws, element i a pure function of (seed, offset, i); the stream layout
 * is documented in engine/random.ts. attrs: kind 'uniform' (a + (b - a) u) or 'normal' (a + b z).
 */
function randomSource(type: string, normal: boolean): string {
  return `${enables(type === 'f16' ? 'f16' : 'f32')}
struct U { n: u32, k0: u32, k1: u32, off_lo: u32, off_hi: u32, a: f32, b: f32 }
@group(0) @binding(0) var<storage, read_write> out: array<${type}>;
@group(0) @binding(1) var<uniform> u: U;

fn mulhi(a: u32, b: u32) -> u32 {
  let al = a & 0xffffu; let ah = a >> 16u; let bl = b & 0xffffu; let bh = b >> 16u;
  let ll = al * bl; let lh = al * bh; let hl = ah * bl; let hh = ah * bh;
  let mid = (ll >> 16u) + (lh & 0xffffu) + (hl & 0xffffu);
  return hh + (lh >> 16u) + (hl >> 16u) + (mid >> 16u);
}

// cos(2 pi x) for x in [0, 1): exact quarter-turn reduction first, because GPU cos loses
// accuracy (abs. error ~1e-5 on llvmpipe) for arguments far from zero.
fn cos_turns(x: f32) -> f32 {
  let q = round(4.0 * x);
  let theta = 6.283185307179586 * (x - 0.25 * q);
  let k = u32(q) & 3u;
  if (k == 0u) { return cos(theta); }
  if (k == 1u) { return -sin(theta); }
  if (k == 2u) { return -cos(theta); }
  return sin(theta);
}

// ln(x) for x in (0, 1]: a series in e = 1 - x (exact) near 1, where GPU log has only
// absolute accuracy (Vulkan allows 2^-21) and the tiny result would lose every digit.
fn ln_unit(x: f32) -> f32 {
  let e = 1.0 - x;
  if (e < 0.0625) {
    return -e * (1.0 + e * (0.5 + e * (0.33333334 + e * (0.25 + e * (0.2 + e * (0.16666667 + e * 0.14285715))))));
  }
  return log(x);
}

fn philox(block: u32) -> vec4u {
  var c0 = u.off_lo + block;
  var c1 = u.off_hi + select(0u, 1u, c0 < block);
  var c2 = 0u; var c3 = 0u;
  var k0 = u.k0; var k1 = u.k1;
  for (var r = 0u; r < 10u; r++) {
    let hi0 = mulhi(0xd2511f53u, c0); let lo0 = 0xd2511f53u * c0;
    let hi1 = mulhi(0xcd9e8d57u, c2); let lo1 = 0xcd9e8d57u * c2;
    c0 = hi1 ^ c1 ^ k0; c1 = lo1; c2 = hi0 ^ c3 ^ k1; c3 = lo0;
    k0 += 0x9e3779b9u; k1 += 0xbb67ae85u;
  }
  return vec4u(c0, c1, c2, c3);
}

@compute @workgroup_size(64) fn main(${LINEAR_PARAMS}) {
  ${LINEAR_INDEX}
  if (i >= u.n) { return; }
${normal ? `  let w = philox(i / 2u);
  let pair = select(w.xy, w.zw, (i & 1u) == 1u);
  let u1 = f32((pair.x >> 8u) + 1u) * ${TWO_POW_M24};
  let u2 = f32(pair.y >> 8u) * ${TWO_POW_M24};
  let z = sqrt(-2.0 * ln_unit(u1)) * cos_turns(u2);
  out[i] = ${type}(u.a + u.b * z);`
    : `  let w = philox(i / 4u);
  let x = f32(w[i & 3u] >> 8u) * ${TWO_POW_M24};
  out[i] = ${type}(u.a + (u.b - u.a) * x);`}
}`;
}

/** cos(2 pi x) with the same quarter-turn reduction as the WGSL (x - q/4 is exact). */
function cosTurns(x: number, f: (v: number) => number): number {
  const q = Math.round(4 * x); // x >= 0, so Math.round matches WGSL round() except at exact halves, where both reductions are exact
  const theta = f(f(2 * Math.PI) * (x - 0.25 * q));
  switch (q & 3) {
    case 0: return Math.cos(theta);
    case 1: return -Math.sin(theta);
    case 2: return -Math.cos(theta);
    default: return Math.sin(theta);
  }
}

registerKernel(randomKernel, {
  cpu(backend: CpuBackend, { outputs: { out }, attrs: { kind, seed, offset, a, b } }) {
    const s = out.storage;
    const normal = kind === 'normal';
    const [k0, k1] = splitU64(seed);
    const f = s.dtype === 'f64' ? (x: number) => x : Math.fround;
    const view = backend.view(s);
    const perBlock = normal ? 2 : 4;
    let words: number[] = [];
    for (let i = 0; i < s.size; i++) {
      if (i % perBlock === 0) {
        const [lo, hi] = splitU64(offset + i / perBlock);
        words = philox4x32(lo, hi, 0, 0, k0, k1);
      }
      let v: number;
      if (normal) {
        const j = (i % 2) * 2;
        const u1 = ((words[j]! >>> 8) + 1) * TWO_POW_M24;
        const u2 = (words[j + 1]! >>> 8) * TWO_POW_M24;
        const z = f(f(Math.sqrt(f(-2 * f(Math.log(u1))))) * f(cosTurns(u2, f))); // Math.log is accurate near 1
        v = f(f(a) + f(f(b) * z));
      } else {
        const x = (words[i % 4]! >>> 8) * TWO_POW_M24;
        v = f(f(a) + f(f(f(b) - f(a)) * x));
      }
      view[i] = s.dtype === 'f16' ? f32ToF16Bits(v) : v;
    }
  },
  webgpu(backend, { outputs: { out }, attrs: { kind, seed, offset, a, b } }) {
    const s = out.storage;
    const [k0, k1] = splitU64(seed);
    const [offLo, offHi] = splitU64(offset);
    backend.dispatch({
      label: `random ${kind}`,
      source: randomSource(wgslType(s.dtype), kind === 'normal'),
      buffers: [s],
      uniforms: packUniforms([['u32', s.size], ['u32', k0], ['u32', k1], ['u32', offLo], ['u32', offHi], ['f32', a], ['f32', b]]),
      workgroups: grid1D(s.size),
    });
  },
});
