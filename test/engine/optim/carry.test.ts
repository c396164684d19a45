import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CpuBackend, fromArray, setDevice } from '../../../index.js';
import { AdamW } from '../../../engine/optim/index.js';

/** A parameter with a gradient set, on the cpu backend. */
function param(values: number[]) {
  const p = fromArray(values, [values.length], { category: 'parameter', label: `p${values.length}` });
  p.requiresGrad = true;
  return p;
}

test('releaseState + carry: the next optimizer adopts the moments and step count, so its updates equal one optimizer\'s', async () => {
  setDevice(new CpuBackend());
  const run = async (carry: boolean): Promise<number[]> => {
    const a = param([1, -2, 3]), b = param([0.5, 0.25]);
    const grad = () => { a.grad = fromArray([0.3, -0.1, 0.2], [3]); b.grad = fromArray([1, -1], [2]); };
    let opt = new AdamW([a, b], { lr: 0.1 });
    for (let i = 0; i < 3; i++) { grad(); opt.step(); opt.zeroGrad({ setToNone: true }); }
    if (carry) {
      // `a` trains on with a new optimizer (as STEP's embeddings do across a boundary); `b` stops
      const kept = await opt.releaseState([a]);
      assert.equal(kept[0]!.appliedSteps, 3);
      const before = opt.device.memory().live.optimizer;
      opt.dispose();
      assert.equal(opt.device.memory().live.optimizer, before - 2 * 2 * 4, "only b's m and v are freed");
      opt = new AdamW([a], { lr: 0.1, carry: kept });
      assert.equal(opt.device.memory().live.optimizer, before - 2 * 2 * 4, 'nothing allocated again for a');
    }
    for (let i = 0; i < 2; i++) { a.grad = fromArray([0.3, -0.1, 0.2], [3]); opt.step(); opt.zeroGrad({ setToNone: true }); }
    assert.equal(opt.paramStates().find((s) => s.param === a)!.step, 5);
    const out = Array.from(await a.toArray());
    opt.dispose();
    return out;
  };
  assert.deepEqual(await run(true), await run(false));
});

test('carry: state of a tensor that is not a parameter of the new optimizer is refused, naming it', async () => {
  setDevice(new CpuBackend());
  const a = param([1, 2]), b = param([3, 4, 5]);
  const opt = new AdamW([a, b], { lr: 0.1 });
  const kept = await opt.releaseState([a]);
  await assert.rejects(opt.releaseState([a]), /is not a parameter of this optimizer \(or was released already\)/);
  assert.throws(() => new AdamW([b], { lr: 0.1, carry: kept }), /carried state for tensor "p2" \[2\], which is not a parameter of this optimizer/);
  opt.dispose();
});
