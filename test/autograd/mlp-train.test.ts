import assert from 'node:assert/strict';
import type { Tensor } from '../../index.js';
import { fromArray, keep, randn, scope, Generator } from '../../index.js';
import * as A from '../../autograd/index.js';
import { AdamW } from '../../engine/optim/adam.js';
import { testBothBackends } from '../helpers/backends.js';

/** y = sin(x0) + x1^2 / 2 on 64 points: a 2-layer MLP (16 SiLU units) fits it with autograd + AdamW. */
for (const precision of ['fp32', 'mixed'] as const) {
  testBothBackends(`autograd + AdamW train a small MLP to a fixed loss (${precision})`, async (device) => {
    const g = new Generator(3);
    const n = 64;
    const xs: number[] = [], ys: number[] = [];
    for (let i = 0; i < n; i++) {
      const a = Math.sin(i * 12.9898) * 2, b = Math.cos(i * 78.233) * 2;
      xs.push(a, b);
      ys.push(Math.sin(a) + (b * b) / 2);
    }
    const dtype = precision === 'mixed' ? 'f16' : 'f32';
    const param = (shape: number[], std: number) => {
      const t = keep(randn(shape, { std, generator: g, dtype, category: 'parameter' }));
      t.requiresGrad = true;
      return t;
    };
    const w1 = param([16, 2], 0.7), b1 = param([16], 0.1), w2 = param([1, 16], 0.3), b2 = param([1], 0.1);
    const opt = new AdamW([w1, b1, w2, b2], { lr: 0.03, weightDecay: 0, precision, lossScaling: precision === 'mixed' });
    const x = keep(fromArray(xs, [n, 2], { dtype })), y = keep(fromArray(ys, [n, 1])); // targets and loss in f32
    const lossOf = (): Tensor => {
      const h = A.silu(A.add(A.matmul(x, w1, { transB: true }), b1));
      const out = A.add(A.matmul(h, w2, { transB: true }), b2);
      return A.mean(A.square(A.sub(A.cast(out, 'f32'), y)));
    };
    let first = 0, last = 0;
    for (let step = 0; step < 300; step++) {
      last = await scope(async () => {
        const loss = lossOf();
        if (opt.lossScaler) A.backward(opt.lossScaler.scaleLoss(loss));
        else A.backward(loss);
        opt.step();
        opt.zeroGrad();
        return loss.item();
      });
      if (step === 0) first = last;
    }
    // the variance of y is about 1.3; a fitted MLP gets well below 0.05
    assert.ok(last < 0.05, `${precision} on ${device.name}: loss ${first} -> ${last}`);
    opt.dispose();
    for (const t of [w1, b1, w2, b2]) { t.grad?.dispose(); t.dispose(); }
    x.dispose(); y.dispose();
  });
}
