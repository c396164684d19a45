import { test } from 'node:test';
import assert from 'node:assert/strict';
import { add, fromArray, Generator, rand, scope, setDevice, StepError } from '../../index.js';
import { matmul } from '../../kernels/matmul.js';
import { freshWebGPU } from '../helpers/backends.js';

test('profile: every dispatch timed under its label, counts equal the backend stats, results unchanged', async (t) => {
  const b = await freshWebGPU(t);
  if (!b) return;
  try {
    setDevice(b);
    await scope(async () => {
      const x = rand([96, 64], { generator: new Generator(1) }), w = rand([64, 80], { generator: new Generator(2) });
      const plain = [...await matmul(x, w).toArray()];
      const { result, report } = await b.profile(async () => {
        let y = matmul(x, w);
        for (let i = 0; i < 5; i++) y = add(y, 1);
        return [...await y.toArray()];
      });
      assert.ok(result.every((v, i) => Math.abs(v - (plain[i]! + 5)) < 1e-4), 'profiled run computes the same values');
      const byLabel = new Map(report.kernels.map((k) => [k.label, k]));
      assert.equal(byLabel.get('add_scalar')?.dispatches, 5, JSON.stringify(report.kernels));
      assert.equal(report.kernels.reduce((s, k) => s + k.dispatches, 0), report.dispatches, 'every dispatch is timed once');
      assert.equal(report.readbacks, 1);
      assert.ok(report.deviceMs > 0 && report.kernels.every((k) => k.ms >= 0), JSON.stringify(report));
      assert.ok(report.kernels.every((k, i) => i === 0 || report.kernels[i - 1]!.ms >= k.ms), 'most time first');
      // profiles do not nest, and the backend works normally afterwards
      await assert.rejects(b.profile(() => b.profile(() => 0)), (e: unknown) => e instanceof StepError && /profiles do not nest/.test(e.message));
      assert.deepEqual([...await add(fromArray([1, 2]), 1).toArray()], [2, 3]);
    });
  } finally {
    b.destroy();
  }
});
