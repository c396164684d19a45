/**
 * matmul on WebGPU: time and GFLOP/s for every training shape (bench/matmul-shapes.ts: each model's
 * linears forward and both backward forms, LM head, LoRA rank 8 and 64, attention's products) and
 * 1024^3, next to tfjs-backend-webgpu on the same Dawn adapter, then Dawn's wait loop in 'spin'
 * versus the default 'episode' mode.
 *
 *   npm run bench:matmul                                  (or bench:kernels)
 *   node dist/bench/matmul.bench.js --quick               a few shapes, fewer samples
 *   node dist/bench/matmul.bench.js --shapes 60m,square   shapes whose name contains one of these
 *   node dist/bench/matmul.bench.js --compare             B from buffers vs from a texture, interleaved
 *   node dist/bench/matmul.bench.js --no-tfjs             without the tfjs peer (it is ~20x slower)
 *
 * PyTorch (float32 on the CPU, all cores, its BLAS named; STEP_BENCH_TORCH=0 skips it) runs the same
 * shapes in the same run, before ours: on a shared machine whose speed moves with other tenants, the
 * ratio to the BLAS of the same machine is the figure to compare between runs.
 *
 * Each sample records `count` matmuls into the backend's batch and awaits `sync()` once, so the
 * per-op submit/await overhead (~0.1 ms) is amortised as in a training step. `--compare` runs the
 * two kernels alternately in one process (A, B, A, B, ...) and reports the median of the per-round
 * time ratios, which stays meaningful on a machine with other load where absolute GFLOP/s do not.
 * llvmpipe's vector width is set before the adapter loads (STEP_LP_VECTOR_WIDTH=default or 256
 * compares against Mesa's default; see engine/webgpu/vector-width.ts).
 */
import { loadavg } from 'node:os';
import { Bench } from 'tinybench';
import type { Tensor, WebGPUBackend } from '../index.js';
import { createWebGPUBackend, rand } from '../index.js';
import { matmul } from '../kernels/matmul.js';
import type { MatmulKernelKind } from '../kernels/matmul-webgpu.js';
import { planMatmul, setMatmulKernel } from '../kernels/matmul-webgpu.js';
import { matmulLayout } from '../kernels/matmul-layout.js';
import { tileCols } from '../kernels/matmul-wgsl.js';
import type { NamedShape } from './matmul-shapes.js';
import { ALL_SHAPES, SQUARE } from './matmul-shapes.js';
import type { MatmulShape, TfjsPeer } from './peers/tfjs.js';
import { openTfjs } from './peers/tfjs.js';
import type { TorchMatmulResult } from './peers/torch.js';
import { torchAvailable, torchMatmul } from './peers/torch.js';

const argv = process.argv.slice(2);
const QUICK = argv.includes('--quick');
const COMPARE = argv.includes('--compare');
const NO_TFJS = argv.includes('--no-tfjs');
const FILTER = argv.includes('--shapes') ? argv[argv.indexOf('--shapes') + 1]!.split(',') : null;
const QUICK_SHAPES = ['square 1024^3', '60m mlp up/gate fwd', '60m mlp down dW', 'h256 q/k/v/o dX', '60m lora r8 up fwd', '60m attn probs·v'];

const batchOf = (s: MatmulShape): number => s.batch ?? 1;
const flops = (s: MatmulShape): number => 2 * s.M * s.K * s.N * batchOf(s);
const label = (s: NamedShape): string =>
  `${s.name} [${batchOf(s) > 1 ? `${batchOf(s)}x ` : ''}${s.M}x${s.K}x${s.N}${s.transA ? ' tA' : ''}${s.transB ? ' tB' : ''}]`;
const operandShapes = (s: MatmulShape): { a: number[]; b: number[] } => {
  const lead = batchOf(s) > 1 ? [batchOf(s)] : [];
  return { a: [...lead, ...(s.transA ? [s.K, s.M] : [s.M, s.K])], b: [...lead, ...(s.transB ? [s.N, s.K] : [s.K, s.N])] };
};

/** Matmuls per sample: about `seconds` of work at `gflops`. */
function countFor(s: MatmulShape, gflops: number, seconds: number): number {
  return Math.max(1, Math.round((seconds * gflops * 1e9) / flops(s)));
}

/**
 * Median ms per matmul of `run(count)` sampled by tinybench (after one untimed warm-up run), and
 * the process's CPU seconds per matmul averaged over all samples (lavapipe's threads run inside
 * this process): GFLOP per CPU-second is less sensitive than wall time to other load on the
 * machine, though not immune to it (shared caches, outlier samples).
 */
async function measure(name: string, run: (count: number) => Promise<void>, count: number, time: number): Promise<{ ms: number; cpuMs: number }> {
  await run(1); // builds the pipeline (seconds on llvmpipe) outside the timing
  const bench = new Bench({ time, iterations: QUICK ? 2 : 3, warmup: false });
  bench.add(name, () => run(count));
  const cpu0 = process.cpuUsage();
  await bench.run();
  const cpu = process.cpuUsage(cpu0);
  const r = bench.tasks[0]!.result;
  if (r.state !== 'completed') throw new Error(`${name}: ${r.state === 'errored' ? r.error.message : r.state}`);
  return { ms: r.latency.p50 / count, cpuMs: (cpu.user + cpu.system) / 1e3 / (r.latency.samplesCount * count) };
}

function ours(backend: WebGPUBackend, s: MatmulShape): { run(count: number): Promise<void>; dispose(): void } {
  const shapes = operandShapes(s);
  const a = rand(shapes.a, { device: backend, low: -1, high: 1 });
  const b = rand(shapes.b, { device: backend, low: -1, high: 1 });
  return {
    async run(count) {
      const outs: Tensor[] = [];
      for (let i = 0; i < count; i++) outs.push(matmul(a, b, { transA: s.transA, transB: s.transB }));
      await backend.sync();
      for (const o of outs) o.dispose();
    },
    dispose() { a.dispose(); b.dispose(); },
  };
}

function variantOf(backend: WebGPUBackend, s: MatmulShape): string {
  const shapes = operandShapes(s);
  const layout = matmulLayout(shapes.a, shapes.b, !!s.transA, !!s.transB, () => '');
  const p = planMatmul(backend, layout, 'f32', { a: s.M * s.K * batchOf(s), b: s.K * s.N * batchOf(s) });
  const v = p.variant;
  if (v.kind === 'plain') return 'plain 32x32';
  const vec = (on: boolean, re: boolean, name: string): string => (on ? ` ${name}${re ? '(re-pitched)' : ''}` : '');
  const b = v.texB ? (v.texStored ? ' B^T texture' : ' B texture') : vec(v.vecB, p.repitchB, 'vecB');
  return `${p.swap ? 'C^T: ' : ''}subgroup S=${v.subgroup} ${v.rows}x${tileCols(v)}${vec(v.vecA, p.repitchA, 'vecA')}${b}${v.vecC ? ' vecC' : ''}`;
}

const fmt = (x: number, d = 1): string => x.toFixed(d);
const pad = (x: string, n: number): string => x.padEnd(n);
const median = (xs: number[]): number => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;

/** ms per matmul of each kernel kind, run alternately `rounds` times; the median of the per-round ratios. */
async function compareKinds(backend: WebGPUBackend, s: NamedShape, kinds: [MatmulKernelKind, MatmulKernelKind], rounds: number): Promise<string> {
  const m = ours(backend, s);
  const count = countFor(s, 60, 0.1);
  const times: [number[], number[]] = [[], []];
  try {
    for (const k of kinds) { setMatmulKernel(k); await m.run(1); } // pipelines built outside the timing
    for (let r = 0; r < rounds; r++) {
      for (const i of r % 2 === 0 ? [0, 1] : [1, 0]) {
        setMatmulKernel(kinds[i]!);
        const t0 = performance.now();
        await m.run(count);
        times[i]!.push((performance.now() - t0) / count);
      }
    }
  } finally {
    setMatmulKernel('auto');
    m.dispose();
  }
  const ratio = median(times[0].map((t, i) => t / times[1][i]!));
  const g = (i: 0 | 1): string => `${fmt(flops(s) / median(times[i]) / 1e6)} GFLOP/s`;
  return `${pad(label(s), 58)} ${kinds[0]} ${pad(g(0), 14)} ${kinds[1]} ${pad(g(1), 14)} ${kinds[1]} is ${fmt(ratio, 2)}x faster (median of ${rounds} rounds)`;
}

async function main(): Promise<void> {
  let shapes = ALL_SHAPES;
  if (FILTER) shapes = shapes.filter((s) => FILTER.some((f) => s.name.includes(f)));
  else if (QUICK) shapes = shapes.filter((s) => QUICK_SHAPES.includes(s.name));
  const backend = await createWebGPUBackend();
  const lp = backend.adapter.lpVectorWidth;
  console.log(`device: ${backend.description} (subgroups: ${backend.hasFeature('subgroups') ? `${backend.adapter.subgroupMinSize}-${backend.adapter.subgroupMaxSize}` : 'no'}, ` +
    `llvmpipe vector width: ${lp ? `${lp.width ?? 'Mesa default'} (${lp.reason})` : 'n/a'})`);
  console.log(`load average at start: ${loadavg().map((x) => x.toFixed(2)).join(' ')} (2-core machine: anything else running skews these numbers)`);
  if (COMPARE) {
    console.log('\nB from storage buffers (subgroup) vs from an rgba32float texture (texture), same process, interleaved:');
    for (const s of shapes) console.log(await compareKinds(backend, s, ['subgroup', 'texture'], QUICK ? 4 : 6));
    backend.destroy();
    console.log(`\nload average at end: ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
    return;
  }
  const tf: TfjsPeer | string = NO_TFJS ? 'skipped (--no-tfjs)' : await openTfjs(backend.waitMode);
  console.log(`peer: ${typeof tf === 'string' ? `unavailable: ${tf}` : tf.description}`);
  const torch: TorchMatmulResult | null = torchAvailable() ? torchMatmul(shapes, QUICK ? 0.5 : 1) : null;
  console.log(`PyTorch: ${torch ? `torch ${torch.torch}, ${torch.threads} threads, ${torch.blas} (same shapes, run just before)` : 'not importable, or STEP_BENCH_TORCH=0'}`);
  console.log();
  console.log(`${pad('shape', 58)} ${pad('kernel', 46)} ${pad('ms', 8)} ${pad('GFLOP/s', 8)} ${pad('GFLOP/cpu-s', 12)} ${pad('tfjs ms', 9)} ${pad('tfjs GFLOP/s', 12)} ${pad('speed-up', 9)} ${pad('torch GFLOP/s', 14)} vs torch`);
  for (const [i, s] of shapes.entries()) {
    const mine = ours(backend, s);
    const { ms, cpuMs } = await measure(label(s), mine.run, countFor(s, 60, 0.15), QUICK ? 500 : 1500);
    mine.dispose();
    let peer = '-', peerG = '-', ratio = '-';
    if (typeof tf !== 'string') {
      const p = tf.prepare(s);
      const pms = (await measure(`tfjs ${label(s)}`, p.run, countFor(s, 5, 0.3), QUICK ? 300 : 1000)).ms;
      p.dispose();
      peer = fmt(pms, 2); peerG = fmt(flops(s) / pms / 1e6); ratio = `${fmt(pms / ms)}x`;
    }
    const tms = torch?.ms[i];
    const torchCols = tms ? `${pad(fmt(flops(s) / tms / 1e6), 14)} ${fmt(tms / ms, 2)}x` : '-';
    console.log(`${pad(label(s), 58)} ${pad(variantOf(backend, s), 46)} ${pad(fmt(ms, 3), 8)} ${pad(fmt(flops(s) / ms / 1e6), 8)} ${pad(fmt(flops(s) / cpuMs / 1e6), 12)} ${pad(peer, 9)} ${pad(peerG, 12)} ${pad(ratio, 9)} ${torchCols}`);
  }

  // Dawn's busy-poll: the same work awaited with the default 'episode' wait and with plain 'spin'.
  console.log();
  console.log('wait mode (same shapes, fresh backends):');
  const spin = await createWebGPUBackend({ waitMode: 'spin' });
  for (const s of [SQUARE, ALL_SHAPES.find((x) => x.name === '60m mlp up/gate fwd')!]) {
    const row: string[] = [];
    for (const b of [backend, spin]) {
      const m = ours(b, s);
      const { ms } = await measure(`${b.waitMode} ${label(s)}`, m.run, countFor(s, 60, 0.15), QUICK ? 500 : 1500);
      m.dispose();
      row.push(`${b.waitMode}: ${fmt(ms, 2)} ms ${fmt(flops(s) / ms / 1e6)} GFLOP/s`);
    }
    console.log(`  ${pad(label(s), 58)} ${row.join('   ')}`);
  }
  spin.destroy();
  backend.destroy();
  console.log(`\nload average at end: ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
}

await main();
