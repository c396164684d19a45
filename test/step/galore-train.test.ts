/**
 * `step train --method galore`: the measured model state after the first step equals the
 * planner's GaLore prediction to the byte (fp32 and mixed), resume is exact across a projector
 * refresh, and GaLore's flags are checked like every other.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { presetConfig } from '../../models/config-presets.js';
import type { LlamaConfig } from '../../models/config.js';
import { galoreModelState } from '../../step/planner/galore.js';
import { parseTrainArgs } from '../../step/train/options.js';
import { train } from '../../step/train/trainer.js';
import { events, runOptions } from './run-fixtures.js';

const galore = (over = {}) => runOptions({ method: 'galore', galoreRank: 4, galoreUpdateGap: 3, ...over });

test('step train --method galore: model state after the first step = the planner\'s GaLore bytes, to the byte (fp32 and mixed)', async () => {
  for (const precision of ['fp32', 'mixed'] as const) {
    const o = galore({ steps: 2, warmupSteps: 1, precision, checkpointEvery: 0 });
    const r = await train(o);
    const mem = events(r.runDir, 'memory')[0]!;
    const config: LlamaConfig = { ...presetConfig(o.preset, o.configOverrides), vocab_size: o.vocabSize };
    const { bytes } = galoreModelState(config, { rank: 4, precision });
    assert.deepEqual(mem.measured, { parameter: bytes.parameter, frozen: 0, gradient: bytes.gradient, optimizer: bytes.optimizer }, precision);
    assert.equal(mem.match, true);
    // The optimizer bytes by hand: hidden 32, mlp 48, 2 layers, vocab 300 untied, rank 4.
    // q, k, v, o [32, 32]: m, v [32, 4] + projector [32, 4]; gate, up [48, 32]: m, v [48, 4] + projector [32, 4];
    // down [32, 48]: m, v [4, 48] + projector [32, 4]; embeddings and head [300, 32], 5 norms [32]: AdamW's m, v.
    const layer = 4 * (3 * 32 * 4) + 2 * (2 * 48 * 4 + 32 * 4) + (2 * 4 * 48 + 32 * 4);
    const adam = 2 * (2 * 300 * 32 + 5 * 32);
    const master = precision === 'mixed' ? 2 * 300 * 32 + 5 * 32 + 2 * (4 * 32 * 32 + 3 * 32 * 48) : 0;
    assert.equal(bytes.optimizer, 4 * (2 * layer + adam + master), `${precision}: the formula`);
  }
});

test('step train --method galore resumes exactly: stopped at step 4 (projector refreshed at steps 1, 4, 7), the losses of steps 5-9 repeat', async () => {
  const ref = await train(galore({ steps: 9 }));
  const lr = new Map(events(ref.runDir, 'train').map((e) => [e.step as number, e.loss as number]));
  const o = galore({ steps: 9, stopAfter: 4 });
  await train(o);
  const r = await train({ ...o, stopAfter: null }, 'r');
  const after = events(r.runDir, 'train').filter((e) => (e.step as number) > 4);
  assert.equal(after.length, 5);
  for (const e of after) assert.equal(e.loss, lr.get(e.step as number), `step ${e.step}`);
  assert.ok(lr.get(9)! < lr.get(1)!, `GaLore trains: loss ${lr.get(1)} -> ${lr.get(9)}`);
});

test('step train: GaLore flags only with --method galore, LoRA and STEP flags not with it, the rank within the model', () => {
  const refuse = (args: string[], re: RegExp) => assert.throws(() => parseTrainArgs(args), (e: Error) => re.test(e.message), args.join(' '));
  refuse(['--galore-rank', '8'], /--galore-rank is GaLore's and has no effect with --method vanilla/);
  refuse(['--method', 'step', '--galore-scale', '0.5'], /--galore-scale is GaLore's and has no effect with --method step/);
  refuse(['--method', 'galore', '--lora-rank', '8'], /--lora-rank has no effect with --method galore/);
  refuse(['--method', 'galore', '--galore-rank', '65'], /--galore-rank 65 is above 64, the smallest side/);
  refuse(['--method', 'galore', '--galore-update-gap', '0'], /--galore-update-gap must be/);
  const a = parseTrainArgs(['--method', 'galore', '--galore-update-gap', '50', '--galore-scale', '0.5']);
  assert.equal(a.options.galoreRank, 16, 'default rank: hidden/4 of tiny (64)');
  assert.equal(a.options.galoreUpdateGap, 50);
  assert.equal(a.options.galoreScale, 0.5);
});
