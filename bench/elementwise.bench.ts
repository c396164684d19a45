/**
 * Elementwise bandwidth on WebGPU against a plain device-to-device copy of the same bytes, in the
 * same run and on the same device. GB/s counts bytes moved (read + written) by each op; the copy
 * moves 2x its size. Run: `npm run bench:elementwise` (STEP_BENCH_MIB sets the tensor size, default 32 MiB).
 */
import { Bench } from 'tinybench';
import { createWebGPUBackend, empty, rand, setDevice } from '../index.js';
import { add, addScaledInPlace, mul } from '../kernels/elementwise.js';
import { exp, silu } from '../kernels/unary.js';
import { grid1D, LINEAR_INDEX, LINEAR_PARAMS, packUniforms, PER_THREAD } from '../kernels/wgsl.js';
import { deviceCopy } from './device-copy.js';

const mib = Number(process.env.STEP_BENCH_MIB ?? 32);
const n = Math.floor((mib * 2 ** 20) / 4);
const bytes = n * 4;
const backend = await createWebGPUBackend();
setDevice(backend);
const a = rand([n]), b = rand([n]), dst = empty([n]);
const row = rand([n / 1024 > 1 ? 1024 : n]);
const a2 = a.reshape([-1, row.size]);
await backend.sync();

const COPY_SHADER = `struct U { n: u32, stride: u32 }
@group(0) @binding(0) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> out: array<vec4<f32>>;
@group(0) @binding(2) var<uniform> u: U;
@compute @workgroup_size(64) fn main(${LINEAR_PARAMS}) {
  ${LINEAR_INDEX.replace('let i', 'let first')}
  if (first >= u.stride) { return; }
  for (var k = 0u; k < ${PER_THREAD}u; k++) { let i = first + k * u.stride; if (i >= u.n) { return; } out[i] = x[i]; }
}`;

const run = (f: () => { dispose(): void } | void) => async () => {
  const out = f();
  await backend.sync();
  if (out) out.dispose();
};
const bench = new Bench({ name: `elementwise vs copy, ${mib} MiB f32`, time: 3000, iterations: 8, warmupIterations: 2 });
bench
  .add('copyBufferToBuffer', deviceCopy(backend, a, dst, bytes))
  // the ceiling for any shader on this device: a vec4 copy with the elementwise kernels' thread layout
  .add('shader copy (vec4)', run(() => {
    const items = n / 4, threads = Math.ceil(items / PER_THREAD);
    backend.dispatch({ label: 'shader copy', source: COPY_SHADER, buffers: [a.storage, dst.storage], uniforms: packUniforms([['u32', items], ['u32', threads]]), workgroups: grid1D(threads) });
  }))
  .add('add (same shape)', run(() => add(a, b)))
  .add('mul by a broadcast row', run(() => mul(a2, row)))
  .add('exp', run(() => exp(a)))
  .add('silu', run(() => silu(a)))
  .add('axpy in place (y += 0.5 x)', run(() => { addScaledInPlace(dst, b, 0.5); }));
await bench.run();

// bytes moved per op: copy reads + writes n floats; add reads 2n, writes n; unary and axpy-style 2n or 3n
const moved: Record<string, number> = {
  copyBufferToBuffer: 2 * bytes, 'shader copy (vec4)': 2 * bytes, 'add (same shape)': 3 * bytes, 'mul by a broadcast row': 2 * bytes,
  exp: 2 * bytes, silu: 2 * bytes, 'axpy in place (y += 0.5 x)': 3 * bytes,
};
const rate = (name: string) => moved[name]! / (((bench.tasks.find((t) => t.name === name)!.result as unknown as { latency: { mean: number } }).latency.mean) / 1000) / 1e9;
const copy = rate('copyBufferToBuffer');
console.log(`device: ${backend.description}`);
for (const t of bench.tasks) console.log(`${t.name.padEnd(30)} ${rate(t.name).toFixed(2)} GB/s  (${((rate(t.name) / copy) * 100).toFixed(0)}% of copy)`);
backend.destroy();
