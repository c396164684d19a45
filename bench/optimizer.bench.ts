/**
 * The optimizer step's bandwidth on WebGPU: AdamW (multi-tensor kernel) over P parameters of N
 * elements, fp32 and mixed (f16 weights and gradients, f32 master, m, v), beside a vec4 shader copy of
 * the same bytes in the same run. At 350m the step moves ~11 GB (30 B a parameter in mixed precision),
 * so its share of a training step follows this rate. GB/s counts bytes read + written.
 * Run: `npm run bench:optimizer` (STEP_BENCH_MIB: f32 MiB of parameters, default 64; 8 tensors).
 */
import { Bench } from 'tinybench';
import { add, AdamW, backward, cast, createWebGPUBackend, empty, mul, parameter, rand, scope, setDevice, sum } from '../index.js';
import type { Tensor } from '../index.js';
import { grid1D, packUniforms, PER_THREAD } from '../kernels/wgsl.js';

const mib = Number(process.env.STEP_BENCH_MIB ?? 64);
const TENSORS = 8;
const n = Math.floor((mib * 2 ** 20) / 4 / TENSORS);
const backend = await createWebGPUBackend();
setDevice(backend);

const COPY_SHADER = `struct U { n: u32, stride: u32 }
@group(0) @binding(0) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> out: array<vec4<f32>>;
@group(0) @binding(2) var<uniform> u: U;
@compute @workgroup_size(64) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let first = (wid.y * nwg.x + wid.x) * 64u + lid.x;
  if (first >= u.stride) { return; }
  for (var k = 0u; k < ${PER_THREAD}u; k++) { let i = first + k * u.stride; if (i >= u.n) { return; } out[i] = x[i]; }
}`;

/** Parameters with gradients (one backward), and an AdamW over them. */
function setup(precision: 'fp32' | 'mixed'): { params: Tensor[]; opt: AdamW } {
  const dtype = precision === 'mixed' ? 'f16' : 'f32';
  const params = Array.from({ length: TENSORS }, () => parameter(dtype === 'f32' ? rand([n]) : cast(rand([n]), dtype)));
  scope(() => backward(params.map((p) => sum(mul(p, p))).reduce((a, b) => add(a, b))));
  return { params, opt: new AdamW(params, { lr: 1e-4, precision }) };
}

const fp32 = setup('fp32'), mixed = setup('mixed');
const src = empty([TENSORS * n]), dst = empty([TENSORS * n]);
await backend.sync();
const bench = new Bench({ name: `optimizer step vs copy, ${TENSORS} x ${n} parameters`, time: 4000, iterations: 6, warmupIterations: 1 });
bench
  .add('shader copy (vec4)', async () => {
    const items = (TENSORS * n) / 4, threads = Math.ceil(items / PER_THREAD);
    backend.dispatch({ label: 'shader copy', source: COPY_SHADER, buffers: [src.storage, dst.storage], uniforms: packUniforms([['u32', items], ['u32', threads]]), workgroups: grid1D(threads) });
    await backend.sync();
  })
  .add('AdamW fp32', async () => { fp32.opt.step(); await backend.sync(); })
  .add('AdamW mixed', async () => { mixed.opt.step(); await backend.sync(); });
await bench.run();

// bytes per parameter: copy 4 + 4; AdamW fp32 reads g, p, m, v and writes p, m, v (28);
// mixed reads g (2), master, m, v (12) and writes p (2), master, m, v (12): 28
const moved: Record<string, number> = { 'shader copy (vec4)': 8, 'AdamW fp32': 28, 'AdamW mixed': 28 };
const ms = (name: string) => (bench.tasks.find((t) => t.name === name)!.result as unknown as { latency: { mean: number } }).latency.mean;
const rate = (name: string) => (moved[name]! * TENSORS * n) / (ms(name) / 1000) / 1e9;
console.log(`device: ${backend.description}`);
for (const t of bench.tasks) console.log(`${t.name.padEnd(22)} ${ms(t.name).toFixed(1).padStart(8)} ms  ${rate(t.name).toFixed(2)} GB/s  (${((100 * rate(t.name)) / rate('shader copy (vec4)')).toFixed(0)}% of copy)`);
backend.destroy();
