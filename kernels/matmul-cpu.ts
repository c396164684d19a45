/**
 * The cpu reference of matmul: plain loops, f64 accumulation, one rounding when storing. Every sum
 * runs over k in ascending order, one product at a time (JS evaluates `s + x*y + z*w` left to right),
 * so the unrolled loops below give the bits of the naive triple loop.
 */
import type { CpuBackend } from '../engine/cpu/backend.js';
import { f32ToF16Bits } from '../engine/dtype.js';
import type { MatmulCall } from './matmul-layout.js';
import { batchOffsets } from './matmul-layout.js';

export function matmulCpu(backend: CpuBackend, { inputs, outputs, attrs: { layout: l } }: MatmulCall): void {
  const { M, N, K, transA, transB } = l;
  const a = backend.values(inputs.a.storage);
  const b = backend.values(inputs.b.storage);
  const outStorage = outputs.out.storage;
  const out = backend.view(outStorage);
  const store = outStorage.dtype === 'f16' ? (i: number, x: number) => { out[i] = f32ToF16Bits(x); } : (i: number, x: number) => { out[i] = x; };
  // Element (m, k) of A at m * aRow + k * aK, as in the WGSL kernels; B's rows are contiguous unless transposed.
  const aRow = transA ? 1 : K, aK = transA ? M : 1;
  const acc = new Float64Array(N);
  for (let z = 0; z < l.batch; z++) {
    const [offA, offB] = batchOffsets(l, z);
    for (let m = 0; m < M; m++) {
      const o = (z * M + m) * N, ao = offA + m * aRow;
      if (transB) {
        // B^T as stored: column n of B is contiguous over k, so dots (4 columns per pass, sharing A's loads).
        let n = 0;
        for (; n + 4 <= N; n += 4) {
          const b0 = offB + n * K, b1 = b0 + K, b2 = b1 + K, b3 = b2 + K;
          let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
          for (let k = 0; k < K; k++) {
            const x = a[ao + k * aK]!;
            s0 += x * b[b0 + k]!; s1 += x * b[b1 + k]!; s2 += x * b[b2 + k]!; s3 += x * b[b3 + k]!;
          }
          store(o + n, s0); store(o + n + 1, s1); store(o + n + 2, s2); store(o + n + 3, s3);
        }
        for (; n < N; n++) {
          const bo = offB + n * K;
          let s = 0;
          for (let k = 0; k < K; k++) s += a[ao + k * aK]! * b[bo + k]!;
          store(o + n, s);
        }
        continue;
      }
      // B as stored: a row of C accumulates rows of B (axpy), 4 k per pass over the row.
      acc.fill(0);
      let k = 0;
      for (; k + 4 <= K; k += 4) {
        const x0 = a[ao + k * aK]!, x1 = a[ao + (k + 1) * aK]!, x2 = a[ao + (k + 2) * aK]!, x3 = a[ao + (k + 3) * aK]!;
        const r0 = offB + k * N, r1 = r0 + N, r2 = r1 + N, r3 = r2 + N;
        for (let n = 0; n < N; n++) acc[n] = acc[n]! + x0 * b[r0 + n]! + x1 * b[r1 + n]! + x2 * b[r2 + n]! + x3 * b[r3 + n]!;
      }
      for (; k < K; k++) {
        const x = a[ao + k * aK]!, r = offB + k * N;
        for (let n = 0; n < N; n++) acc[n] += x * b[r + n]!;
      }
      for (let n = 0; n < N; n++) store(o + n, acc[n]!);
    }
  }
}
