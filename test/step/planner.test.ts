import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import type { LlamaConfig } from '../../models/config.js';
import { makeConfig, stringifyConfig } from '../../models/config.js';
import { countParameters, layerLinears, loraParamsPerLayer, maxLoraRank } from '../../models/config-params.js';
import { presetConfig } from '../../models/config-presets.js';
import type { Precision, StageCost } from '../../step/planner/index.js';
import {
  engineCostModel, evaluateSplit, listStageTensors, outerTensors, paperCostModel, paperTable, planStages, solveSplit, sumByCategory, transitionBytes,
} from '../../step/planner/index.js';

/** All splits of L into K positive parts, in lexicographic order. */
function compositions(L: number, K: number): number[][] {
  if (K === 1) return [[L]];
  const out: number[][] = [];
  for (let n = 1; n <= L - (K - 1); n++) for (const rest of compositions(L - n, K - 1)) out.push([n, ...rest]);
  return out;
}

function bruteForce(L: number, K: number, cost: StageCost): { peak: number; optimal: number[][] } {
  const all = compositions(L, K).map((s) => ({ s, peak: evaluateSplit(s, cost).peak }));
  const peak = Math.min(...all.map((a) => a.peak));
  return { peak, optimal: all.filter((a) => a.peak === peak).map((a) => a.s) };
}

const lexCompare = (a: number[], b: number[]): number => {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return 0;
};

function checkAgainstBruteForce(L: number, K: number, cost: StageCost): void {
  const got = solveSplit(L, K, cost);
  const want = bruteForce(L, K, cost);
  assert.equal(got.peak, want.peak, `least peak, L=${L} K=${K}`);
  assert.equal(got.split.reduce((a, b) => a + b, 0), L);
  assert.equal(got.split.length, K);
  assert.deepEqual(got, evaluateSplit(got.split, cost));
  // Ties: the lexicographically largest optimal split.
  assert.deepEqual(got.split, want.optimal.sort(lexCompare).at(-1));
}

test('solveSplit = brute force on arbitrary cost tables (many ties), and picks the lexicographically largest optimum', () => {
  fc.assert(fc.property(
    fc.integer({ min: 1, max: 9 }).chain((L) => fc.tuple(fc.constant(L), fc.integer({ min: 1, max: L }),
      fc.array(fc.integer({ min: 0, max: 12 }), { minLength: L * L, maxLength: L * L }))),
    ([L, K, table]) => checkAgainstBruteForce(L, K, (n, prev) => table[prev * L + n - 1]!),
  ), { numRuns: 300 });
});

test("solveSplit = brute force on the paper's programme for random P, E, L <= 14, K <= 5", () => {
  fc.assert(fc.property(
    fc.integer({ min: 1, max: 14 }).chain((L) => fc.tuple(fc.constant(L), fc.integer({ min: 1, max: Math.min(5, L) }),
      fc.integer({ min: 1, max: 10_000_000 }), fc.integer({ min: 0, max: 10_000_000 }))),
    ([L, K, P, E]) => {
      const m = paperCostModel(P, E, L);
      checkAgainstBruteForce(L, K, m.cost);
      for (let prev = 0; prev < L; prev++) for (let n = 1; n + prev <= L; n++) assert.equal(m.breakdown(n, prev).total, m.cost(n, prev));
      assert.equal(m.vanilla.total, 16 * L * P);
    },
  ), { numRuns: 200 });
});

test('the optimum is found for L = 100, K = 8 in both modes (generous time bound)', () => {
  const t0 = performance.now();
  const P = 12_601_344, E = 4_984_832;
  const paper = solveSplit(100, 8, paperCostModel(P, E, 100).cost);
  assert.equal(paper.split.reduce((a, b) => a + b, 0), 100);
  const engine = planStages({ config: presetConfig('350m', { num_hidden_layers: 100 }), stages: 8, mode: 'engine' });
  assert.equal(engine.stages.length, 8);
  assert.ok(performance.now() - t0 < 5000, `took ${performance.now() - t0} ms`);
  // A local check of optimality at this size: moving one layer between any two stages never lowers the peak.
  const cost = paperCostModel(P, E, 100).cost;
  for (let i = 0; i < 8; i++) for (let j = 0; j < 8; j++) {
    if (i === j || paper.split[i]! === 1) continue;
    const s = [...paper.split];
    s[i]!--; s[j]!++;
    assert.ok(evaluateSplit(s, cost).peak >= paper.peak);
  }
});

test('paper mode, 350m, K = 3, rank 256: numbers by hand', () => {
  const P = 4 * 1024 ** 2 + 3 * 1024 * 2736 + 2 * 1024; // 12,601,344
  const E = 256 * (4 * 2 * 1024 + 3 * (1024 + 2736)); // 4,984,832
  const p = planStages({ config: presetConfig('350m'), stages: 3, rank: 256 });
  assert.equal(p.layerParams, P);
  assert.equal(p.loraParams, E);
  assert.deepEqual(p.split, [14, 7, 3]);
  assert.deepEqual(p.stages.map((s) => s.bytes.total), [16 * 14 * P, 16 * 7 * P + 2 * 14 * P + 16 * 14 * E, 16 * 3 * P + 2 * 21 * P + 16 * 21 * E]);
  assert.equal(p.peak, 2_880_790_528);
  assert.equal(p.peakStage, 2);
  assert.equal(p.vanilla.total, 16 * 24 * P);
  assert.equal(p.reduction, 1 - p.peak / (16 * 24 * P));
  // Categories as mixed precision: 2 + 2 + 12 per trainable, 2 per frozen.
  const s2 = p.stages[1]!;
  assert.deepEqual(s2.bytes, { parameter: 2 * (7 * P + 14 * E), frozen: 2 * 14 * P, gradient: 2 * (7 * P + 14 * E), optimizer: 12 * (7 * P + 14 * E), total: s2.bytes.total });
  const k1 = planStages({ config: presetConfig('350m'), stages: 1 });
  assert.deepEqual(k1.split, [24]);
  assert.equal(k1.reduction, 0);
});

/** Random small valid configs, grouped-query attention and tied embeddings included. */
const configArb: fc.Arbitrary<LlamaConfig> = fc.record({
  heads: fc.constantFrom(1, 2, 4), kvDiv: fc.constantFrom(1, 2, 4), halfHead: fc.integer({ min: 1, max: 4 }),
  f: fc.integer({ min: 1, max: 40 }), layers: fc.integer({ min: 1, max: 7 }), vocab: fc.integer({ min: 1, max: 50 }), tie: fc.boolean(),
}).map(({ heads, kvDiv, halfHead, f, layers, vocab, tie }) => makeConfig({
  hidden_size: heads * 2 * halfHead, intermediate_size: f, num_hidden_layers: layers, num_attention_heads: heads,
  num_key_value_heads: heads % kvDiv === 0 ? heads / kvDiv : heads, vocab_size: vocab, tie_word_embeddings: tie,
  bos_token_id: undefined, eos_token_id: undefined,
}));

const stageArb = configArb.chain((c) => fc.record({
  c: fc.constant(c),
  split: fc.integer({ min: 1, max: c.num_hidden_layers }).chain((K) => fc.constantFrom(...compositions(c.num_hidden_layers, K))),
  rank: fc.integer({ min: 1, max: maxLoraRank(c) }),
  precision: fc.constantFrom<Precision>('fp32', 'mixed'),
  trainEmbeddings: fc.boolean(),
}));

function hfNames(c: LlamaConfig, layers: number): string[] {
  const names = ['model.embed_tokens.weight'];
  for (let i = 0; i < layers; i++) {
    for (const m of ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.o_proj', 'mlp.gate_proj', 'mlp.up_proj', 'mlp.down_proj']) names.push(`model.layers.${i}.${m}.weight`);
    names.push(`model.layers.${i}.input_layernorm.weight`, `model.layers.${i}.post_attention_layernorm.weight`);
  }
  names.push('model.norm.weight');
  if (!c.tie_word_embeddings) names.push('lm_head.weight');
  return names;
}

test('tensor listing: every stage by an independent count (trainable 16 B, frozen 4 or 2 B), HF names, LoRA shapes, dtypes', () => {
  fc.assert(fc.property(stageArb, ({ c, split, rank, precision, trainEmbeddings }) => {
    const counts = countParameters(c);
    const P = counts.perLayer.total, E = loraParamsPerLayer(c, rank);
    const outer = counts.embeddings + counts.finalNorm + counts.head;
    const frozenBytes = precision === 'mixed' ? 2 : 4;
    let prev = 0;
    for (const [i, n] of split.entries()) {
      const stage = i + 1;
      const list = listStageTensors(c, { split, stage, rank, precision, trainEmbeddings });
      const outerTrains = stage === 1 || trainEmbeddings;
      const trainable = n * P + prev * E + (outerTrains ? outer : 0);
      const frozen = prev * P + (outerTrains ? 0 : outer);
      const sums = sumByCategory(list);
      assert.equal(sums.total, 16 * trainable + frozenBytes * frozen);
      assert.equal(sums.frozen, frozenBytes * frozen);
      assert.equal(sums.parameter, (precision === 'mixed' ? 2 : 4) * trainable);
      assert.equal(sums.gradient, sums.parameter);
      assert.equal(sums.optimizer, (precision === 'mixed' ? 12 : 8) * trainable);
      // The engine cost model (used by the solver) equals the sum of the listing.
      assert.deepEqual(engineCostModel(c, rank, precision, trainEmbeddings).breakdown(n, prev), sums);
      // Weights: the HF state dict of an (N_s)-layer model, plus one LoRA pair per frozen linear.
      const weights = list.filter((t) => t.role === 'weight');
      const base = weights.filter((t) => !/lora_[AB]$/.test(t.param)).map((t) => t.param);
      assert.deepEqual(base, hfNames(c, prev + n));
      assert.equal(weights.filter((t) => t.param.endsWith('lora_A')).length, 7 * prev);
      const shapes = new Map(weights.map((t) => [t.param, t.shape]));
      for (const t of weights.filter((w) => w.param.endsWith('lora_A'))) {
        const [out, inF] = shapes.get(t.param.replace('lora_A', 'weight'))!;
        assert.deepEqual(t.shape, [rank, inF]);
        assert.deepEqual(shapes.get(t.param.replace('lora_A', 'lora_B')), [out, rank]);
        assert.equal(shapes.get(t.param.replace('lora_A', 'weight')) && weights.find((w) => w.param === t.param.replace('lora_A', 'weight'))!.category, 'frozen');
      }
      const keys = new Set(list.map((t) => `${t.param}|${t.role}`));
      assert.equal(keys.size, list.length, 'no tensor listed twice');
      for (const t of list) {
        assert.equal(t.bytes, t.shape.reduce((a, b) => a * b, 1) * (t.dtype === 'f16' ? 2 : 4));
        const low = precision === 'mixed' ? 'f16' : 'f32';
        const want = { weight: low, grad: low, 'adam.m': 'f32', 'adam.v': 'f32', 'adam.master': 'f32' }[t.role];
        assert.equal(t.dtype, want, `${t.param} ${t.role}`);
        if (t.role === 'adam.master') assert.equal(precision, 'mixed');
        if (t.category === 'frozen') assert.ok(!keys.has(`${t.param}|grad`), `frozen ${t.param} has no gradient`);
      }
      prev += n;
    }
    const vanilla = sumByCategory(listStageTensors(c, { split: [c.num_hidden_layers], stage: 1, rank, precision }));
    assert.equal(vanilla.total, 16 * counts.total);
    assert.deepEqual(engineCostModel(c, rank, precision, trainEmbeddings).vanilla, vanilla);
  }), { numRuns: 150 });
});

test('tensor listing: newLayers places the trainable layers; totals do not move; bad positions are errors', () => {
  const c = presetConfig('tiny', { num_hidden_layers: 6 });
  const base = { split: [3, 3], stage: 2, rank: 4, precision: 'mixed' as const };
  const top = listStageTensors(c, base);
  const mixed = listStageTensors(c, { ...base, newLayers: [1, 3, 5] });
  assert.deepEqual(sumByCategory(mixed), sumByCategory(top));
  const trainableLayers = (l: typeof top) => [...new Set(l.filter((t) => t.category === 'parameter' && /weight$/.test(t.param) && t.role === 'weight')
    .map((t) => /layers\.(\d+)\./.exec(t.param)?.[1]).filter((x) => x !== undefined))].map(Number);
  assert.deepEqual(trainableLayers(top), [3, 4, 5]);
  assert.deepEqual(trainableLayers(mixed), [1, 3, 5]);
  assert.throws(() => listStageTensors(c, { ...base, newLayers: [1, 1, 5] }), /newLayers \[1,1,5\] must be 3 distinct layer indices in 0..5/);
  assert.throws(() => listStageTensors(c, { ...base, newLayers: [6, 1, 2] }), /must be 3 distinct/);
  assert.throws(() => listStageTensors(c, { ...base, stage: 3 }), /stage 3 must be an integer in 1..2/);
  assert.throws(() => listStageTensors(c, { ...base, precision: 'bf16' as Precision }), /unknown precision "bf16"; valid: fp32, mixed/);
});

test('planStages engine mode: stage bytes are the listing sums, the peak their max, fp32 and frozen embeddings too', () => {
  for (const precision of ['fp32', 'mixed'] as const) for (const trainEmbeddings of [true, false]) {
    const config = presetConfig('small');
    const p = planStages({ config, stages: 3, mode: 'engine', precision, trainEmbeddings, rank: 8 });
    const m = engineCostModel(config, 8, precision, trainEmbeddings);
    assert.deepEqual(p.split, solveSplit(6, 3, m.cost).split);
    assert.deepEqual(p.stages.map((s) => s.bytes.total), evaluateSplit(p.split, m.cost).stageCosts);
    assert.equal(p.peak, Math.max(...p.stages.map((s) => s.bytes.total)));
    assert.equal(p.vanilla.total, 16 * countParameters(config).total);
    assert.equal(p.optimal, true);
  }
});

test('planStages engine mode: transitions hold weights (and the kept Adam state of what trains on), never above the stage after them; the peak is the max over stages and transitions', () => {
  const presets = ['tiny', 'small', '350m'] as const;
  fc.assert(fc.property(fc.constantFrom(...presets), fc.integer({ min: 2, max: 4 }), fc.constantFrom('fp32' as const, 'mixed' as const), fc.boolean(), fc.integer({ min: 1, max: 8 }), fc.boolean(), fc.boolean(),
    (preset, K, precision, trainEmbeddings, rank, pet, carryOptimizer) => {
      const config = presetConfig(preset);
      const p = planStages({ config, stages: K, mode: 'engine', precision, trainEmbeddings, rank, pet, carryOptimizer });
      assert.equal(p.transitions.length, K - 1);
      // kept across a boundary: the Adam state of embeddings, norm and head when they train on
      const kept = carryOptimizer && trainEmbeddings ? sumByCategory(outerTensors(config, true, precision).filter((t) => t.role.startsWith('adam.'))).optimizer : 0;
      for (const t of p.transitions) {
        const into = p.stages[t.intoStage - 1]!.bytes;
        assert.equal(t.bytes.gradient, 0, 'no gradient during growth');
        assert.equal(t.bytes.optimizer, kept, 'only the kept optimizer state during growth');
        assert.ok(t.bytes.total <= into.total, `transition into stage ${t.intoStage} (${t.bytes.total}) <= that stage (${into.total})`);
        // after the freeze the weights are exactly the next stage's
        assert.ok(t.bytes.total >= into.parameter + into.frozen + kept);
      }
      const all = [...p.stages.map((s) => s.bytes.total), ...p.transitions.map((t) => t.bytes.total)];
      assert.equal(p.peak, Math.max(...all));
      assert.equal(p.reduction, 1 - p.peak / p.vanilla.total);
    }), { numRuns: 60 });
  // the three moments, by hand: tiny [2, 2], fp32, rank 4
  const c = presetConfig('tiny', { num_hidden_layers: 4 });
  const spec = { split: [2, 2], stage: 2, rank: 4, precision: 'fp32' as const, carryOptimizer: false };
  const w = (stage: number) => sumByCategory(listStageTensors(c, { split: spec.split, rank: spec.rank, precision: spec.precision, stage }).filter((t) => t.role === 'weight'));
  const t = transitionBytes(c, spec);
  assert.deepEqual(t.bytes, w(2));
  assert.equal(t.moment, 'after freeze');
  assert.ok(w(1).total < w(2).total);
  // paper mode counts stages only, as the paper defines it
  const paper = planStages({ config: presetConfig('350m'), stages: 3 });
  assert.deepEqual(paper.transitions, []);
  assert.equal(paper.peakAt, 'stage');
});

test('planStages: a given split is evaluated against the optimum; bad input gives clear errors', () => {
  const config = presetConfig('350m');
  const p = planStages({ config, split: [12, 6, 6] });
  assert.deepEqual(p.split, [12, 6, 6]);
  assert.equal(p.optimal, false);
  assert.ok(p.optimalPeak < p.peak);
  assert.deepEqual(p.optimalSplit, [14, 7, 3]);
  assert.equal(planStages({ config, split: [14, 7, 3], stages: 3 }).optimal, true);
  const bad: [Parameters<typeof planStages>[0], RegExp][] = [
    [{ config, split: [12, 6, 5] }, /split \[12,6,5\] sums to 23, but the model has 24 layers/],
    [{ config, split: [12, 6, 6], stages: 2 }, /has 3 stages but K = 2/],
    [{ config, split: [24, 0] }, /split \[24,0\] has 0; every stage adds a positive integer/],
    [{ config, stages: 25 }, /K = 25 stages cannot each add at least one of the 24 layers; use K <= 24/],
    [{ config, stages: 0 }, /K must be an integer >= 1, got 0/],
    [{ config, stages: 2.5 }, /K must be an integer >= 1, got 2.5/],
    [{ config }, /give the number of stages K or a split/],
    [{ config, stages: 2, rank: 1025 }, /rank 1025 must be an integer in 1..1024/],
    [{ config, stages: 2, rank: 0 }, /rank 0 must be an integer in 1..1024/],
    [{ config: presetConfig('tiny', { num_key_value_heads: 1 }), stages: 2, rank: 32 }, /rank 32 must be an integer in 1..16 .*k\/v width 16/],
    [{ config, stages: 2, mode: 'vanilla' as 'paper' }, /unknown mode "vanilla"; valid: paper, engine/],
    [{ config, stages: 2, precision: 'fp32' }, /precision "fp32" applies to engine mode only/],
    [{ config, stages: 2, mode: 'engine', precision: 'bf16' as Precision }, /unknown precision "bf16"; valid: fp32, mixed/],
    [{ config, stages: 2, trainEmbeddings: false }, /engine mode only/],
  ];
  for (const [o, re] of bad) assert.throws(() => planStages(o), re, re.source);
});

test('paperTable: one row per preset and K, each equal to planStages', () => {
  const md = paperTable();
  const rows = md.split('\n').filter((l) => /^\| (350m|680m|1b) /.test(l));
  assert.equal(rows.length, 9);
  for (const row of rows) {
    const cells = row.split('|').slice(1, -1).map((x) => x.trim());
    const p = planStages({ config: presetConfig(cells[0]!), stages: Number(cells[5]) });
    assert.equal(cells[3], String(p.rank));
    assert.equal(cells[6], p.split.join(', '));
    assert.equal(cells[7], `${(p.peak / 1e9).toFixed(2)} (${p.peakStage})`);
    assert.equal(cells[8], `${(100 * p.reduction).toFixed(1)}%`);
  }
  assert.match(paperTable({ mode: 'engine', precision: 'fp32', presets: ['tiny'], stages: [2] }), /engine mode, fp32 precision/);
});

// The commands, run as a user would (a child process: they print to stdout).
const dist = fileURLToPath(new URL('../../', import.meta.url)); // dist/ (this file runs from dist/test/step)
function cli(command: 'plan' | 'presets', args: string[]): { status: number | null; stdout: string; stderr: string } {
  const script = `const m = await import(${JSON.stringify(`${dist}step/commands/${command}.js`)});
    try { process.exitCode = await m.${command}(process.argv.slice(1)); } catch (e) { process.stderr.write(e.message); process.exitCode = 1; }`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script, '--', ...args], { encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('step plan: text and JSON output, --config, and clear errors', () => {
  const text = cli('plan', ['--preset', '350m', '--stages', '3', '--mode', 'paper', '--rank', '256']);
  assert.equal(text.status, 0, text.stderr);
  assert.match(text.stdout, /split: 14,7,3 \(optimal\)/);
  assert.match(text.stdout, /peak: stage 2, 2,880,790,528 B/);
  const json = cli('plan', ['--preset=350m', '--split', '12,6,6', '--mode', 'engine', '--precision', 'fp32', '--rank', '128', '--json']);
  assert.equal(json.status, 0, json.stderr);
  const out = JSON.parse(json.stdout);
  assert.deepEqual(out.plan, JSON.parse(JSON.stringify(planStages({ config: presetConfig('350m'), split: [12, 6, 6], mode: 'engine', precision: 'fp32', rank: 128 }))));
  const dir = mkdtempSync(join(tmpdir(), 'plan-'));
  writeFileSync(join(dir, 'config.json'), stringifyConfig(presetConfig('tiny')));
  const fromDir = cli('plan', ['--config', dir, '--stages', '2', '--layers', '8', '--json']);
  assert.equal(fromDir.status, 0, fromDir.stderr);
  assert.equal(JSON.parse(fromDir.stdout).plan.layers, 8);
  const errors: [string[], RegExp][] = [
    [['--preset', '350m', '--stages', '3', '--bogus'], /unknown option --bogus; valid options: .*--stages/],
    [['--preset', '350m', '--split', '12,6,5'], /sums to 23, but the model has 24 layers/],
    [['--preset', '350m', '--stages', '30'], /K = 30 stages cannot each add/],
    [['--preset', '350m', '--stages', '0'], /--stages expects a positive integer, got "0"/],
    [['--preset', '350m', '--stages', '2', '--rank', '2048'], /rank 2048 must be an integer in 1..1024/],
    [['--preset', '7b', '--stages', '2'], /unknown preset "7b"; valid presets: tiny, small/],
    [['--preset', '350m', '--stages'], /--stages needs a value/],
    [['--preset', '350m', '--stages', '2', '--mode', 'fast'], /--mode "fast" is not one of paper, engine/],
    [['--preset', '350m'], /give --stages K/],
    [['--stages', '2'], /give --preset NAME .* or --config PATH/],
    [['--config', join(dir, 'nope.json'), '--stages', '2'], /no such file/],
  ];
  for (const [args, re] of errors) {
    const r = cli('plan', args);
    assert.equal(r.status, 1, args.join(' '));
    assert.match(r.stderr, re);
  }
});

test('step presets: a table and JSON with the parameter counts', () => {
  const json = cli('presets', ['--json']);
  assert.equal(json.status, 0, json.stderr);
  const rows = JSON.parse(json.stdout) as { name: string; parameters: { total: number } }[];
  assert.deepEqual(rows.map((r) => r.name), ['tiny', 'small', '60m', '130m', '350m', '680m', '1b']);
  for (const r of rows) assert.equal(r.parameters.total, countParameters(presetConfig(r.name)).total);
  const text = cli('presets', []);
  assert.match(text.stdout, /350m .*367,969,280/);
  assert.match(cli('presets', ['--bogus']).stderr, /unknown option --bogus; valid options: --json\nusage: step presets \[--json\]/);
  assert.equal(layerLinears(presetConfig('tiny')).length, 7);
});
