/**
 * The embedding gradient (scatterAddRows) on WebGPU at growing tokens per step: the link method
 * (O(T^2) id comparisons at worst) beside the radix sort (linear in tokens), same ids and
 * gradients, same run. Ids: 'zipf' (a Zipf-like law over a 32000-token vocabulary: repeats, as
 * real text has) and 'distinct' (no id repeats: the link method's worst case); H = 512 (`60m`).
 * Run: `npm run bench:scatter` (STEP_BENCH_TOKENS=512,2048,8192,32768).
 */
import { Bench } from 'tinybench';
import { createWebGPUBackend, fromArray, randn, setDevice } from '../index.js';
import { scatterAddRows } from '../kernels/layout-rows.js';

const V = 32000, H = 512;
const tokenCounts = (process.env.STEP_BENCH_TOKENS ?? '512,2048,8192,32768').split(',').map(Number);
const backend = await createWebGPUBackend();
setDevice(backend);
console.log(`device: ${backend.description}; V ${V}, H ${H}`);

let s = 7;
const rand = () => { s = (s * 1103515245 + 12345) % 2 ** 31; return s / 2 ** 31; };
const draws = {
  zipf: (t: number) => Array.from({ length: t }, () => Math.min(V - 1, Math.floor(1 / (rand() + 1 / V)) - 1)),
  distinct: (t: number) => Array.from({ length: t }, (_, i) => (i * 7919) % V),
};
for (const [law, draw] of Object.entries(draws)) for (const t of tokenCounts) {
  const ids = fromArray(draw(t), [t], { dtype: 'i32' });
  const grad = randn([t, H], { category: 'activation' });
  const bench = new Bench({ time: 2000, iterations: 3, warmupIterations: 1 });
  for (const method of ['links', 'sort'] as const) {
    bench.add(method, async () => {
      const out = scatterAddRows(grad, ids, V, { method });
      await backend.sync();
      out.dispose();
    });
  }
  await bench.run();
  const ms = Object.fromEntries(bench.tasks.map((k) => [k.name, (k.result as unknown as { latency: { mean: number } }).latency.mean]));
  console.log(`${law.padEnd(8)} T ${String(t).padStart(6)}: links ${ms.links!.toFixed(2)} ms, sort ${ms.sort!.toFixed(2)} ms (links/sort ${(ms.links! / ms.sort!).toFixed(2)}x)`);
  ids.dispose(); grad.dispose();
}
backend.destroy();
