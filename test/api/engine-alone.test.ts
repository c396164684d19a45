import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freshWebGPU } from '../helpers/backends.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));

// Runs in a fresh process, so no other module has registered kernels: only what
// 'step-webgpu/engine' imports itself is there.
const SCRIPT = `
import { AdamW, SGD, arange, clone, fromArray, initDevice, ones, parameter, rand, randn, zeros } from 'step-webgpu/engine';
const device = await initDevice(process.env.STEP_DEVICE);
const out = { device: device.name };
out.zeros = [...await zeros([3]).toArray()];
out.ones = [...await ones([2], { dtype: 'i32' }).toArray()];
out.fromArray = [...await fromArray([[1, 2], [3, 4]]).toArray()];
out.arange = [...await arange(0, 6, 2).toArray()];
out.clone = [...await clone(fromArray([5, 6])).toArray()];
out.randInRange = [...await rand([64]).toArray()].every((v) => v >= 0 && v < 1);
out.randnSize = randn([5]).size;
const p = parameter(fromArray([1, -2, 3]));
p.grad = ones([3], { category: 'gradient' });
const adamw = new AdamW([p], { lr: 0.1, weightDecay: 0 });
adamw.step();
out.adamw = [...await p.toArray()];
const q = parameter(fromArray([1, 2]));
q.grad = fromArray([0.5, -1], [2], { category: 'gradient' });
const sgd = new SGD([q], { lr: 0.1 });
sgd.step();
sgd.zeroGrad();
out.sgd = [...await q.toArray()];
out.gradAfterZero = [...await q.grad.toArray()];
console.log(JSON.stringify(out));
`;

for (const device of ['cpu', 'webgpu'] as const) {
  test(`'step-webgpu/engine' alone creates tensors and runs optimizer steps (fresh process) [${device}]`, async (t) => {
    if (device === 'webgpu') {
      const b = await freshWebGPU(t);
      if (!b) return;
      b.destroy();
    }
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', SCRIPT], { cwd: root, encoding: 'utf8', env: { ...process.env, STEP_DEVICE: device } });
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as Record<string, unknown>;
    assert.equal(out.device, device);
    assert.deepEqual(out.zeros, [0, 0, 0]);
    assert.deepEqual(out.ones, [1, 1]);
    assert.deepEqual(out.fromArray, [1, 2, 3, 4]);
    assert.deepEqual(out.arange, [0, 2, 4]);
    assert.deepEqual(out.clone, [5, 6]);
    assert.equal(out.randInRange, true);
    assert.equal(out.randnSize, 5);
    // Adam's first step moves each weight by lr against the sign of its gradient
    (out.adamw as number[]).forEach((v, i) => assert.ok(Math.abs(v - ([1, -2, 3][i]! - 0.1)) < 1e-6, `adamw[${i}] = ${v}`));
    (out.sgd as number[]).forEach((v, i) => assert.ok(Math.abs(v - [0.95, 2.1][i]!) < 1e-6, `sgd[${i}] = ${v}`));
    assert.deepEqual(out.gradAfterZero, [0, 0]);
  });
}

/** Relative imports of a compiled module (static and dynamic, side-effect ones included). */
function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const specs = [...text.matchAll(/(?:^|\n)\s*(?:import|export)\s[^'";]*?['"](\.[^'"]+)['"]/g), ...text.matchAll(/import\(\s*['"](\.[^'"]+)['"]\s*\)/g)];
  return specs.map((m) => join(dirname(file), m[1]!));
}

test('the engine entry point reaches no autograd, models or step module, and not kernels/index.js', () => {
  const dist = join(root, 'dist');
  const seen = new Set<string>();
  const stack = [join(dist, 'engine/index.js')];
  while (stack.length) {
    const f = stack.pop()!;
    if (seen.has(f)) continue;
    seen.add(f);
    stack.push(...importsOf(f));
  }
  const files = [...seen].map((f) => relative(dist, f));
  const bad = files.filter((f) => /^(autograd|models|step)\//.test(f) || f === 'kernels/index.js');
  assert.deepEqual(bad, [], `engine/index.js reaches ${bad.join(', ')}`);
  // the engine's own kernels come in through engine/builtin-kernels.js
  for (const k of ['kernels/fill.js', 'kernels/copy.js', 'kernels/arange.js', 'kernels/random.js', 'kernels/optim.js']) assert.ok(files.includes(k), `${k} is not reached`);
});
