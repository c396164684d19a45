/**
 * WGSL generators of the fused attention kernels (FlashAttention-2 forward, and its backward as a
 * dQ kernel over query tiles and a dK/dV kernel over key tiles: no atomics, deterministic).
 *
 * Layout: q [B, H, Tq, D], k and v [B, Hkv, Tk, D], or [B, T, heads, D] (the layout the
 * projections make: no permute copies), contiguous; a row (b, head, t) of D values starts at row
 * b * sB + head * sH + t * sT of its operand, the row strides in the uniforms (q, o, dO, dq share
 * q's; k, v, dk, dv share k's). lse and delta are [B, H, Tq] in either layout. Query head h reads
 * KV head h / (H / Hkv). Every lane owns one row (a query row, or a key row in dK/dV) and keeps it,
 * and its accumulators, in registers as ceil(D / 4) vec4s; the row is what the head dimension D
 * is specialised for (one pipeline per D: the loops over D and over a block are unrolled so that
 * every register and every broadcast lane is a constant). The other side is walked in blocks of
 * `block` rows:
 * - 'subgroup': the workgroup is one subgroup of `block` lanes; lane l loads row l of the block
 *   and the others read it with subgroupBroadcast (~3 instructions a value on llvmpipe, where a
 *   storage load costs ~10 per float and per lane: shared/notes/lavapipe-performance.md).
 * - 'plain': 64 lanes, blocks of one row that every lane loads itself (portable, no subgroups needed).
 * Causal tiles past the diagonal are never visited; masked pairs inside a diagonal tile get p = 0.
 * Everything is computed in f32, whatever the storage dtype; lse and delta are f32.
 */

export interface AttentionVariant {
  kind: 'subgroup' | 'plain';
  dtype: 'f32' | 'f16';
  /** Head dimension (compile-time). */
  D: number;
  /** Rows of the other side per block: the subgroup size, or 1 for 'plain'. */
  block: number;
  /** Lanes per workgroup (= rows owned per workgroup): the subgroup size, or 64 for 'plain'. */
  lanes: number;
}

/** Uniforms of all three kernels (packed by `attentionUniforms`). */
const UNIFORMS = `struct U { B: u32, H: u32, Hkv: u32, Tq: u32, Tk: u32, causal: u32, offset: u32, scale: f32, tiles: u32, q_sb: u32, q_sh: u32, q_st: u32, k_sb: u32, k_sh: u32, k_st: u32 }`;

const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);
const groups = (v: AttentionVariant): number[] => range(Math.ceil(v.D / 4));
const vec = (v: AttentionVariant): boolean => v.D % 4 === 0;

function header(v: AttentionVariant): string {
  return `${v.dtype === 'f16' ? 'enable f16;\n' : ''}${v.kind === 'subgroup' ? 'enable subgroups;\n' : ''}${UNIFORMS}
const D = ${v.D}u;
const LOWEST = -0x1.fffffep+127f;`;
}

/** A storage binding of a [.., D] operand (as vec4s when D % 4 == 0) and its row loader `ld_<name>(row, g)` -> vec4f. */
function operand(v: AttentionVariant, binding: number, name: string, access: 'read' | 'read_write'): string {
  const t = v.dtype;
  if (vec(v)) {
    return `@group(0) @binding(${binding}) var<storage, ${access}> ${name}: array<vec4<${t}>>;
fn ld_${name}(r: u32, g: u32) -> vec4f { return vec4f(${name}[r * ${v.D / 4}u + g]); }`;
  }
  // D not a multiple of 4: scalar loads, zero past D (g is a constant after inlining: the tests fold)
  const c = (k: number) => `select(0.0, f32(${name}[r * D + min(g * 4u + ${k}u, D - 1u)]), g * 4u + ${k}u < D)`;
  return `@group(0) @binding(${binding}) var<storage, ${access}> ${name}: array<${t}>;
fn ld_${name}(r: u32, g: u32) -> vec4f { return vec4f(${range(4).map(c).join(', ')}); }`;
}

/** Stores accumulators `${acc}${g}` * `mul` into row `r` of `name`. */
function storeRow(v: AttentionVariant, name: string, r: string, acc: string, mul: string): string {
  const t = v.dtype;
  if (vec(v)) return groups(v).map((g) => `    ${name}[${r} * ${v.D / 4}u + ${g}u] = vec4<${t}>(${acc}${g} * ${mul});`).join('\n');
  return range(v.D).map((d) => `    ${name}[${r} * D + ${d}u] = ${t}(${acc}${d >> 2}[${d & 3}] * ${mul});`).join('\n');
}

/** `let ${name}${l}_${g}` for every row l of the block: rows `base + (first + l) * stride` (first + l clamped to `last`) of operand `buf`. */
function blockRows(v: AttentionVariant, buf: string, name: string, base: string, first: string, last: string, stride: string): string {
  const L: string[] = [];
  if (v.kind === 'subgroup') {
    for (const g of groups(v)) L.push(`    let own_${name}${g} = ld_${buf}(${base} + min(${first} + lane, ${last}) * ${stride}, ${g}u);`);
    for (const l of range(v.block)) for (const g of groups(v)) L.push(`    let ${name}${l}_${g} = subgroupBroadcast(own_${name}${g}, ${l}u);`);
  } else {
    for (const l of range(v.block)) {
      L.push(`    let r_${name}${l} = ${base} + min(${first} + ${l}u, ${last}) * ${stride};`);
      for (const g of groups(v)) L.push(`    let ${name}${l}_${g} = ld_${buf}(r_${name}${l}, ${g}u);`);
    }
  }
  return L.join('\n');
}

/** `let ${name}${l}` for every row l of the block: one f32 per row from a [rows] array `buf`. */
function blockScalars(v: AttentionVariant, buf: string, name: string, base: string, first: string, last: string): string {
  if (v.kind === 'subgroup') {
    return [`    let own_${name} = ${buf}[${base} + min(${first} + lane, ${last})];`,
      ...range(v.block).map((l) => `    let ${name}${l} = subgroupBroadcast(own_${name}, ${l}u);`)].join('\n');
  }
  return range(v.block).map((l) => `    let ${name}${l} = ${buf}[${base} + min(${first} + ${l}u, ${last})];`).join('\n');
}

const dot = (v: AttentionVariant, a: (g: number) => string, b: (g: number) => string): string =>
  `(${groups(v).map((g) => `dot(${a(g)}, ${b(g)})`).join(' + ')})`;
const regs = (v: AttentionVariant, name: string, init: (g: number) => string): string =>
  groups(v).map((g) => `  var ${name}${g} = ${init(g)};`).join('\n');

/** Entry point prologue: workgroup `wg` -> (bh, tile); `heads` is B*H (or B*Hkv for dK/dV). */
function prologue(v: AttentionVariant, heads: string): string {
  return `@compute @workgroup_size(${v.lanes}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let wg = wid.y * nwg.x + wid.x;
  let tile = wg % u.tiles;
  let bh = wg / u.tiles;
  if (bh >= ${heads}) { return; }
  let lane = lid.x;`;
}

/**
 * Sets `row` (this lane's query row, clamped), `i0`, `qr` (its row in q, o, dO, dq), `lr` (its
 * index in lse and delta), `kvb` (the row of key 0 of its KV head; key j at kvb + j * k_st) and `kEnd`.
 */
function queryTile(v: AttentionVariant): string {
  return `  let b = bh / u.H;
  let kvb = b * u.k_sb + ((bh % u.H) / (u.H / u.Hkv)) * u.k_sh;
  let i0 = tile * ${v.lanes}u;
  let row = min(i0 + lane, u.Tq - 1u);
  let qr = b * u.q_sb + (bh % u.H) * u.q_sh + row * u.q_st;
  let lr = bh * u.Tq + row;
  // keys this lane sees: j < myEnd; the tile's last row sees j < kEnd (a bound shared by all lanes)
  var myEnd = u.Tk;
  var kEnd = u.Tk;
  if (u.causal != 0u) {
    myEnd = min(u.Tk, row + u.offset + 1u);
    kEnd = min(u.Tk, min(i0 + ${v.lanes}u, u.Tq) + u.offset);
  }`;
}

/** Forward: o = softmax(q k^T * scale) v per row with a running max and sum; lse = m + log(sum). */
export function attentionForwardSource(v: AttentionVariant): string {
  const B = v.block;
  const body: string[] = [];
  body.push(blockRows(v, 'k', 'kb', 'kvb', 'j0', 'u.Tk - 1u', 'u.k_st'));
  body.push(blockRows(v, 'v', 'vb', 'kvb', 'j0', 'u.Tk - 1u', 'u.k_st'));
  for (const l of range(B)) {
    body.push(`    let s${l} = select(LOWEST, ${dot(v, (g) => `q${g}`, (g) => `kb${l}_${g}`)}, j0 + ${l}u < myEnd);`);
  }
  body.push(`    let mn = max(m, max(${range(B).map((l) => `s${l}`).reduce((a, b) => `max(${a}, ${b})`)}, LOWEST));`);
  body.push('    let corr = exp(m - mn);');
  for (const l of range(B)) body.push(`    let p${l} = select(0.0, exp(s${l} - mn), j0 + ${l}u < myEnd);`);
  body.push(`    l = l * corr + ${range(B).map((l) => `p${l}`).join(' + ')};`);
  for (const g of groups(v)) body.push(`    o${g} = o${g} * corr + ${range(B).map((l) => `p${l} * vb${l}_${g}`).join(' + ')};`);
  body.push('    m = mn;');
  return `${header(v)}
${operand(v, 0, 'q', 'read')}
${operand(v, 1, 'k', 'read')}
${operand(v, 2, 'v', 'read')}
${operand(v, 3, 'o', 'read_write')}
@group(0) @binding(4) var<storage, read_write> lse: array<f32>;
@group(0) @binding(5) var<uniform> u: U;
${prologue(v, 'u.B * u.H')}
${queryTile(v)}
${regs(v, 'q', (g) => `ld_q(qr, ${g}u) * u.scale`)}
${regs(v, 'o', () => 'vec4f()')}
  var m = LOWEST;
  var l = 0.0;
  for (var j0 = 0u; j0 < kEnd; j0 += ${B}u) {
${body.join('\n')}
  }
  if (i0 + lane < u.Tq) {
    let inv = 1.0 / l;
${storeRow(v, 'o', 'qr', 'o', 'inv')}
    lse[lr] = m + log(l);
  }
}`;
}

/**
 * dQ over query tiles, and delta = rowsum(dO * O) (written for the dK/dV kernel):
 * p = exp(q.k * scale - lse), ds = p * (dO.v - delta), dq = scale * sum ds k.
 */
export function attentionDqSource(v: AttentionVariant): string {
  const B = v.block;
  const body: string[] = [];
  body.push(blockRows(v, 'k', 'kb', 'kvb', 'j0', 'u.Tk - 1u', 'u.k_st'));
  body.push(blockRows(v, 'v', 'vb', 'kvb', 'j0', 'u.Tk - 1u', 'u.k_st'));
  for (const l of range(B)) {
    body.push(`    let p${l} = select(0.0, exp(${dot(v, (g) => `q${g}`, (g) => `kb${l}_${g}`)} - L), j0 + ${l}u < myEnd);`);
    body.push(`    let ds${l} = p${l} * (${dot(v, (g) => `dO${g}`, (g) => `vb${l}_${g}`)} - delta);`);
  }
  for (const g of groups(v)) body.push(`    dq${g} += ${range(B).map((l) => `ds${l} * kb${l}_${g}`).join(' + ')};`);
  return `${header(v)}
${operand(v, 0, 'q', 'read')}
${operand(v, 1, 'k', 'read')}
${operand(v, 2, 'v', 'read')}
${operand(v, 3, 'o', 'read')}
@group(0) @binding(4) var<storage, read> lse: array<f32>;
${operand(v, 5, 'dout', 'read')}
${operand(v, 6, 'dq', 'read_write')}
@group(0) @binding(7) var<storage, read_write> deltas: array<f32>;
@group(0) @binding(8) var<uniform> u: U;
${prologue(v, 'u.B * u.H')}
${queryTile(v)}
${regs(v, 'q', (g) => `ld_q(qr, ${g}u) * u.scale`)}
${regs(v, 'dO', (g) => `ld_dout(qr, ${g}u)`)}
  let delta = ${dot(v, (g) => `dO${g}`, (g) => `ld_o(qr, ${g}u)`)};
  let L = lse[lr];
${regs(v, 'dq', () => 'vec4f()')}
  for (var j0 = 0u; j0 < kEnd; j0 += ${B}u) {
${body.join('\n')}
  }
  if (i0 + lane < u.Tq) {
${storeRow(v, 'dq', 'qr', 'dq', 'u.scale')}
    deltas[lr] = delta;
  }
}`;
}

/**
 * dK and dV over key tiles of one KV head, summed over the query heads of its group and over the
 * query rows that see the key: dv = sum p dO, dk = scale * sum p * (dO.v - delta) q.
 */
export function attentionDkvSource(v: AttentionVariant): string {
  const B = v.block;
  const body: string[] = [];
  body.push(blockRows(v, 'q', 'qb', 'qbase', 'i', 'u.Tq - 1u', 'u.q_st'));
  body.push(blockRows(v, 'dout', 'db', 'qbase', 'i', 'u.Tq - 1u', 'u.q_st'));
  body.push(blockScalars(v, 'lse', 'L', 'lbase', 'i', 'u.Tq - 1u'));
  body.push(blockScalars(v, 'deltas', 'dl', 'lbase', 'i', 'u.Tq - 1u'));
  for (const l of range(B)) {
    // query row i + l sees this lane's key when it exists and (causal) key <= row + offset
    body.push(`    let p${l} = select(0.0, exp(${dot(v, (g) => `qb${l}_${g}`, (g) => `k${g}`)} * u.scale - L${l}), i + ${l}u < u.Tq && (u.causal == 0u || key <= i + ${l}u + u.offset));`);
    body.push(`    let ds${l} = p${l} * (${dot(v, (g) => `db${l}_${g}`, (g) => `v${g}`)} - dl${l});`);
  }
  for (const g of groups(v)) {
    body.push(`    dv${g} += ${range(B).map((l) => `p${l} * db${l}_${g}`).join(' + ')};`);
    body.push(`    dk${g} += ${range(B).map((l) => `ds${l} * qb${l}_${g}`).join(' + ')};`);
  }
  return `${header(v)}
${operand(v, 0, 'q', 'read')}
${operand(v, 1, 'k', 'read')}
${operand(v, 2, 'v', 'read')}
${operand(v, 3, 'dout', 'read')}
@group(0) @binding(4) var<storage, read> lse: array<f32>;
@group(0) @binding(5) var<storage, read> deltas: array<f32>;
${operand(v, 6, 'dk', 'read_write')}
${operand(v, 7, 'dv', 'read_write')}
@group(0) @binding(8) var<uniform> u: U;
${prologue(v, 'u.B * u.Hkv')}
  let j0 = tile * ${v.lanes}u;
  let key = j0 + lane;
  let G = u.H / u.Hkv;
  let b = bh / u.Hkv;
  let kr = b * u.k_sb + (bh % u.Hkv) * u.k_sh + min(key, u.Tk - 1u) * u.k_st;
  // the first query row that sees key j0 (causal), the same for all lanes
  var iStart = 0u;
  if (u.causal != 0u) { iStart = u32(max(0, i32(j0) - i32(u.offset))); }
${regs(v, 'k', (g) => `ld_k(kr, ${g}u)`)}
${regs(v, 'v', (g) => `ld_v(kr, ${g}u)`)}
${regs(v, 'dk', () => 'vec4f()')}
${regs(v, 'dv', () => 'vec4f()')}
  for (var hh = 0u; hh < G; hh++) {
    let qh = (bh % u.Hkv) * G + hh;
    let qbase = b * u.q_sb + qh * u.q_sh;
    let lbase = (b * u.H + qh) * u.Tq;
    for (var i = iStart; i < u.Tq; i += ${B}u) {
${body.join('\n')}
    }
  }
  if (key < u.Tk) {
${storeRow(v, 'dk', 'kr', 'dk', 'u.scale')}
${storeRow(v, 'dv', 'kr', 'dv', '1.0')}
  }
}`;
}

/** Row strides (in rows of D elements) of one operand: row (b, head, t) is b * sB + head * sH + t * sT. */
export type RowStrides = readonly [sB: number, sH: number, sT: number];

export interface AttentionShape {
  B: number; H: number; Hkv: number; Tq: number; Tk: number; causal: boolean; offset: number; scale: number;
  /** Row strides of q (and o, dO, dq), and of k (and v, dk, dv). */
  qRows: RowStrides; kRows: RowStrides;
}

/** The uniform block for `tiles` tiles per head. */
export function attentionUniforms(a: AttentionShape, tiles: number): Uint32Array {
  const out = new Uint32Array(16);
  const f = new Float32Array(out.buffer);
  out.set([a.B, a.H, a.Hkv, a.Tq, a.Tk, a.causal ? 1 : 0, a.offset]);
  f[7] = a.scale;
  out[8] = tiles;
  out.set([...a.qRows, ...a.kRows], 9);
  return out;
}
