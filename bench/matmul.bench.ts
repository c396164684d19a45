/**
 * matmul on WebGPU: time and GFLOP/s per shape (square, LLaMA training shapes forward and both
 * backward forms, edge tiles, one-token decode), next to tfjs-backend-webgpu on the same Dawn
 * adapter, then Dawn's wait loop in 'spin' versus the default 'episode' mode.
 *
 *   npm run bench:matmul            (or bench:kernels)
 *   node dist/bench/matmul.bench.js --quick      fewer shapes and samples
 *
 * Each sample records `count` matmuls into the backend's batch and awaits `sync()` once, so the
 * per-op submit/await overhead (~0.1 ms) is amortised as in a training step.
 */
import { loadavg } from 'node:os';
import { Bench } from 'tinybench';
import type { Tensor, WebGPUBackend } from '../index.js';
import { createWebGPUBackend, rand } from '../index.js';
import { matmul } from '../kernels/matmul.js';
import { planMatmul } from '../kernels/matmul-webgpu.js';
import { matmulLayout } from '../kernels/matmul-layout.js';
import { tileCols } from '../kernels/matmul-wgsl.js';
import type { MatmulShape, TfjsPeer } from './peers/tfjs.js';
import { openTfjs } from './peers/tfjs.js';

interface NamedShape extends MatmulShape { name: string }

const QUICK = process.argv.includes('--quick');

// LLaMA-style layer at hidden 512, ffn 1376, 2048 tokens: X·W (forward), dX = dH·W^T, dW = X^T·dH.
const SHAPES: NamedShape[] = [
  { name: 'square 1024^3', M: 1024, K: 1024, N: 1024 },
  { name: 'fwd tokens x hidden x hidden', M: 2048, K: 512, N: 512 },
  { name: 'fwd tokens x hidden x ffn', M: 2048, K: 512, N: 1376 },
  { name: 'dX = dH·W^T (ffn)', M: 2048, K: 1376, N: 512, transB: true },
  { name: 'dW = X^T·dH (ffn)', M: 512, K: 2048, N: 1376, transA: true },
  { name: 'dX = dC·W^T (hidden)', M: 2048, K: 512, N: 512, transB: true },
  { name: 'edge tiles, odd token count', M: 2047, K: 512, N: 1376 },
  { name: 'edge tiles, dims % 4 == 0', M: 2044, K: 508, N: 1372 },
  { name: 'edge tiles, odd dims', M: 2047, K: 509, N: 1375 },
  { name: 'edge tiles, dW odd', M: 509, K: 2047, N: 1375, transA: true },
  { name: 'decode: 1 token x hidden x ffn', M: 1, K: 512, N: 1376 },
];
const QUICK_SHAPES = new Set(['square 1024^3', 'fwd tokens x hidden x ffn', 'edge tiles, odd dims']);

const flops = (s: MatmulShape): number => 2 * s.M * s.K * s.N;
const label = (s: NamedShape): string => `${s.name} [${s.M}x${s.K}x${s.N}${s.transA ? ' transA' : ''}${s.transB ? ' transB' : ''}]`;

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
  const a = rand(s.transA ? [s.K, s.M] : [s.M, s.K], { device: backend, low: -1, high: 1 });
  const b = rand(s.transB ? [s.N, s.K] : [s.K, s.N], { device: backend, low: -1, high: 1 });
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
  const layout = matmulLayout(s.transA ? [s.K, s.M] : [s.M, s.K], s.transB ? [s.N, s.K] : [s.K, s.N], !!s.transA, !!s.transB, () => '');
  const p = planMatmul(backend, layout, 'f32', { a: s.M * s.K, b: s.K * s.N });
  const v = p.variant;
  if (v.kind === 'plain') return 'plain 32x32';
  const vec = (on: boolean, re: boolean, name: string): string => (on ? ` ${name}${re ? '(re-pitched)' : ''}` : '');
  return `subgroup S=${v.subgroup} ${v.rows}x${tileCols(v)}${vec(v.vecA, p.repitchA, 'vecA')}${vec(v.vecB, p.repitchB, 'vecB')}`;
}

const fmt = (x: number, d = 1): string => x.toFixed(d);
const pad = (x: string, n: number): string => x.padEnd(n);

async function main(): Promise<void> {
  const shapes = QUICK ? SHAPES.filter((s) => QUICK_SHAPES.has(s.name)) : SHAPES;
  const backend = await createWebGPUBackend();
  console.log(`device: ${backend.description} (subgroups: ${backend.hasFeature('subgroups') ? `${backend.adapter.subgroupMinSize}-${backend.adapter.subgroupMaxSize}` : 'no'}, LP_NATIVE_VECTOR_WIDTH=${process.env.LP_NATIVE_VECTOR_WIDTH ?? 'default'})`);
  console.log(`load average at start: ${loadavg().map((x) => x.toFixed(2)).join(' ')} (2-core machine: anything else running skews these numbers)`);
  const tf: TfjsPeer | string = await openTfjs(backend.waitMode);
  console.log(`peer: ${typeof tf === 'string' ? `unavailable: ${tf}` : tf.description}`);
  console.log();
  console.log(`${pad('shape', 52)} ${pad('kernel', 52)} ${pad('ms', 8)} ${pad('GFLOP/s', 8)} ${pad('GFLOP/cpu-s', 12)} ${pad('tfjs ms', 9)} ${pad('tfjs GFLOP/s', 12)} speed-up`);
  for (const s of shapes) {
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
    console.log(`${pad(label(s), 52)} ${pad(variantOf(backend, s), 52)} ${pad(fmt(ms, 2), 8)} ${pad(fmt(flops(s) / ms / 1e6), 8)} ${pad(fmt(flops(s) / cpuMs / 1e6), 12)} ${pad(peer, 9)} ${pad(peerG, 12)} ${ratio}`);
  }

  // Dawn's busy-poll: the same work awaited with the default 'episode' wait and with plain 'spin'.
  console.log();
  console.log('wait mode (same shapes, fresh backends):');
  const spin = await createWebGPUBackend({ waitMode: 'spin' });
  for (const s of [SHAPES[0]!, SHAPES[2]!]) {
    const row: string[] = [];
    for (const b of [backend, spin]) {
      const m = ours(b, s);
      const { ms } = await measure(`${b.waitMode} ${label(s)}`, m.run, countFor(s, 60, 0.15), QUICK ? 500 : 1500);
      m.dispose();
      row.push(`${b.waitMode}: ${fmt(ms, 2)} ms ${fmt(flops(s) / ms / 1e6)} GFLOP/s`);
    }
    console.log(`  ${pad(label(s), 52)} ${row.join('   ')}`);
  }
  spin.destroy();
  backend.destroy();
  console.log(`\nload average at end: ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
}

await main();
