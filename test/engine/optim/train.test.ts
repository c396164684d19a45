import assert from 'node:assert/strict';
import { scope } from '../../../index.js';
import type { Optimizer } from '../../../engine/optim/index.js';
import { AdamW, SGD, warmupCosineSchedule } from '../../../engine/optim/index.js';
import { testBothBackends } from '../../helpers/backends.js';
import { hostRandom, param, setGradValues } from './helpers.js';

// Least squares: loss(w) = |Xw - y|^2 / (2n), gradient X^T (Xw - y) / n, both computed on the host
// from the parameter values read back each step (a test-side stand-in for autograd).
const n = 32, d = 4;
const rnd = hostRandom(3);
const X = Array.from({ length: n }, () => Array.from({ length: d }, () => rnd()));
const W_TRUE = [1, -2, 0.5, 3];
const Y = X.map((row) => row.reduce((a, x, j) => a + x * W_TRUE[j]!, 0));

function lossAndGrad(w: ArrayLike<number>): { loss: number; grad: number[] } {
  const grad = new Array<number>(d).fill(0);
  let loss = 0;
  X.forEach((row, i) => {
    const r = row.reduce((a, x, j) => a + x * w[j]!, 0) - Y[i]!;
    loss += r * r / (2 * n);
    row.forEach((x, j) => { grad[j]! += x * r / n; });
  });
  return { loss, grad };
}

const STEPS = 200;
const TARGET = 1e-4; // from ~2.4 at w = 0; f16 rounding of w alone costs ~1e-6
const schedule = warmupCosineSchedule({ warmupSteps: 10, totalSteps: STEPS, minRatio: 0.05 });

const CASES: { name: string; make: (w: ReturnType<typeof param>, mixed: boolean) => Optimizer<any> }[] = [
  { name: 'AdamW', make: (w, mixed) => new AdamW([w], { lr: 0.2, weightDecay: 0, precision: mixed ? 'mixed' : 'fp32', maxGradNorm: 5, lossScaling: mixed ? { growthInterval: 20 } : false }) },
  { name: 'SGD momentum', make: (w, mixed) => new SGD([w], { lr: 0.5, momentum: 0.9, precision: mixed ? 'mixed' : 'fp32', lossScaling: mixed ? { growthInterval: 20 } : false }) },
];

for (const c of CASES) {
  for (const mixed of [false, true]) {
    testBothBackends(`${c.name} ${mixed ? 'mixed precision with dynamic loss scaling' : 'fp32'} fits least squares to loss < ${TARGET}`, async () => {
      await scope(async () => {
        const w = param(new Float32Array(d), [d], { dtype: mixed ? 'f16' : 'f32', label: 'w' });
        const opt = c.make(w, mixed);
        try {
          const first = lossAndGrad(await w.toArray()).loss;
          let overflows = 0, maxScale = 0;
          for (let t = 0; t < STEPS; t++) {
            opt.setLrScale(schedule(t));
            const { grad } = lossAndGrad(await w.toArray());
            const scale = opt.lossScaler ? await opt.lossScaler.readScale() : 1;
            maxScale = Math.max(maxScale, scale);
            setGradValues(w, grad.map((g) => g * scale));
            opt.step();
            if (opt.lossScaler && await opt.lossScaler.overflowed()) overflows++;
          }
          const last = lossAndGrad(await w.toArray()).loss;
          assert.ok(first > 1, `initial loss ${first}`);
          assert.ok(last < TARGET, `final loss ${last} (from ${first})`);
          if (mixed) {
            // The scaler starts at 2^16, where the first scaled gradients (|g| > 1) overflow f16, so it
            // backs off; as the gradients shrink it grows (every 20 good steps) far past 2^16.
            assert.ok(overflows >= 1, `the loss scaler backed off ${overflows} times`);
            assert.ok(maxScale >= 2 ** 20, `the scale grew to ${maxScale}`);
          }
        } finally {
          opt.dispose();
        }
      });
    });
  }
}
