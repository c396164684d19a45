import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import type { Tensor } from '../../../index.js';
import { roundToF16, scope } from '../../../index.js';
import type { AdamOptions, Optimizer, SgdOptions } from '../../../engine/optim/index.js';
import { Adam, AdamW, SGD } from '../../../engine/optim/index.js';
import { assertClose, testBothBackends } from '../../helpers/backends.js';
import type { AdamRefHyper, SgdRefHyper } from './helpers.js';
import { adamReference, hostRandom, param, setGradValues, sgdReference } from './helpers.js';

const N = 37; // not a multiple of the workgroup size
const STEPS = 5;
const rnd = hostRandom(7);
const P0 = Array.from({ length: N }, () => rnd() * 2);
// Gradients of mixed magnitude, including exact zeros, so eps and momentum paths both matter.
const GRADS = Array.from({ length: STEPS }, (_, t) => Array.from({ length: N }, (_, i) => (i % 9 === 0 ? 0 : rnd() * 10 ** ((i % 4) - 2 + t % 2))));

type Case =
  | { name: string; kind: 'sgd'; options: SgdOptions; ref: SgdRefHyper }
  | { name: string; kind: 'adam' | 'adamw'; options: AdamOptions; ref: AdamRefHyper };

const CASES: Case[] = [
  { name: 'SGD', kind: 'sgd', options: { lr: 0.1 }, ref: { lr: 0.1, momentum: 0, dampening: 0, nesterov: false, weightDecay: 0 } },
  { name: 'SGD momentum + dampening + weight decay', kind: 'sgd', options: { lr: 0.05, momentum: 0.9, dampening: 0.1, weightDecay: 0.01 }, ref: { lr: 0.05, momentum: 0.9, dampening: 0.1, nesterov: false, weightDecay: 0.01 } },
  { name: 'SGD nesterov', kind: 'sgd', options: { lr: 0.05, momentum: 0.8, nesterov: true, weightDecay: 0.1 }, ref: { lr: 0.05, momentum: 0.8, dampening: 0, nesterov: true, weightDecay: 0.1 } },
  { name: 'Adam with L2', kind: 'adam', options: { lr: 0.01, betas: [0.8, 0.99], eps: 1e-6, weightDecay: 0.1 }, ref: { lr: 0.01, beta1: 0.8, beta2: 0.99, eps: 1e-6, weightDecay: 0.1, decoupled: false } },
  { name: 'AdamW', kind: 'adamw', options: { lr: 0.01, weightDecay: 0.1 }, ref: { lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1, decoupled: true } },
];

function build(c: Case, params: Tensor[], precision: 'fp32' | 'mixed' = 'fp32'): Optimizer<any> {
  if (c.kind === 'sgd') return new SGD(params, { ...c.options, precision });
  return c.kind === 'adam' ? new Adam(params, { ...c.options, precision }) : new AdamW(params, { ...c.options, precision });
}

function reference(c: Case, p0: readonly number[], grads: readonly (readonly number[])[]): { p: number[]; state: Record<string, number[]> } {
  if (c.kind === 'sgd') {
    const r = sgdReference(p0, grads, c.ref);
    return { p: r.p, state: c.ref.momentum > 0 ? { momentum: r.buf } : {} };
  }
  const r = adamReference(p0, grads, c.ref);
  return { p: r.p, state: { m: r.m, v: r.v } };
}

// f32 kernels against f64 references over 5 steps: each step rounds a handful of operations to
// f32 (~6e-8 relative each), and Adam's m / sqrt(v) amplifies nothing, so 1e-5 relative with a
// 1e-6 absolute floor (values are O(1); Adam steps are O(lr)) is loose enough and still catches
// any wrong term (the smallest term, eps or dampening, changes results by > 1e-4).
for (const c of CASES) {
  testBothBackends(`${c.name}: fp32 update matches the f64 reference of the PyTorch rule`, async () => {
    await scope(async () => {
      const p = param(P0, [N], { label: 'w' });
      const opt = build(c, [p]);
      try {
        for (const g of GRADS) {
          setGradValues(p, g);
          opt.step();
        }
        const ref = reference(c, Array.from(P0, Math.fround), GRADS.map((g) => g.map(Math.fround)));
        assertClose(await p.toArray(), ref.p, 1e-5, 1e-6, `${c.name} params`);
        const st = opt.paramStates()[0]!;
        assert.deepEqual([...st.tensors.keys()], Object.keys(ref.state));
        for (const [k, v] of Object.entries(ref.state)) assertClose(await st.tensors.get(k)!.toArray(), v, 1e-5, 1e-9, `${c.name} state ${k}`);
        assert.equal(st.step, STEPS);
        assert.deepEqual([...await p.grad!.toArray()], GRADS[STEPS - 1]!.map(Math.fround), 'the optimizer only reads the grad');
      } finally {
        opt.dispose();
      }
    });
  });

  testBothBackends(`${c.name}: mixed precision updates the f32 master and writes its f16 rounding`, async () => {
    await scope(async () => {
      const p = param(P0, [N], { dtype: 'f16', label: 'w16' });
      const opt = build(c, [p], 'mixed');
      try {
        const grads16 = GRADS.map((g) => g.map(roundToF16));
        for (const g of grads16) {
          setGradValues(p, g);
          opt.step();
        }
        const ref = reference(c, P0.map(roundToF16), grads16);
        const st = opt.paramStates()[0]!;
        const master = await st.master!.toArray();
        assertClose(master, ref.p, 1e-5, 1e-6, `${c.name} master`);
        // The f16 param is exactly the master rounded to nearest even (WGSL's f16() rounds so on llvmpipe).
        assert.deepEqual([...await p.toArray()], Array.from(master, roundToF16));
      } finally {
        opt.dispose();
      }
    });
  });
}

testBothBackends('parameter groups: own lr and weight decay; setLrScale scales every group from its initial lr', async () => {
  await scope(async () => {
    const a = param(P0.slice(0, 5), [5], { label: 'a' }), b = param(P0.slice(5, 12), [7], { label: 'b' });
    const opt = new AdamW([{ params: [a] }, { params: [b], lr: 0.003, weightDecay: 0 }], { lr: 0.02, weightDecay: 0.5 });
    try {
      assert.deepEqual(opt.groups.map((g) => [g.lr, g.weightDecay, g.initialLr]), [[0.02, 0.5, 0.02], [0.003, 0, 0.003]]);
      opt.setLrScale(0.5);
      assert.deepEqual(opt.groups.map((g) => g.lr), [0.01, 0.0015]);
      for (const g of GRADS.slice(0, 3)) {
        setGradValues(a, g.slice(0, 5));
        setGradValues(b, g.slice(5, 12));
        opt.step();
      }
      const base = { beta1: 0.9, beta2: 0.999, eps: 1e-8, decoupled: true };
      const refA = adamReference(P0.slice(0, 5).map(Math.fround), GRADS.slice(0, 3).map((g) => g.slice(0, 5).map(Math.fround)), { ...base, lr: 0.01, weightDecay: 0.5 });
      const refB = adamReference(P0.slice(5, 12).map(Math.fround), GRADS.slice(0, 3).map((g) => g.slice(5, 12).map(Math.fround)), { ...base, lr: 0.0015, weightDecay: 0 });
      assertClose(await a.toArray(), refA.p, 1e-5, 1e-6, 'group 0');
      assertClose(await b.toArray(), refB.p, 1e-5, 1e-6, 'group 1');
    } finally {
      opt.dispose();
    }
  });
});

// Cross-check against torch.optim itself (Debian's python has torch 1.13); optional: skipped
// when that python or torch is missing.
const PYTHON = '/usr/bin/python3';
const hasTorch = existsSync(PYTHON) && spawnSync(PYTHON, ['-c', 'import torch'], { encoding: 'utf8' }).status === 0;

test('fp32 updates match torch.optim (SGD, Adam, AdamW, with clip_grad_norm_)', { skip: hasTorch ? false : `${PYTHON} with torch not available` }, async () => {
  const { CpuBackend } = await import('../../../index.js');
  const cpu = new CpuBackend();
  const script = new URL('../../../../test/fixtures/torch_optim.py', import.meta.url).pathname;
  const runs = CASES.flatMap((c) => [0, 0.5].map((maxNorm) => ({ c, maxNorm })));
  const specs = runs.map(({ c, maxNorm }) => ({
    kind: c.kind,
    hyper: c.kind === 'sgd'
      ? { lr: c.ref.lr, momentum: c.ref.momentum, dampening: c.ref.dampening, nesterov: c.ref.nesterov, weight_decay: c.ref.weightDecay }
      : { lr: c.ref.lr, betas: [c.ref.beta1, c.ref.beta2], eps: c.ref.eps, weight_decay: c.ref.weightDecay },
    p0: P0.map(Math.fround), grads: GRADS.map((g) => g.map(Math.fround)), max_norm: maxNorm,
  }));
  const r = spawnSync(PYTHON, [script], { input: JSON.stringify(specs), encoding: 'utf8' });
  assert.equal(r.status, 0, `torch failed: ${r.stderr}`);
  const torchResults = JSON.parse(r.stdout) as number[][];
  for (const [k, { c, maxNorm }] of runs.entries()) {
    const p = param(P0, [N], { device: cpu, label: 'w' });
    const opt = build(c, [p]);
    opt.maxGradNorm = maxNorm;
    for (const g of GRADS) {
      setGradValues(p, g);
      opt.step();
    }
    assertClose(await p.toArray(), torchResults[k]!, 1e-5, 1e-6, `${c.name} (maxNorm ${maxNorm}) vs torch`);
    opt.dispose();
  }
});
