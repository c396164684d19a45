/**
 * Attention forward + backward on WebGPU at the training shapes of the presets (batch 8 x 64,
 * fp32): the fused FlashAttention kernels (`attention`) beside the composed path
 * (`attentionComposed`: matmul + causal softmax over row chunks) in the same run, on the same device.
 * Run: `npm run bench:attention` (STEP_BENCH_ATTENTION=B:H:T:D,... overrides the shapes).
 */
import { Bench } from 'tinybench';
import type { Tensor } from '../index.js';
import { backward, createWebGPUBackend, mul, randn, scope, setDevice, sum } from '../index.js';
import { attention } from '../autograd/ops/attention.js';
import { attentionComposed } from '../autograd/ops/attention-composed.js';

/** tiny (4 heads of 16) and small (4 heads of 32) at batch 8 x 64, and 60m's heads (8 of 64) at 8 x 256. */
const shapes = (process.env.STEP_BENCH_ATTENTION ?? '8:4:64:16,8:4:64:32,8:8:256:64')
  .split(',').map((s) => s.split(':').map(Number) as [number, number, number, number]);

const backend = await createWebGPUBackend();
setDevice(backend);
console.log(`device: ${backend.description}`);
for (const [B, H, T, D] of shapes) {
  const leaf = (shape: number[]) => {
    const t = randn(shape, { category: 'activation' });
    t.requiresGrad = true;
    return t;
  };
  const q = leaf([B, H, T, D]), k = leaf([B, H, T, D]), v = leaf([B, H, T, D]);
  const w = randn([B, H, T, D]);
  const step = (impl: (q: Tensor, k: Tensor, v: Tensor) => Tensor) => () => scope(async () => {
    backward(sum(mul(impl(q, k, v), w)));
    for (const t of [q, k, v]) { t.grad?.dispose(); t.grad = null; }
    await backend.sync();
  });
  const bench = new Bench({ time: 3000, iterations: 5, warmupIterations: 2 });
  bench.add('fused', step(attention)).add('composed', step(attentionComposed));
  await bench.run();
  const ms = bench.tasks.map((t) => (t.result as unknown as { latency: { mean: number } }).latency.mean);
  const flops = 4 * B * H * T * T * D * 3.5 / 2; // causal forward (2 products) + backward (5), halved by the mask
  console.log(`[B ${B}, H ${H}, T ${T}, D ${D}] forward + backward: fused ${ms[0]!.toFixed(2)} ms, composed ${ms[1]!.toFixed(2)} ms ` +
    `(composed/fused ${(ms[1]! / ms[0]!).toFixed(2)}x; fused ${(flops / (ms[0]! * 1e6)).toFixed(1)} GFLOP/s of causal work)`);
  for (const t of [q, k, v, w]) t.dispose();
}
