/** The cpu reference of matmul: plain loops, f64 accumulation, one rounding when storing. */
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
  const f16 = outStorage.dtype === 'f16';
  // Element (m, k) of A and (k, n) of B, as in the WGSL kernels.
  const aRow = transA ? 1 : K, aK = transA ? M : 1;
  const bK = transB ? 1 : N, bCol = transB ? K : 1;
  const acc = new Float64Array(N);
  for (let z = 0; z < l.batch; z++) {
    const [offA, offB] = batchOffsets(l, z);
    for (let m = 0; m < M; m++) {
      acc.fill(0);
      // k outermost per row: every sum still runs over k in ascending order.
      for (let k = 0; k < K; k++) {
        const x = a[offA + m * aRow + k * aK]!;
        const bBase = offB + k * bK;
        for (let n = 0; n < N; n++) acc[n]! += x * b[bBase + n * bCol]!;
      }
      const o = (z * M + m) * N;
      for (let n = 0; n < N; n++) out[o + n] = f16 ? f32ToF16Bits(acc[n]!) : acc[n]!;
    }
  }
}
