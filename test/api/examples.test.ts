import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { freshWebGPU } from '../helpers/backends.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));

function run(script: string, device: string): string {
  const r = spawnSync(process.execPath, [script], { cwd: root, encoding: 'utf8', env: { ...process.env, STEP_DEVICE: device } });
  assert.equal(r.status, 0, `${script} on ${device} failed:\n${r.stderr}`);
  return r.stdout;
}

for (const device of ['cpu', 'webgpu'] as const) {
  test(`examples/mlp.mjs fits its MLP with parameter(), Linear and AdamW [${device}]`, async (t) => {
    if (device === 'webgpu') { const b = await freshWebGPU(t); if (!b) return; b.destroy(); }
    const out = run('examples/mlp.mjs', device);
    const m = /loss (\d+\.\d+) -> (\d+\.\d+) after 200 steps on (\w+)/.exec(out);
    assert.ok(m, out);
    assert.equal(m[3], device);
    // the targets' variance is about 1.3; a fitted MLP gets well below 0.05
    assert.ok(Number(m[1]) > 0.5 && Number(m[2]) < 0.05, out);
    // Linear(2, 32) with bias, a [1, 32] weight and a [1] bias: 2*32 + 32 + 32 + 1 = 129 f32 values; AdamW keeps m and v
    const values = 2 * 32 + 32 + 32 + 1;
    assert.match(out, new RegExp(`parameters: ${values} values, ${values * 4} bytes; gradients ${values * 4} bytes; AdamW state ${values * 8} bytes`));
  });

  test(`examples/step-by-hand.mjs grows, freezes with LoRA and measures what the planner predicts [${device}]`, async (t) => {
    if (device === 'webgpu') { const b = await freshWebGPU(t); if (!b) return; b.destroy(); }
    const out = run('examples/step-by-hand.mjs', device);
    const stages = [...out.matchAll(/measured: {2}(.*)\n {2}predicted: (.*)/g)];
    assert.equal(stages.length, 2, out);
    for (const [, measured, predicted] of stages) assert.equal(measured, predicted, out);
    // stage 2 has frozen bytes (the old layers) and stage 1 none
    assert.match(stages[0]![1]!, /frozen 0,/);
    assert.doesNotMatch(stages[1]![1]!, /frozen 0,/);
    assert.match(out, /stage 2: 4 layers \(frozen with LoRA rank 4: 0, 3\)/);
    for (const m of out.matchAll(/loss (\d+\.\d+) -> (\d+\.\d+)/g)) assert.ok(Number(m[2]) < Number(m[1]), `loss did not fall: ${m[0]}`);
  });
}
