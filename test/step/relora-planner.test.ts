/**
 * The planner's ReLoRA model state (step/planner/relora.ts) against bytes written out by hand at
 * 350m (mixed precision, ReLoRA's rank 128), and in `step plan --mode engine`.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { countParameters } from '../../models/config-params.js';
import { presetConfig } from '../../models/config-presets.js';
import { engineCostModel } from '../../step/planner/costs.js';
import { reloraModelState } from '../../step/planner/relora.js';
import { plan } from '../../step/commands/plan.js';
import { captureStdout } from './run-fixtures.js';

test('ReLoRA at 350m, mixed precision, rank 128: each phase by hand; the whole-run peak is the warm start, vanilla\'s', () => {
  const c = presetConfig('350m'); // h 1024, f 2736, 24 layers, vocab 32000, untied head
  const r = 128, h = 1024, f = 2736, L = 24, V = 32000;
  const layerParams = 4 * h * h + 3 * h * f + 2 * h;
  const adapterParams = r * (4 * (h + h) + 3 * (h + f)); // lora_A [r, in] + lora_B [out, r] on q, k, v, o, gate, up, down
  const outer = 2 * V * h + h; // embeddings, head, final norm: they train on
  const trainable = L * adapterParams + outer;
  const s = reloraModelState(c, { rank: r, precision: 'mixed' });
  assert.deepEqual(s.lora, { parameter: 2 * trainable, frozen: 2 * L * layerParams, gradient: 2 * trainable, optimizer: 12 * trainable, total: 16 * trainable + 2 * L * layerParams });
  assert.deepEqual(s.switch, { parameter: 2 * trainable, frozen: 2 * L * layerParams, gradient: 0, optimizer: 0, total: 2 * trainable + 2 * L * layerParams });
  assert.deepEqual(s.warmStart, engineCostModel(c, r, 'mixed').vanilla);
  assert.equal(s.peak, s.warmStart.total);
  assert.equal(s.peakAt, 'warm start');
  assert.equal(s.loraTensors.reduce((a, t) => a + t.bytes, 0), s.lora.total);
  assert.equal(s.loraTensors.filter((t) => /lora_[AB]$/.test(t.param) && t.role === 'weight').length, 14 * L);
  assert.ok(s.lora.total < 0.6 * s.warmStart.total, 'the LoRA phase is far below vanilla');
});

test('ReLoRA in fp32: 4 bytes per frozen weight, 16 per trainable one; a bad rank or precision is refused', () => {
  const c = presetConfig('tiny');
  const fp32 = reloraModelState(c, { rank: 8, precision: 'fp32' });
  assert.equal(fp32.lora.frozen, 4 * c.num_hidden_layers * countParameters(c).perLayer.total);
  assert.equal(fp32.lora.optimizer, 2 * fp32.lora.parameter, 'm and v, no master');
  assert.throws(() => reloraModelState(c, { rank: 65, precision: 'fp32' }), /ReLoRA model state: LoRA: rank 65 must be an integer in 1\.\.64/);
  assert.throws(() => reloraModelState(c, { rank: 8, precision: 'bf16' as 'fp32' }), /unknown precision "bf16"/);
});

test('step plan --mode engine prints ReLoRA beside vanilla, STEP and GaLore; --relora-rank; --json carries its phases; paper mode refuses it', async () => {
  const c = presetConfig('350m');
  const { out } = await captureStdout(() => plan(['--preset', '350m', '--stages', '3', '--precision', 'mixed', '--relora-rank', '128']));
  const s = reloraModelState(c, { rank: 128, precision: 'mixed' });
  const int = (n: number): string => n.toLocaleString('en-US');
  assert.ok(out.includes(`ReLoRA baseline, LoRA rank 128 (full-rank warm start, then every layer frozen with adapters): whole-run peak ${int(s.peak)} B`), out);
  assert.ok(out.includes(`in its full-rank warm start (vanilla's), 0.00% below vanilla; LoRA phase ${int(s.lora.total)} B`), out);
  assert.match(out, /GaLore baseline, rank 256/);
  const { out: json } = await captureStdout(() => plan(['--preset', 'tiny', '--stages', '2', '--rank', '4', '--precision', 'fp32', '--json']));
  const parsed = JSON.parse(json) as { relora: { rank: number; lora: { total: number }; peak: number; peakAt: string } };
  assert.equal(parsed.relora.rank, 4, 'default: --rank, as step train\'s --lora-rank serves STEP and ReLoRA');
  assert.equal(parsed.relora.lora.total, reloraModelState(presetConfig('tiny'), { rank: 4, precision: 'fp32' }).lora.total);
  assert.equal(parsed.relora.peakAt, 'warm start');
  await assert.rejects(plan(['--preset', 'tiny', '--stages', '2', '--mode', 'paper', '--relora-rank', '8']), /--relora-rank applies to --mode engine only/);
});
