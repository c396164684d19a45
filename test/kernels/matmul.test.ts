import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fc from 'fast-check';
import type { Backend, DType } from '../../index.js';
import {
  CpuBackend, DeviceMismatchError, DTypeError, f16BitsToF32, f32ToF16Bits, fromArray, scope, setDevice, ShapeError, zeros,
} from '../../index.js';
// The kernel op itself (the package root exports the differentiable wrapper from autograd/).
import { matmul } from '../../kernels/matmul.js';
import type { WebGPUBackend } from '../../index.js';
import { fixedSubgroupSize, planMatmul, setMatmulKernel, SWAP_MAX_COLS, SWAP_MIN_ROWS, TEXTURE_MIN_ROWS } from '../../kernels/matmul-webgpu.js';
import { matmulLayout } from '../../kernels/matmul-layout.js';
import { packsByCopy, TEXTURE_BLOCK_BYTES } from '../../kernels/matmul-texture.js';
import { bothBackends, runOnBoth, testBothBackends } from '../helpers/backends.js';

const cpu = new CpuBackend();
const vals = async (t: { toArray(): Promise<Float32Array | Float64Array | Int32Array> }) => [...await t.toArray()];

testBothBackends('matmul: hand-computed products, transposes and batches', async () => {
  await scope(async () => {
    const a = fromArray([[1, 2, 3], [4, 5, 6]]); // [2, 3]
    const b = fromArray([[7, 8], [9, 10], [11, 12]]); // [3, 2]
    assert.deepEqual([...await vals(matmul(a, b))], [58, 64, 139, 154]);
    assert.deepEqual(matmul(a, b).shape, [2, 2]);
    // a^T [3, 2] · a [2, 3] = [[17, 22, 27], [22, 29, 36], [27, 36, 45]]
    assert.deepEqual(await vals(matmul(a, a, { transA: true })), [17, 22, 27, 22, 29, 36, 27, 36, 45]);
    // a [2, 3] · a^T [3, 2] = [[14, 32], [32, 77]]
    assert.deepEqual(await vals(matmul(a, a, { transB: true })), [14, 32, 32, 77]);
    // b^T · a^T = (a · b)^T
    assert.deepEqual(await vals(matmul(b, a, { transA: true, transB: true })), [58, 139, 64, 154]);
    // Batched [2, 2, 2] · [2, 2, 2]: identity then swap.
    const x = fromArray([[[1, 2], [3, 4]], [[5, 6], [7, 8]]]);
    const y = fromArray([[[1, 0], [0, 1]], [[0, 1], [1, 0]]]);
    assert.deepEqual(await vals(matmul(x, y)), [1, 2, 3, 4, 6, 5, 8, 7]);
    // A 2-D b shared by every batch entry of a, and a 2-D a shared across b's batch.
    const w = fromArray([[1, 1], [0, 2]]);
    assert.deepEqual(await vals(matmul(x, w)), [1, 5, 3, 11, 5, 17, 7, 23]);
    assert.deepEqual(await vals(matmul(w, x)), [4, 6, 6, 8, 12, 14, 14, 16]);
    // Broadcast batch dims: [2, 1, 1, 2] · [1, 3, 2, 1] -> [2, 3, 1, 1].
    const p = fromArray([1, 2, 3, 4], [2, 1, 1, 2]);
    const q = fromArray([1, 0, 0, 1, 1, 1], [1, 3, 2, 1]);
    const pq = matmul(p, q);
    assert.deepEqual(pq.shape, [2, 3, 1, 1]);
    assert.deepEqual(await vals(pq), [1, 2, 3, 3, 4, 7]);
  });
});

testBothBackends('matmul: empty sums and empty outputs', async (be) => {
  await scope(async () => {
    const k0 = matmul(zeros([3, 0]), zeros([0, 2]));
    assert.deepEqual(k0.shape, [3, 2]);
    assert.deepEqual(await vals(k0), [0, 0, 0, 0, 0, 0], 'K = 0 gives zeros');
    assert.deepEqual(await vals(matmul(zeros([2, 0, 5]), zeros([5, 3]))), [], 'M = 0');
    assert.deepEqual(matmul(zeros([2, 0, 5]), zeros([5, 3])).shape, [2, 0, 3]);
    assert.deepEqual(matmul(zeros([4, 5]), zeros([5, 0])).shape, [4, 0]);
    assert.deepEqual(matmul(zeros([0, 4, 5]), zeros([5, 2])).shape, [0, 4, 2]);
    const f16 = matmul(fromArray([[0.5, 2]], [1, 2], { dtype: 'f16' }), fromArray([[4], [0.25]], [2, 1], { dtype: 'f16' }), { category: 'activation', label: 'h' });
    assert.equal(f16.dtype, 'f16');
    assert.equal(f16.category, 'activation');
    assert.deepEqual(await vals(f16), [2.5]);
    if (be.name === 'cpu') {
      const d = matmul(fromArray([[0.1]], [1, 1], { dtype: 'f64' }), fromArray([[0.2]], [1, 1], { dtype: 'f64' }));
      assert.equal(d.dtype, 'f64');
      assert.deepEqual(await vals(d), [0.1 * 0.2], 'f64 stays f64');
    }
  });
});

test('matmul cpu reference accumulates in f64 and rounds once to f32', async () => {
  setDevice(cpu);
  await scope(async () => {
    // 1 + 2^-24 + 2^-24: an f32 running sum rounds back to 1 twice; the exact sum 1 + 2^-23 is an f32.
    const e = 2 ** -24;
    const c = matmul(fromArray([[1, e, e]]), fromArray([[1], [1], [1]]));
    assert.deepEqual(await vals(c), [1 + 2 ** -23]);
    // 1/3 * 3 in f64 is 1 exactly; f32 products would give 1.0000000298.
    assert.deepEqual(await vals(matmul(fromArray([[1 / 3]], [1, 1], { dtype: 'f64' }), fromArray([[3]], [1, 1], { dtype: 'f64' }))), [1]);
  });
});

test('matmul: bad inputs throw errors that name the op, shapes and dtypes', () => {
  setDevice(cpu);
  const is = (cls: Function, re: RegExp) => (e: unknown) => e instanceof cls && re.test((e as Error).message);
  assert.throws(() => matmul(zeros([3]), zeros([3, 2])), is(ShapeError, /matmul: a \[3\] f32, b \[3, 2\] f32: both operands need rank >= 2/));
  assert.throws(() => matmul(zeros([2, 3]), zeros([4, 2])), is(ShapeError, /matmul: a \[2, 3\] f32, b \[4, 2\] f32: inner dimensions differ: a gives K = 3, b gives K = 4/));
  assert.throws(() => matmul(zeros([2, 3]), zeros([2, 3]), { transB: false }), is(ShapeError, /inner dimensions differ/));
  assert.throws(() => matmul(zeros([3, 2]), zeros([2, 4]), { transA: true, transB: true }), is(ShapeError, /\(transA\).*K = 3 \(transA\), b gives K = 4 \(transB\)/));
  assert.throws(() => matmul(zeros([2, 3]), zeros([3, 2], { dtype: 'f16' })), is(DTypeError, /matmul: a \[2, 3\] f32, b \[3, 2\] f16: dtypes differ/));
  assert.throws(() => matmul(zeros([2, 3], { dtype: 'i32' }), zeros([3, 2], { dtype: 'i32' })), is(DTypeError, /i32 is not supported/));
  assert.throws(() => matmul(zeros([2, 2, 3]), zeros([3, 3, 2])), is(ShapeError, /batch dimensions \[2\] and \[3\] do not broadcast/));
  assert.throws(() => matmul(zeros([2, 1, 2, 1, 2, 2, 2]), zeros([1, 2, 1, 2, 1, 2, 2])), is(ShapeError, /at most 4 are supported/));
  assert.throws(() => matmul(zeros([2, 2]), zeros([2, 2], { device: new CpuBackend() })), is(DeviceMismatchError, /matmul: .*: a and b live on different backends/));
});

// ---- conformance: webgpu vs an independent f64 reference (and the cpu kernel) ----

type Batch = 'none' | 'equal' | 'sharedB' | 'sharedA' | 'broadcast';
interface Case { M: number; N: number; K: number; transA: boolean; transB: boolean; batch: Batch; seed: number }

/** Shapes of A and B for a case (batch dims of 2 and 3 where used). */
function shapes(c: Case): { a: number[]; b: number[] } {
  const am = c.transA ? [c.K, c.M] : [c.M, c.K];
  const bm = c.transB ? [c.N, c.K] : [c.K, c.N];
  switch (c.batch) {
    case 'none': return { a: am, b: bm };
    case 'equal': return { a: [2, ...am], b: [2, ...bm] };
    case 'sharedB': return { a: [3, 2, ...am], b: bm };
    case 'sharedA': return { a: am, b: [2, ...bm] };
    case 'broadcast': return { a: [2, 1, ...am], b: [3, ...bm] };
  }
}

/** Deterministic values in [-1, 1), rounded to the dtype's storage. */
function values(n: number, seed: number, dtype: DType): number[] {
  let s = seed >>> 0;
  return Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const x = s / 2 ** 31 - 1;
    return dtype === 'f16' ? f16BitsToF32(f32ToF16Bits(x)) : Math.fround(x);
  });
}

/**
 * The product in f64 straight from the definition (NumPy broadcasting over batch dims), and
 * sum_k |a_mk * b_kn| for each output, which bounds the rounding error of any summation order.
 */
function reference(a: number[], as: number[], b: number[], bs: number[], transA: boolean, transB: boolean) {
  const batchA = as.slice(0, -2), batchB = bs.slice(0, -2);
  const rank = Math.max(batchA.length, batchB.length);
  const padA = [...new Array(rank - batchA.length).fill(1), ...batchA], padB = [...new Array(rank - batchB.length).fill(1), ...batchB];
  const batch = padA.map((d, i) => Math.max(d, padB[i]!));
  const M = transA ? as.at(-1)! : as.at(-2)!, K = transA ? as.at(-2)! : as.at(-1)!, N = transB ? bs.at(-2)! : bs.at(-1)!;
  const count = batch.reduce((x, y) => x * y, 1);
  const value = new Float64Array(count * M * N), absSum = new Float64Array(count * M * N);
  for (let z = 0; z < count; z++) {
    let rem = z, ia = 0, ib = 0, sa = 1, sb = 1;
    for (let d = rank - 1; d >= 0; d--) {
      const i = rem % batch[d]!;
      rem = Math.floor(rem / batch[d]!);
      ia += (padA[d] === 1 ? 0 : i) * sa; sa *= padA[d]!;
      ib += (padB[d] === 1 ? 0 : i) * sb; sb *= padB[d]!;
    }
    for (let m = 0; m < M; m++) {
      for (let n = 0; n < N; n++) {
        let s = 0, t = 0;
        for (let k = 0; k < K; k++) {
          const x = a[ia * M * K + (transA ? k * M + m : m * K + k)]!;
          const y = b[ib * K * N + (transB ? n * K + k : k * N + n)]!;
          s += x * y; t += Math.abs(x * y);
        }
        value[(z * M + m) * N + n] = s;
        absSum[(z * M + m) * N + n] = t;
      }
    }
  }
  return { value, absSum, shape: [...batch, M, N] };
}

/**
 * Tolerance of one output. A dot product of K terms summed in f32 in any order is within
 * gamma_K * sum|a*b| of the exact value, gamma_K = K*u/(1-K*u), u = 2^-24 (Higham, Accuracy and
 * Stability, 3.1); we use (K+2)*u, which covers that plus the final rounding of the stored f32.
 * f16 outputs add one f16 rounding (2^-11 relative) on each side: the reference rounds the exact
 * value, the GPU its f32 sum, and the two may straddle a rounding boundary. 2^-24 absolute
 * covers f16 subnormals.
 */
function tolerance(absSum: number, exact: number, K: number, dtype: DType): number {
  const f32 = (K + 2) * 2 ** -24 * absSum;
  return dtype === 'f16' ? f32 + 2 ** -10 * Math.abs(exact) + 2 ** -24 : f32 + 1e-30;
}

async function checkCase(backends: { cpu: Backend; gpu: Backend }, c: Case, dtype: DType): Promise<void> {
  const s = shapes(c);
  const a = values(s.a.reduce((x, y) => x * y, 1), c.seed, dtype);
  const b = values(s.b.reduce((x, y) => x * y, 1), c.seed + 7, dtype);
  const ref = reference(a, s.a, b, s.b, c.transA, c.transB);
  const out = await runOnBoth(backends, [{ values: a, shape: s.a, dtype }, { values: b, shape: s.b, dtype }], (x, y) => {
    const r = matmul(x, y, { transA: c.transA, transB: c.transB });
    assert.deepEqual(r.shape, ref.shape);
    return r;
  });
  const what = `${JSON.stringify(c)} ${dtype} a ${JSON.stringify(s.a)} b ${JSON.stringify(s.b)}`;
  for (let i = 0; i < ref.value.length; i++) {
    const exact = ref.value[i]!;
    // The cpu kernel sums the same f64 products in the same k order and rounds once: bit-identical.
    const cpuWant = dtype === 'f16' ? f16BitsToF32(f32ToF16Bits(exact)) : Math.fround(exact);
    if (!Object.is(out.cpu[0]![i]!, cpuWant)) assert.fail(`cpu ${what}: index ${i}: ${out.cpu[0]![i]} vs ${cpuWant}`);
    const gpuGot = out.gpu[0]![i]!;
    const tol = tolerance(ref.absSum[i]!, exact, c.K, dtype);
    if (!(Math.abs(gpuGot - exact) <= tol)) assert.fail(`webgpu ${what}: index ${i}: ${gpuGot} vs exact ${exact} (tolerance ${tol})`);
  }
}

/** Dims: 1-element, primes, tile edges (8, 32) and their neighbours, or anything up to 70. */
const dim = fc.oneof(fc.constantFrom(1, 2, 3, 4, 5, 7, 8, 9, 12, 13, 31, 32, 33, 36, 37, 64, 65), fc.integer({ min: 1, max: 70 }));
const caseArb = (batches: Batch[]) => fc.record({
  M: dim, N: dim, K: fc.oneof(dim, fc.constant(0)), transA: fc.boolean(), transB: fc.boolean(),
  batch: fc.constantFrom(...batches), seed: fc.integer({ min: 1, max: 1e9 }),
});

test('matmul conformance f32: webgpu (subgroup kernel when available) vs cpu vs f64 reference', async (t) => {
  const backends = await bothBackends(t);
  if (!backends) return;
  const S = fixedSubgroupSize(backends.gpu as WebGPUBackend);
  t.diagnostic(S > 0 ? `webgpu: subgroup kernel, subgroup size ${S}` : 'webgpu: no fixed subgroup size, plain kernel');
  await fc.assert(fc.asyncProperty(caseArb(['none', 'equal', 'sharedB', 'sharedA', 'broadcast']), (c) => checkCase(backends, c, 'f32')), { numRuns: 30 });
});

test('matmul conformance f16 (f32 accumulate, f16 output)', async (t) => {
  const backends = await bothBackends(t);
  if (!backends) return;
  await fc.assert(fc.asyncProperty(caseArb(['none', 'sharedB']), (c) => checkCase(backends, c, 'f16')), { numRuns: 6 });
});

test('matmul conformance: B read through a texture (every shape forced onto that path)', async (t) => {
  const backends = await bothBackends(t);
  if (!backends) return;
  const gpu = backends.gpu as WebGPUBackend;
  if (fixedSubgroupSize(gpu) === 0) return t.skip('no fixed subgroup size: the texture path needs the subgroup kernel');
  const old = setMatmulKernel('texture');
  try {
    const layout = matmulLayout([3, 40, 40], [40, 40], false, false, () => '');
    assert.ok(planMatmul(gpu, layout, 'f32', { a: 4800, b: 1600 }).variant.texB, 'forced onto the texture path');
    const staging = gpu.memory().live.staging;
    await fc.assert(fc.asyncProperty(caseArb(['none', 'equal', 'sharedB', 'sharedA', 'broadcast']), (c) => checkCase(backends, c, 'f32')), { numRuns: 30 });
    // Every transpose with batches, tile edges and a K tail; f16 (widened into f32 texels).
    for (const [transA, transB] of [[false, false], [true, false], [false, true], [true, true]] as const) {
      await checkCase(backends, { M: 45, K: 33, N: 67, transA, transB, batch: 'broadcast', seed: 21 }, 'f32');
      await checkCase(backends, { M: 33, K: 9, N: 65, transA, transB, batch: 'sharedA', seed: 22 }, 'f16');
      await checkCase(backends, { M: 33, K: 9, N: 68, transA, transB, batch: 'sharedA', seed: 22 }, 'f16'); // C stored as vec4
    }
    // B wider than one texture block (TEXTURE_BLOCK_BYTES): packed and multiplied block by block.
    for (const transB of [false, true]) {
      const c: Case = { M: 5, K: 2048, N: 1100, transA: false, transB, batch: 'none', seed: 23 };
      const s = shapes(c);
      const blocks = planMatmul(gpu, matmulLayout(s.a, s.b, false, transB, () => ''), 'f32', { a: 5 * 2048, b: 2048 * 1100 }).texture;
      assert.ok(blocks && blocks.blocks === 2 && blocks.width * blocks.height * 16 <= TEXTURE_BLOCK_BYTES, `two blocks: ${JSON.stringify(blocks)}`);
      await checkCase(backends, c, 'f32');
    }
    // K past the texture height (the LM head's dX: K = vocabulary): K segments side by side, every transpose, a K tail.
    const max = gpu.limits.maxTextureDimension2D;
    for (const [transA, transB] of [[false, false], [true, false], [false, true], [true, true]] as const) {
      const c: Case = { M: 67, K: max + 37, N: 70, transA, transB, batch: 'none', seed: 24 };
      const s = shapes(c);
      const blocks = planMatmul(gpu, matmulLayout(s.a, s.b, transA, transB, () => ''), 'f32', { a: 67 * c.K, b: c.K * 70 }).texture;
      assert.ok(blocks && blocks.segments === 2, `two K segments: ${JSON.stringify(blocks)}`);
      await checkCase(backends, c, transA ? 'f16' : 'f32');
    }
    // f32 B as stored with rows of a multiple of 256 bytes goes in by buffer-to-texture copies: stacked
    // matrices, two blocks, and K segments with a K tail.
    const copies = gpu.stats.copies;
    for (const transA of [false, true]) {
      await checkCase(backends, { M: 37, K: 29, N: 64, transA, transB: false, batch: 'equal', seed: 25 }, 'f32');
      await checkCase(backends, { M: 9, K: 2048, N: 1152, transA, transB: false, batch: 'none', seed: 26 }, 'f32');
      await checkCase(backends, { M: 33, K: max + 37, N: 128, transA, transB: false, batch: 'none', seed: 27 }, 'f32');
    }
    // Transposed f32 B with rows of a multiple of 256 bytes: the texture holds B^T as stored (one copy per
    // block, no transposing pack), batched A over one B, tile edges, two blocks.
    for (const transA of [false, true]) {
      for (const c of [{ M: 37, K: 64, N: 67, batch: 'sharedB' as const }, { M: 40, K: 128, N: 1100, batch: 'none' as const }, { M: 5, K: 2048, N: 1100, batch: 'none' as const }]) {
        const s = shapes({ ...c, transA, transB: true, seed: 0 });
        const plan = planMatmul(gpu, matmulLayout(s.a, s.b, transA, true, () => ''), 'f32', { a: s.a.reduce((x, y) => x * y), b: c.K * c.N });
        assert.ok(plan.variant.texStored && plan.texture, `B^T as stored: ${JSON.stringify(c)}`);
        if (c.K === 2048) assert.equal(plan.texture.blocks, 2);
        await checkCase(backends, { ...c, transA, transB: true, seed: 30 + c.K }, 'f32');
      }
    }
    assert.ok(gpu.stats.copies - copies >= 2 * (1 + 2 + 2 + 1 + 1 + 2), `packed by copies (${gpu.stats.copies - copies})`);
    assert.ok(packsByCopy({ dtype: 'f32' } as never, matmulLayout([33, 70], [70, 128], false, false, () => '')));
    assert.ok(!packsByCopy({ dtype: 'f32' } as never, matmulLayout([33, 70], [70, 100], false, false, () => '')), 'rows of 400 bytes');
    // Copies leave texels they do not cover as they were: a product whose last K segment is shorter
    // must not read the rows a longer one left there (NaN here).
    await scope(async () => {
      const K1 = max + 100, K2 = max + 37;
      const nanB = fromArray(Array.from({ length: K1 * 64 }, (_, i) => (i >= (max + 30) * 64 ? NaN : 0)), [K1, 64], { device: gpu });
      const first = await matmul(fromArray(new Array(40 * K1).fill(1), [40, K1], { device: gpu }), nanB).toArray();
      assert.ok(first.every(Number.isNaN), 'the longer product read its NaN rows');
      const a2 = values(40 * K2, 28, 'f32'), b2 = values(K2 * 64, 29, 'f32');
      const got = await matmul(fromArray(a2, [40, K2], { device: gpu }), fromArray(b2, [K2, 64], { device: gpu })).toArray();
      const ref = reference(a2, [40, K2], b2, [K2, 64], false, false);
      for (let i = 0; i < ref.value.length; i++) {
        if (!(Math.abs(got[i]! - ref.value[i]!) <= tolerance(ref.absSum[i]!, ref.value[i]!, K2, 'f32'))) assert.fail(`after a longer product: index ${i}: ${got[i]} vs ${ref.value[i]}`);
      }
    });
    assert.equal(gpu.memory().live.staging, staging, 'the texture is released after the product is recorded');
  } finally {
    setMatmulKernel(old);
  }
});

test('matmul: large products read B through a texture by default, small ones from buffers', async (t) => {
  const backends = await bothBackends(t);
  if (!backends) return;
  const gpu = backends.gpu as WebGPUBackend;
  if (fixedSubgroupSize(gpu) === 0) return t.skip('no fixed subgroup size: no texture path');
  const plan = (M: number, K: number, N: number, batchB = 1) =>
    planMatmul(gpu, matmulLayout([M, K], batchB > 1 ? [batchB, K, N] : [K, N], false, false, () => ''), 'f32', { a: M * K, b: batchB * K * N });
  assert.ok(plan(TEXTURE_MIN_ROWS, 64, 64).texture, 'M at the threshold');
  assert.equal(plan(TEXTURE_MIN_ROWS - 1, 64, 64).texture, null, 'below it');
  const max = gpu.limits.maxTextureDimension2D;
  const tall = plan(256, max + 1, 64).texture;
  assert.ok(tall && tall.segments === 2 && tall.kSeg % 4 === 0 && tall.kSeg <= max && tall.width * tall.segments <= max, `K past the texture height: K in segments side by side (${JSON.stringify(tall)})`);
  assert.equal(plan(256, 64, 64, Math.ceil((max + 1) / 64)).texture, null, 'stacked batch past the texture height: buffers');
  // A product above the threshold, through the default path: exact within the tolerance.
  await checkCase(backends, { M: TEXTURE_MIN_ROWS + 3, K: 37, N: 70, transA: true, transB: true, batch: 'sharedB', seed: 9 }, 'f32');
});

test('matmul: products with few columns (LoRA rank 8) run as C^T = B^T A^T, written transposed', async (t) => {
  const backends = await bothBackends(t);
  if (!backends) return;
  const gpu = backends.gpu as WebGPUBackend;
  if (fixedSubgroupSize(gpu) === 0) return t.skip('no fixed subgroup size: the plain kernel has no swap');
  const plan = (M: number, N: number) => planMatmul(gpu, matmulLayout([M, 16], [16, N], false, false, () => ''), 'f32', { a: M * 16, b: 16 * N });
  assert.ok(plan(SWAP_MIN_ROWS, SWAP_MAX_COLS).swap && plan(SWAP_MIN_ROWS, 1).variant.transC, 'swapped at the bounds');
  assert.ok(!plan(SWAP_MIN_ROWS - 1, SWAP_MAX_COLS).swap && !plan(SWAP_MIN_ROWS, SWAP_MAX_COLS + 1).swap, 'not past them');
  for (const [transA, transB] of [[false, false], [true, false], [false, true], [true, true]] as const) {
    await checkCase(backends, { M: 70, K: 37, N: 8, transA, transB, batch: 'broadcast', seed: 31 }, 'f32');
    await checkCase(backends, { M: 33, K: 64, N: 3, transA, transB, batch: 'sharedA', seed: 32 }, 'f32');
    await checkCase(backends, { M: 129, K: 9, N: 1, transA, transB, batch: 'none', seed: 33 }, 'f16');
  }
});

test("matmul at Mesa's default vector width (subgroup 8): buffer and texture paths match the cpu", async (t) => {
  const gpu = await bothBackends(t);
  if (!gpu) return;
  if (!/llvmpipe/i.test((gpu.gpu as WebGPUBackend).adapter.description)) return t.skip('not llvmpipe');
  // The width is fixed per process: a child at 256 bits runs both paths over transposes, batches and tile edges.
  const code = `import { CpuBackend, createWebGPUBackend, fromArray } from '${new URL('../../index.js', import.meta.url).href}';
import { matmul } from '${new URL('../../kernels/matmul.js', import.meta.url).href}';
import { fixedSubgroupSize, setMatmulKernel } from '${new URL('../../kernels/matmul-webgpu.js', import.meta.url).href}';
const gpu = await createWebGPUBackend(), cpu = new CpuBackend();
if (fixedSubgroupSize(gpu) !== 8) throw new Error('subgroup ' + fixedSubgroupSize(gpu));
let s = 5;
const vals = (n) => Array.from({ length: n }, () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 31 - 1);
for (const kind of ['subgroup', 'texture']) {
  setMatmulKernel(kind);
  for (const [M, K, N, tA, tB] of [[37, 33, 45, false, false], [70, 9, 33, true, false], [9, 66, 31, false, true], [33, 13, 70, true, true]]) {
    const as = [2, ...(tA ? [K, M] : [M, K])], bs = tB ? [N, K] : [K, N];
    const a = vals(as[0] * M * K), b = vals(N * K);
    const [g, c] = await Promise.all([gpu, cpu].map((d) => matmul(fromArray(a, as, { device: d }), fromArray(b, bs, { device: d }), { transA: tA, transB: tB }).toArray()));
    for (let i = 0; i < c.length; i++) if (!(Math.abs(g[i] - c[i]) <= (K + 2) * 2 ** -23 * K)) throw new Error(kind + ' ' + [M, K, N, tA, tB] + ' index ' + i + ': ' + g[i] + ' vs ' + c[i]);
  }
}
console.log('ok');`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], {
    env: { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'LP_NATIVE_VECTOR_WIDTH' && k !== 'MESA_SHADER_CACHE_DIR')), STEP_LP_VECTOR_WIDTH: '256' },
    encoding: 'utf8',
  });
  assert.equal(r.stdout.trim().split('\n').at(-1), 'ok', r.stderr);
});

test('matmul conformance: the plain fallback kernel (no subgroups)', async (t) => {
  const backends = await bothBackends(t);
  if (!backends) return;
  const old = setMatmulKernel('plain');
  try {
    const layout = matmulLayout([40, 40], [40, 40], false, false, () => '');
    assert.equal(planMatmul(backends.gpu as WebGPUBackend, layout, 'f32', { a: 1600, b: 1600 }).variant.kind, 'plain');
    await fc.assert(fc.asyncProperty(caseArb(['none', 'equal', 'sharedB', 'broadcast']), (c) => checkCase(backends, c, 'f32')), { numRuns: 15 });
    await checkCase(backends, { M: 33, N: 17, K: 9, transA: false, transB: true, batch: 'none', seed: 5 }, 'f16');
  } finally {
    setMatmulKernel(old);
  }
});

test('matmul: LLaMA-like shapes with edge tiles, forward and both backward forms', async (t) => {
  const backends = await bothBackends(t);
  if (!backends) return;
  // tokens x hidden x ffn scaled down, with M and N off the tile: C = A·W, dA = dC·W^T, dW = A^T·dC.
  for (const [M, K, N] of [[100, 64, 172], [37, 48, 36]] as const) {
    await checkCase(backends, { M, K, N, transA: false, transB: false, batch: 'none', seed: 11 }, 'f32');
    await checkCase(backends, { M, K: N, N: K, transA: false, transB: true, batch: 'none', seed: 12 }, 'f32');
    await checkCase(backends, { M: K, K: M, N, transA: true, transB: false, batch: 'none', seed: 13 }, 'f32');
  }
});

test('matmul: operands are re-pitched for vec4 loads and to avoid cache aliasing', async (t) => {
  const backends = await bothBackends(t);
  if (!backends) return;
  const gpu = backends.gpu as WebGPUBackend;
  for (const [transA, transB] of [[false, false], [true, false], [false, true], [true, true]] as const) {
    const c: Case = { M: 45, K: 33, N: 35, transA, transB, batch: 'broadcast', seed: 3 };
    const s = shapes(c);
    const plan = planMatmul(gpu, matmulLayout(s.a, s.b, transA, transB, () => ''), 'f32', { a: 6 * 45 * 33, b: 3 * 33 * 35 });
    if (fixedSubgroupSize(gpu) > 0) {
      assert.ok(plan.repitchA && plan.repitchB && plan.variant.vecA && plan.variant.vecB, `both operands re-pitched: ${JSON.stringify(plan)}`);
    }
    const staging = gpu.memory().live.staging;
    await checkCase(backends, c, 'f32');
    assert.equal(gpu.memory().live.staging, staging, 'the re-pitched copies are freed');
  }
  // Pitches of a multiple of 2 KiB alias in the L1 cache: padded by 4 elements for long products.
  const aliasCases: [Case, DType, 'a' | 'b'][] = [
    [{ M: 20, K: 512, N: 1024, transA: false, transB: false, batch: 'equal', seed: 4 }, 'f32', 'a'],
    [{ M: 1024, K: 512, N: 17, transA: false, transB: true, batch: 'none', seed: 5 }, 'f32', 'b'],
    [{ M: 17, K: 1024, N: 1030, transA: false, transB: false, batch: 'none', seed: 6 }, 'f16', 'a'],
  ];
  // B from buffers (a texture takes B at any pitch, packed, so it never re-pitches B).
  const old = setMatmulKernel(fixedSubgroupSize(gpu) > 0 ? 'subgroup' : 'auto');
  try {
    for (const [c, dtype, which] of aliasCases) {
      const s = shapes(c);
      const size = (d: number[]) => d.reduce((x, y) => x * y, 1);
      const plan = planMatmul(gpu, matmulLayout(s.a, s.b, c.transA, c.transB, () => ''), dtype === 'f16' ? 'f16' : 'f32', { a: size(s.a), b: size(s.b) });
      if (fixedSubgroupSize(gpu) > 0) {
        assert.equal(which === 'a' ? plan.lda : plan.ldb, c.K + 4, `pitch padded: ${JSON.stringify(plan)}`);
        assert.ok(which === 'a' ? plan.repitchA && !plan.repitchB : plan.repitchB && !plan.repitchA);
      }
      await checkCase(backends, c, dtype);
    }
  } finally {
    setMatmulKernel(old);
  }
  // Too little reuse: the other side is under a tile, so no copy.
  const small = planMatmul(gpu, matmulLayout([8, 33], [33, 20], false, false, () => ''), 'f32', { a: 8 * 33, b: 33 * 20 });
  assert.ok(!small.repitchA && !small.repitchB && !small.variant.vecA);
});

testBothBackends('matmul: grids past 65535 workgroups per dimension run as several dispatches', async (be) => {
  await scope(async () => {
    // 70000 batch entries (z), 2.1M rows (y) and 2.1M columns (x), each with a checkable pattern.
    const n = 70000;
    const z = matmul(fromArray(values(n, 1, 'f32'), [n, 1, 1]), fromArray(values(n, 2, 'f32'), [n, 1, 1]));
    const za = values(n, 1, 'f32'), zb = values(n, 2, 'f32'), zc = await z.toArray();
    for (let i = 0; i < n; i++) if (zc[i] !== Math.fround(za[i]! * zb[i]!)) assert.fail(`batch entry ${i}: ${zc[i]} vs ${za[i]! * zb[i]!}`);
    const rows = 65535 * 32 + 5;
    const col = fromArray(new Float32Array(rows).map((_, i) => i % 1000 + 1), [rows, 1]);
    const y = await matmul(col, fromArray([[2, -1]])).toArray();
    for (const i of [0, 1, rows - 40, rows - 1]) assert.deepEqual([y[2 * i], y[2 * i + 1]], [2 * (i % 1000 + 1), -(i % 1000 + 1)], `row ${i} (${be.name})`);
    const x = await matmul(fromArray([[3]]), col.reshape([1, rows])).toArray();
    for (const i of [0, 7, rows - 33, rows - 1]) assert.equal(x[i], 3 * (i % 1000 + 1), `column ${i} (${be.name})`);
  });
});
