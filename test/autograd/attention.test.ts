import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { Backend, Tensor } from '../../index.js';
import { fromArray, resetPeak, scope, ShapeError } from '../../index.js';
import * as A from '../../autograd/index.js';
import { attentionComposed } from '../../autograd/ops/attention-composed.js';
import { setAttentionKernel } from '../../kernels/attention.js';
import { assertClose, testBothBackends } from '../helpers/backends.js';

const F32 = 4;
const wave = (n: number, seed: number) => Array.from({ length: n }, (_, i) => Math.sin(seed * 12.9898 + i * 78.233) * 0.9);
const count = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

/** HF repeat_kv: [B, Hkv, T, D] -> [B, Hkv * rep, T, D], query head h reading KV head floor(h / rep). */
function repeatKv(x: Tensor, rep: number): Tensor {
  if (rep === 1) return x;
  const [b, hkv, t, d] = x.shape as [number, number, number, number];
  const flat = A.reshape(x, [b, hkv, 1, t * d]);
  return A.reshape(A.concat(new Array<Tensor>(rep).fill(flat), 2), [b, hkv * rep, t, d]);
}

/** The unfused path LlamaModel used before attention(): matmul, scale, causal softmax, matmul. */
function unfused(q: Tensor, k: Tensor, v: Tensor, causal: boolean, offset: number): Tensor {
  const rep = q.shape[1]! / k.shape[1]!;
  const scores = A.mul(A.matmul(q, repeatKv(k, rep), { transB: true }), 1 / Math.sqrt(q.shape[3]!));
  return A.matmul(A.softmax(scores, causal ? { causal, positionOffset: offset } : {}), repeatKv(v, rep));
}

interface Case { B: number; Hkv: number; G: number; Tq: number; Tk: number; D: number; causal: boolean; offset: number; chunk: number }

/** Output and the gradients of sum(out * w) for q, k, v, by one attention implementation. */
async function run(device: Backend, c: Case, impl: (q: Tensor, k: Tensor, v: Tensor) => Tensor): Promise<number[][]> {
  const qShape = [c.B, c.G * c.Hkv, c.Tq, c.D], kvShape = [c.B, c.Hkv, c.Tk, c.D];
  return scope(async () => {
    const leaf = (shape: number[], seed: number) => {
      const t = fromArray(wave(count(shape), seed), shape, { device });
      t.requiresGrad = true;
      return t;
    };
    const q = leaf(qShape, 1), k = leaf(kvShape, 2), v = leaf(kvShape, 3);
    const w = fromArray(wave(count(qShape), 4), qShape, { device });
    const out = impl(q, k, v);
    A.backward(A.sum(A.mul(out, w)));
    return Promise.all([out, q.grad!, k.grad!, v.grad!].map(async (t) => Array.from(await t.toArray())));
  });
}

const caseArb = fc.record({
  B: fc.integer({ min: 1, max: 2 }), Hkv: fc.integer({ min: 1, max: 2 }), G: fc.constantFrom(1, 2),
  Tq: fc.integer({ min: 1, max: 7 }), extraKeys: fc.integer({ min: 0, max: 3 }), D: fc.integer({ min: 1, max: 4 }),
  causal: fc.boolean(), chunk: fc.integer({ min: 1, max: 8 }),
}).map(({ extraKeys, ...r }): Case => ({ ...r, Tk: r.Tq + extraKeys, offset: r.causal ? extraKeys : 0 }));

testBothBackends('attention: values and gradients equal the composed and the naive paths (GQA, T = 1, KV-cache offsets, unmasked)', async (device) => {
  const fixed: Case[] = [
    { B: 1, Hkv: 2, G: 2, Tq: 7, Tk: 7, D: 4, causal: true, offset: 0, chunk: 3 }, // GQA
    { B: 2, Hkv: 1, G: 2, Tq: 1, Tk: 1, D: 2, causal: true, offset: 0, chunk: 4 }, // T = 1
  ];
  const check = async (c: Case) => {
    const got = await run(device, c, (q, k, v) => A.attention(q, k, v, { causal: c.causal, positionOffset: c.offset }));
    const naive = await run(device, c, (q, k, v) => unfused(q, k, v, c.causal, c.offset));
    const composed = await run(device, c, (q, k, v) => attentionComposed(q, k, v, { causal: c.causal, positionOffset: c.offset, chunkRows: c.chunk }));
    ['out', 'dq', 'dk', 'dv'].forEach((name, i) => {
      assertClose(got[i]!, naive[i]!, 1e-4, 1e-5, `${JSON.stringify(c)} ${name} vs naive`);
      assertClose(got[i]!, composed[i]!, 1e-4, 1e-5, `${JSON.stringify(c)} ${name} vs composed`);
    });
  };
  for (const c of fixed) await check(c);
  await fc.assert(fc.asyncProperty(caseArb, check), { numRuns: device.name === 'cpu' ? 60 : 15, seed: 7 });
});

/** Training-like shapes: tiles that do not divide T, T = 1, every usual head size, GQA 4:1 and 2:1, batch 2. */
const SHAPES: Case[] = [
  { B: 2, Hkv: 1, G: 4, Tq: 37, Tk: 37, D: 8, causal: true, offset: 0, chunk: 64 },
  { B: 1, Hkv: 2, G: 2, Tq: 21, Tk: 21, D: 16, causal: true, offset: 0, chunk: 64 },
  { B: 2, Hkv: 2, G: 1, Tq: 1, Tk: 1, D: 32, causal: true, offset: 0, chunk: 64 },
  { B: 1, Hkv: 1, G: 4, Tq: 19, Tk: 19, D: 64, causal: true, offset: 0, chunk: 64 },
  { B: 1, Hkv: 2, G: 2, Tq: 11, Tk: 13, D: 128, causal: true, offset: 2, chunk: 64 },
  { B: 2, Hkv: 1, G: 2, Tq: 9, Tk: 9, D: 32, causal: false, offset: 0, chunk: 64 },
  { B: 1, Hkv: 1, G: 2, Tq: 10, Tk: 10, D: 6, causal: true, offset: 0, chunk: 64 }, // D not a multiple of 4: scalar loads
];

testBothBackends('attention at training shapes (D 8..128, GQA 4:1 and 2:1, T not a multiple of the tile, T = 1, batch 2) equals the composed and naive paths', async (device) => {
  const kinds = device.name === 'webgpu' ? ['auto', 'plain'] as const : ['auto'] as const;
  for (const kind of kinds) {
    const previous = setAttentionKernel(kind);
    try {
      // the portable kernel (no subgroups) on a few shapes: each head size is one more pipeline to build
      for (const c of kind === 'plain' ? SHAPES.filter((s) => s.D <= 16) : SHAPES) {
        const got = await run(device, c, (q, k, v) => A.attention(q, k, v, { causal: c.causal, positionOffset: c.offset }));
        const naive = await run(device, c, (q, k, v) => unfused(q, k, v, c.causal, c.offset));
        const composed = await run(device, c, (q, k, v) => attentionComposed(q, k, v, { causal: c.causal, positionOffset: c.offset }));
        ['out', 'dq', 'dk', 'dv'].forEach((name, i) => {
          // f32 sums of up to 37 * 128 products of values below 1: a few ulps of the row sums
          assertClose(got[i]!, naive[i]!, 2e-4, 2e-5, `${kind} ${JSON.stringify(c)} ${name} vs naive`);
          assertClose(got[i]!, composed[i]!, 2e-4, 2e-5, `${kind} ${JSON.stringify(c)} ${name} vs composed`);
        });
      }
    } finally {
      setAttentionKernel(previous);
    }
  }
});

test('gradcheck: attention in f64 on cpu (GQA, causal with a KV-cache offset; and unmasked)', async () => {
  for (const [causal, offset, Tk] of [[true, 1, 6], [false, 0, 4]] as const) {
    const qShape = [1, 4, 5, 3], kvShape = [1, 2, Tk, 3];
    const inputs = [qShape, kvShape, kvShape].map((shape, i) => ({ values: wave(count(shape), i + 5), shape }));
    const r = await A.gradcheck((q, k, v) => {
      const out = A.attention(q!, k!, v!, { causal, positionOffset: offset, scale: 0.7 });
      return A.sum(A.mul(out, fromArray(wave(count(qShape), 9), qShape, { dtype: 'f64', device: q!.backend })));
    }, inputs, { rtol: 1e-5, atol: 1e-8 });
    assert.ok(r.ok, `causal=${causal}: worst relative error ${r.maxRelError} at ${JSON.stringify(r.worst)}`);
  }
});

testBothBackends('attention saves exactly q, k, v, its output and the row log-sum-exp, and never holds [B, H, T, T] scores', async (device) => {
  const B = 1, H = 4, Hkv = 2, T = 64, D = 2;
  const probBytes = F32 * B * H * T * T;
  const peakAbove = async (impl: (q: Tensor, k: Tensor, v: Tensor) => Tensor) => scope(async () => {
    // intermediates (not parameter leaves), so saving them retags them `activation`
    const param = (shape: number[], seed: number) => {
      const t = fromArray(wave(count(shape), seed), shape, { device });
      t.requiresGrad = true;
      return t;
    };
    const q = A.mul(param([B, H, T, D], 1), 1), k = A.mul(param([B, Hkv, T, D], 2), 1), v = A.mul(param([B, Hkv, T, D], 3), 1);
    const saved0 = device.memory().live.activation;
    resetPeak(device);
    const before = device.memory().allocated;
    const out = impl(q, k, v);
    const saved = device.memory().live.activation - saved0;
    A.backward(A.sum(out));
    return { saved, peak: device.memory().peakTensors.total - before, qkvBytes: F32 * (q.size + k.size + v.size), outBytes: F32 * out.size };
  });
  const fused = await peakAbove((q, k, v) => A.attention(q, k, v));
  const lseBytes = F32 * B * H * T;
  assert.equal(fused.saved, fused.qkvBytes + fused.outBytes + lseBytes, 'attention saves q, k, v, out and lse, nothing else');
  // above the inputs: out, lse, the loss scalar, its gradient [B, H, T, D], the gradients and backward's delta; no score of any size
  const bound = fused.outBytes + lseBytes + F32 + fused.outBytes + fused.qkvBytes + lseBytes;
  assert.ok(fused.peak <= bound, `peak ${fused.peak} bytes above the inputs, want <= ${bound} (no scores)`);
  assert.ok(bound < probBytes / 2, 'the bound itself is far below the probabilities');
  // the measure can tell: the unfused path saves and peaks with the whole probabilities
  const full = await peakAbove((q, k, v) => unfused(q, k, v, true, 0));
  assert.ok(full.saved >= full.qkvBytes + probBytes && full.peak >= probBytes, `unfused: saved ${full.saved}, peak ${full.peak}`);
  assert.equal(device.memory().live.activation, 0, 'backward frees every saved tensor');
  // recomputeOutput: only q, k, v are saved (backward reruns the forward kernel)
  const lean = await peakAbove((q, k, v) => A.attention(q, k, v, { recomputeOutput: true }));
  assert.equal(lean.saved, lean.qkvBytes, 'with recomputeOutput attention saves q, k, v only');
  assert.equal(device.memory().live.activation, 0);
});

testBothBackends('attention recomputeOutput: the same output and gradients, bit for bit, as saving the output', async (device) => {
  const B = 2, H = 4, Hkv = 2, T = 19, D = 8;
  const run = (recomputeOutput: boolean) => scope(async () => {
    const leaf = (shape: number[], seed: number) => {
      const t = fromArray(wave(count(shape), seed), shape, { device });
      t.requiresGrad = true;
      return t;
    };
    const q = leaf([B, H, T, D], 4), k = leaf([B, Hkv, T, D], 5), v = leaf([B, Hkv, T, D], 6);
    const out = A.attention(q, k, v, { recomputeOutput });
    A.backward(A.sum(A.mul(out, fromArray(wave(count([B, H, T, D]), 7), [B, H, T, D], { device }))));
    return Promise.all([out, q.grad!, k.grad!, v.grad!].map(async (t) => [...await t.toArray()]));
  });
  assert.deepEqual(await run(true), await run(false));
});

testBothBackends('attention refuses bad shapes and options with one clear line', (device) => {
  const t = (shape: number[]) => fromArray(new Array(count(shape)).fill(0), shape, { device });
  const q = t([1, 3, 2, 4]), k = t([1, 2, 2, 4]), v = t([1, 2, 2, 4]);
  assert.throws(() => A.attention(q, k, v), (e: Error) => e instanceof ShapeError && /3 heads must be a multiple of k's 2 KV heads/.test(e.message));
  assert.throws(() => A.attention(t([2, 2, 4]), k, v), /must be \[B, heads, T, D\]/);
  assert.throws(() => A.attention(t([1, 2, 2, 3]), k, v), /head size 3/);
  assert.throws(() => A.attention(t([1, 2, 2, 4]), k, v, { positionOffset: -1 }), /positionOffset -1 must be a non-negative integer/);
  assert.throws(() => A.attention(t([1, 2, 2, 4]), k, v, { scale: Infinity }), /scale Infinity must be a finite number/);
  assert.throws(() => A.attention(t([1, 2, 2, 4]), k, v, { causal: false, positionOffset: 1 }), /positionOffset 1 only applies with causal: true/);
});

testBothBackends('attention in f16 (mixed precision) agrees with the unfused f16 path (scalar and vec4 loads)', async (device) => {
  const half = (impl: (q: Tensor, k: Tensor, v: Tensor) => Tensor) => (q: Tensor, k: Tensor, v: Tensor) =>
    A.cast(impl(A.cast(q, 'f16'), A.cast(k, 'f16'), A.cast(v, 'f16')), 'f32');
  for (const c of [
    { B: 1, Hkv: 2, G: 2, Tq: 9, Tk: 9, D: 4, causal: true, offset: 0, chunk: 2 },
    { B: 2, Hkv: 1, G: 2, Tq: 13, Tk: 13, D: 16, causal: true, offset: 0, chunk: 2 },
    { B: 1, Hkv: 1, G: 1, Tq: 5, Tk: 5, D: 3, causal: true, offset: 0, chunk: 2 },
  ]) {
    const got = await run(device, c, half((q, k, v) => A.attention(q, k, v)));
    const want = await run(device, c, half((q, k, v) => unfused(q, k, v, true, 0)));
    // f16 storage of out and the gradients (11-bit mantissa) against a path that also rounds its scores and probabilities
    ['out', 'dq', 'dk', 'dv'].forEach((name, i) => assertClose(got[i]!, want[i]!, 1e-2, 2e-3, `f16 D ${c.D} ${name}`));
  }
});

testBothBackends("attention layout 'bthd' (q, k, v as the projections make them) equals 'bhtd' bit for bit, forward and backward", async (device) => {
  const toBthd = (t: Tensor) => A.permute(t, [0, 2, 1, 3]); // [B, H, T, D] <-> [B, T, H, D]: bit copies both ways, gradients too
  const kinds = device.name === 'webgpu' ? ['auto', 'plain'] as const : ['auto'] as const;
  for (const kind of kinds) {
    const previous = setAttentionKernel(kind);
    try {
      for (const c of [
        { B: 2, Hkv: 2, G: 2, Tq: 11, Tk: 11, D: 8, causal: true, offset: 0, chunk: 1 }, // GQA, T not a multiple of the tile
        { B: 1, Hkv: 1, G: 3, Tq: 5, Tk: 8, D: 3, causal: true, offset: 3, chunk: 1 }, // scalar loads, a KV-cache offset
        { B: 2, Hkv: 3, G: 1, Tq: 4, Tk: 6, D: 4, causal: false, offset: 0, chunk: 1 }, // unmasked, Tq != Tk
      ]) {
        const o = { causal: c.causal, positionOffset: c.offset };
        const want = await run(device, c, (q, k, v) => A.attention(q, k, v, o));
        const got = await run(device, c, (q, k, v) => toBthd(A.attention(toBthd(q), toBthd(k), toBthd(v), { ...o, layout: 'bthd' })));
        const lean = await run(device, c, (q, k, v) => toBthd(A.attention(toBthd(q), toBthd(k), toBthd(v), { ...o, layout: 'bthd', recomputeOutput: true })));
        ['out', 'dq', 'dk', 'dv'].forEach((name, i) => {
          assert.deepEqual(got[i], want[i], `${kind} ${JSON.stringify(c)} ${name}`);
          assert.deepEqual(lean[i], want[i], `${kind} ${JSON.stringify(c)} ${name} (recomputeOutput)`);
        });
      }
    } finally {
      setAttentionKernel(previous);
    }
  }
  const t = (shape: number[]) => fromArray(new Array(count(shape)).fill(0), shape, { device });
  // [B, T, heads, D]: 3 query heads over 2 KV heads is refused as in the other layout
  assert.throws(() => A.attention(t([1, 2, 3, 4]), t([1, 2, 2, 4]), t([1, 2, 2, 4]), { layout: 'bthd' }), /3 heads must be a multiple of k's 2 KV heads/);
  assert.throws(() => A.attention(t([2, 4]), t([1, 2, 2, 4]), t([1, 2, 2, 4]), { layout: 'bthd' }), /must be \[B, T, heads, D\]/);
  assert.throws(() => A.attention(t([1, 2, 2, 4]), t([1, 2, 2, 4]), t([1, 2, 2, 4]), { layout: 'thbd' as never }), /layout must be 'bhtd' or 'bthd', got "thbd"/);
});
