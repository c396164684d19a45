import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { Backend, Tensor } from '../../index.js';
import { fromArray, scope } from '../../index.js';
import * as A from '../../autograd/index.js';
import { bothBackends, worstError } from '../helpers/backends.js';

const rnd = (n: number, seed: number) => Array.from({ length: n }, (_, i) => (((Math.sin(seed * 7919 + i * 104.729) * 43758.5453) % 1) + 1) % 1 * 4 - 2);

/** Gradients of sum(f(xs) * w) with respect to every input, on one backend, in f32. */
async function grads(device: Backend, f: (...xs: Tensor[]) => Tensor, shapes: number[][], seed: number): Promise<Float32Array[]> {
  return scope(async () => {
    const xs = shapes.map((s, k) => {
      const t = fromArray(rnd(s.reduce((a, b) => a * b, 1), seed + k), s, { device });
      t.requiresGrad = true;
      return t;
    });
    const y = f(...xs);
    const w = fromArray(rnd(y.size, seed + 99), y.shape as number[], { device });
    return Promise.all(A.grad(y, xs, { grad: w }).map(async (g) => (await g.toArray()) as Float32Array));
  });
}

type Build = (...xs: Tensor[]) => Tensor;
const UNARY: Build[] = [(a) => A.silu(a), (a) => A.tanh(a), (a) => A.exp(A.mul(a, 0.3)), (a) => A.square(a), (a) => A.sigmoid(a)];
const BINARY: Build[] = [(a, b) => A.add(a, b), (a, b) => A.mul(a, b), (a, b) => A.sub(a, b), (a, b) => A.div(a, A.add(A.square(b), 1))];

test('property: WebGPU gradients equal the cpu ones for random compositions over broadcast shapes', async (t) => {
  const both = await bothBackends(t);
  if (!both) return;
  const shapes = fc.constantFrom<number[][]>([[3, 4], [4], [3, 1]], [[2, 3, 4], [3, 4], [1]], [[5], [5], [1]], [[4, 4], [1, 4], [4, 1]]);
  const plan = fc.array(fc.tuple(fc.nat({ max: UNARY.length - 1 }), fc.nat({ max: BINARY.length - 1 }), fc.nat({ max: 2 })), { minLength: 1, maxLength: 4 });
  await fc.assert(fc.asyncProperty(shapes, plan, fc.nat(), async (sh, steps, seed) => {
    const f: Build = (...xs) => {
      let h = xs[0]!;
      for (const [u, b, k] of steps) h = BINARY[b]!(UNARY[u]!(h), xs[k]!);
      return xs.slice(1).reduce((acc, x) => A.add(acc, A.mul(x, 0)), h);
    };
    const [gc, gg] = [await grads(both.cpu, f, sh, seed), await grads(both.gpu, f, sh, seed)];
    gc.forEach((c, k) => {
      // f32 on both sides; the GPU's exp/tanh are a few ulp off, compounded over up to 4 steps (three
      // squares in a row raise a value to the 8th power and its relative error 8-fold: 1.1e-4 seen)
      const w = worstError(gg[k]!, c, 3e-4, 1e-5);
      assert.ok(w.ratio <= 1, `input ${k}, index ${w.index}: gpu ${gg[k]![w.index]} cpu ${c[w.index]} (${JSON.stringify(steps)})`);
    });
  }), { numRuns: 25, seed: 1130 }); // seeded: the same cases in every run (CI never meets a new one by chance)
});

test('WebGPU gradients equal the cpu ones through matmul, softmax, RMSNorm, RoPE, SwiGLU and cross-entropy', async (t) => {
  const both = await bothBackends(t);
  if (!both) return;
  const f: Build = (x, w, g, wq) => {
    const h = A.rmsNorm(x, g, 1e-5);                                   // [2, 3, 8]
    const q = A.rope(A.reshape(A.matmul(h, wq, { transB: true }), [2, 3, 2, 4]));
    const s = A.softmax(A.matmul(A.permute(q, [0, 2, 1, 3]), A.permute(q, [0, 2, 1, 3]), { transB: true }), { causal: true });
    const mixed = A.reshape(A.permute(A.matmul(s, A.permute(q, [0, 2, 1, 3])), [0, 2, 1, 3]), [2, 3, 8]);
    const m = A.swiglu(mixed, A.matmul(h, wq, { transB: true }));
    const logits = A.reshape(A.matmul(m, w, { transB: true }), [6, 5]);
    return A.crossEntropy(logits, fromArray([1, 4, 0, 2, -100, 3], [6], { dtype: 'i32', device: x.backend }));
  };
  const shapes = [[2, 3, 8], [5, 8], [8], [8, 8]];
  const [gc, gg] = [await grads(both.cpu, f, shapes, 5), await grads(both.gpu, f, shapes, 5)];
  gc.forEach((c, k) => {
    const scale = Math.max(...Array.from(c, Math.abs));
    const w = worstError(gg[k]!, c, 1e-4, 1e-5 * scale);
    assert.ok(w.ratio <= 1, `input ${k}, index ${w.index}: gpu ${gg[k]![w.index]} cpu ${c[w.index]}`);
  });
});
