/**
 * The planner's GaLore model state (step/planner/galore.ts) against bytes written out by hand,
 * at the target (350m, mixed precision, rank 256), and in `step plan --mode engine`.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { presetConfig } from '../../models/config-presets.js';
import { galoreModelState, maxGaloreRank } from '../../step/planner/galore.js';
import { engineCostModel } from '../../step/planner/costs.js';
import { plan } from '../../step/commands/plan.js';
import { captureStdout } from './run-fixtures.js';

test('GaLore at 350m, mixed precision, rank 256: the optimizer bytes by hand', () => {
  const c = presetConfig('350m'); // h 1024, f 2736, 24 layers, vocab 32000, untied head
  const r = 256, h = 1024, f = 2736, L = 24, V = 32000;
  // q, k, v, o [1024, 1024]: right side, m and v [1024, r], projector [1024, r];
  // gate, up [2736, 1024]: right, m and v [2736, r], projector [1024, r]; down [1024, 2736]: left, m and v [r, 2736], projector [1024, r].
  const projectedPerLayer = 4 * (2 * h * r + h * r) + 2 * (2 * f * r + h * r) + (2 * r * f + h * r);
  const layerParams = 4 * h * h + 3 * h * f + 2 * h;
  const outer = 2 * V * h + h;
  const adamOuter = 2 * (outer + 2 * h * L); // m, v of embeddings, head, final norm and the layers' norms
  const master = L * layerParams + outer;
  const expected = 4 * (L * projectedPerLayer + adamOuter + master);
  const s = galoreModelState(c, { rank: r, precision: 'mixed' });
  assert.equal(s.bytes.optimizer, expected);
  assert.equal(s.bytes.parameter, 2 * (L * layerParams + outer));
  assert.equal(s.bytes.gradient, s.bytes.parameter);
  assert.equal(s.bytes.frozen, 0);
  assert.equal(s.bytes.total, s.tensors.reduce((a, t) => a + t.bytes, 0));
  const vanilla = engineCostModel(c, 1, 'mixed').vanilla;
  assert.ok(s.bytes.total < vanilla.total, 'less than vanilla');
  assert.equal(s.tensors.filter((t) => t.role === 'galore.projector').length, 7 * L);
});

test('GaLore model state refuses a rank beyond the smallest linear side, and an unknown precision', () => {
  const c = presetConfig('tiny');
  assert.equal(maxGaloreRank(c), 64);
  assert.throws(() => galoreModelState(c, { rank: 65, precision: 'fp32' }), /rank 65 must be an integer in 1\.\.64/);
  assert.throws(() => galoreModelState(c, { rank: 8, precision: 'bf16' as 'fp32' }), /unknown precision "bf16"/);
  assert.throws(() => galoreModelState(c, { rank: 8, precision: 'fp32', modules: [] }), /non-empty list of attn, mlp/);
  const attnOnly = galoreModelState(c, { rank: 8, precision: 'fp32', modules: ['attn'] });
  assert.equal(attnOnly.tensors.filter((t) => t.role === 'galore.projector').length, 4 * c.num_hidden_layers);
});

test('step plan --mode engine prints GaLore beside vanilla and STEP; --json carries its bytes; paper mode refuses --galore-rank', async () => {
  const { out } = await captureStdout(() => plan(['--preset', '350m', '--stages', '2', '--mode', 'engine', '--galore-rank', '256']));
  const bytes = galoreModelState(presetConfig('350m'), { rank: 256, precision: 'mixed' }).bytes.total;
  assert.ok(out.includes(`GaLore baseline, rank 256 (every layer trains; its 7 linears projected): ${bytes.toLocaleString('en-US')} B`), out);
  const { out: json } = await captureStdout(() => plan(['--preset', 'tiny', '--stages', '2', '--mode', 'engine', '--json']));
  const parsed = JSON.parse(json) as { galore: { rank: number; bytes: { total: number } } };
  assert.equal(parsed.galore.rank, 16, 'default rank hidden/4');
  assert.equal(parsed.galore.bytes.total, galoreModelState(presetConfig('tiny'), { rank: 16, precision: 'mixed' }).bytes.total);
  await assert.rejects(plan(['--preset', 'tiny', '--stages', '2', '--galore-rank', '8']), /--galore-rank applies to --mode engine only/);
});
