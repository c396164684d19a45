/**
 * Reduction bandwidth on WebGPU: sum of a large f32 tensor (over everything, over the last axis,
 * over the first axis) against a plain device-to-device copy (`copyBufferToBuffer`) of the same
 * bytes, in the same run and on the same device. GB/s counts the bytes read once (the copy also
 * writes them). Run: `npx tsc -p . && node dist/bench/reduce.bench.js` (STEP_BENCH_MIB sets the
 * tensor size, default 64 MiB).
 */
import { Bench } from 'tinybench';
import { createWebGPUBackend, empty, rand, setDevice } from '../index.js';
import { max, sum } from '../kernels/reduce.js';
import { deviceCopy } from './device-copy.js';

const mib = Number(process.env.STEP_BENCH_MIB ?? 64);
const n = Math.floor((mib * 2 ** 20) / 4);
const bytes = n * 4;

const backend = await createWebGPUBackend();
setDevice(backend);
const x = rand([n], { category: 'activation' });
let height = 2 ** Math.floor(Math.log2(Math.sqrt(n)));
while (n % height) height /= 2;
const square = x.reshape([height, -1]); // about square: both axes long
const dst = empty([n], { category: 'temporary' });
await backend.sync();

const bench = new Bench({ name: `reduce vs copy, ${mib} MiB f32`, time: 3000, iterations: 8, warmupIterations: 2 });
bench
  .add('copyBufferToBuffer', deviceCopy(backend, x, dst, bytes))
  .add('sum (all)', async () => {
    const s = sum(x);
    await backend.sync();
    s.dispose();
  })
  .add('max (all)', async () => {
    const s = max(x);
    await backend.sync();
    s.dispose();
  })
  .add(`sum axis -1 of [${square.shape.join(', ')}]`, async () => {
    const s = sum(square, { axis: -1 });
    await backend.sync();
    s.dispose();
  })
  .add(`sum axis 0 of [${square.shape.join(', ')}]`, async () => {
    const s = sum(square, { axis: 0 });
    await backend.sync();
    s.dispose();
  });

await bench.run();

console.log(`device: ${backend.description}`);
console.log(bench.name);
const rows = bench.tasks.map((t) => {
  const r = t.result as { latency?: { mean: number } };
  const ms = r.latency?.mean ?? NaN;
  return { task: t.name, 'mean ms': ms.toFixed(3), 'GB/s': (bytes / (ms * 1e6)).toFixed(2) };
});
console.table(rows);
const copy = Number(rows[0]!['GB/s']);
for (const r of rows.slice(1)) console.log(`${r.task}: ${(Number(r['GB/s']) / copy * 100).toFixed(0)}% of the copy's bandwidth`);
backend.destroy();
