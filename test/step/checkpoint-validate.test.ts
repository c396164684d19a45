import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { StepError } from '../../engine/errors.js';
import { checkpointName, parseLatestPointer, parseTrainerState, TRAINER_STATE_FORMAT } from '../../step/train/checkpoint-files.js';
import type { TrainerState } from '../../step/train/checkpoint-files.js';

const STATE_PATH = '/runs/r/checkpoints/step-000008/trainer-state.json';
const LATEST_PATH = '/runs/r/latest.json';

const VALID: TrainerState = {
  format: TRAINER_STATE_FORMAT, version: 1, method: 'step', step: 8, tokens: 512, sampler: { seed: 1, step: 16 },
  stage: 1, stageStartStep: 4, frozenLayers: [0], lora: { rank: 4, alpha: 16 }, lastRestart: 6, lastLoss: 5.2, lastValLoss: null,
};

const parse = (s: unknown, ctx = {}) => parseTrainerState(JSON.stringify(s), STATE_PATH, ctx);

/** Asserts a StepError naming the file and matching `field`. */
function refuses(fn: () => unknown, field: RegExp, path = STATE_PATH): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof StepError, `a StepError, got ${String(e)}`);
    assert.ok(e.message.startsWith(path), `names the file: ${e.message}`);
    assert.match(e.message, field);
    return true;
  });
}

test('trainer-state.json: a valid state parses, with the folder step, layers, accumulation and seed checked', () => {
  assert.deepEqual(parse(VALID, { folderStep: 8, layers: 2, gradAccum: 2, seed: 1 }), VALID);
  assert.deepEqual(parse({ ...VALID, method: 'vanilla', stage: 0, frozenLayers: [], lora: null }), { ...VALID, method: 'vanilla', stage: 0, frozenLayers: [], lora: null });
});

test('trainer-state.json: every field is checked, and the error names the file and the field', () => {
  const cases: [Record<string, unknown>, RegExp, object?][] = [
    [{ format: 'other' }, /field "format"/],
    [{ version: 2 }, /field "version"/],
    [{ method: 'lomo' }, /field "method" must be vanilla, step, relora, galore or sft/],
    [{ step: -1 }, /field "step" must be an integer >= 0/],
    [{ step: 2.5 }, /field "step"/],
    [{ step: '8' }, /field "step"/],
    [{ tokens: null }, /field "tokens"/],
    [{ stage: -2 }, /field "stage"/],
    [{ stageStartStep: 9 }, /field "stageStartStep" must be at most step 8/],
    [{ lastRestart: 100 }, /field "lastRestart"/],
    [{ sampler: null }, /field "sampler" must be an object/],
    [{ sampler: { seed: 1 } }, /field "sampler.step"/],
    [{ sampler: { seed: -1, step: 16 } }, /field "sampler.seed"/],
    [{ sampler: { seed: 1, step: 12 } }, /field "sampler.step" must be 16 \(step 8 x --grad-accum 2\)/, { gradAccum: 2 }],
    [{ sampler: { seed: 1, step: 12 } }, /field "sampler.step" must be a multiple of step 8/],
    [{ sampler: { seed: 2, step: 16 } }, /field "sampler.seed" must be the run's --seed 1/, { seed: 1 }],
    [{}, /field "step" must be 9 \(the folder's name says step 9\)/, { folderStep: 9 }],
    [{ frozenLayers: 'all' }, /field "frozenLayers" must be an array/],
    [{ frozenLayers: [0, 0] }, /field "frozenLayers" must be distinct/],
    [{ frozenLayers: [3] }, /field "frozenLayers" must be indices below the model's 2 layers/, { layers: 2 }],
    [{ lora: { rank: 0, alpha: 16 } }, /field "lora.rank"/],
    [{ lora: { rank: 4, alpha: 'x' } }, /field "lora.alpha"/],
    [{ lora: [4, 16] }, /field "lora" must be null or an object/],
    [{ lora: null }, /field "lora" must be an object \{rank, alpha\} \(frozenLayers has LoRA layers\)/],
    [{ method: 'vanilla' }, /field "frozenLayers" must be empty \/ 0 for a vanilla run/],
    [{ lastLoss: 'nan' }, /field "lastLoss" must be a finite number or null/],
    [{ lastValLoss: {} }, /field "lastValLoss"/],
  ];
  for (const [patch, field, ctx] of cases) refuses(() => parse({ ...VALID, ...patch }, ctx), field);
  refuses(() => parseTrainerState('{"step": 1e400}', STATE_PATH), /field "format"/);
  refuses(() => parseTrainerState(JSON.stringify({ ...VALID }).replace('5.2', '1e400'), STATE_PATH), /field "lastLoss" must be a finite number/);
  refuses(() => parseTrainerState('{"format": ', STATE_PATH), /not valid JSON/);
  refuses(() => parseTrainerState('[]', STATE_PATH), /top level/);
});

test('latest.json: only an object naming a step-NNNNNN folder directly under checkpoints/', () => {
  assert.deepEqual(parseLatestPointer('{"checkpoint":"step-000012","step":12}', LATEST_PATH), { checkpoint: 'step-000012', step: 12 });
  assert.deepEqual(parseLatestPointer('{"checkpoint":"step-000012"}', LATEST_PATH), { checkpoint: 'step-000012', step: 12 });
  const bad: [string, RegExp][] = [
    ['{}', /field "checkpoint" must be a folder name, got nothing/],
    ['12', /must be an object, got number/],
    ['null', /must be an object, got null/],
    ['["step-000012"]', /must be an object, got an array/],
    ['{"checkpoint": 12}', /must be a folder name, got number/],
    ['{"checkpoint": "../other-run/checkpoints/step-000012"}', /no path separators/],
    ['{"checkpoint": ".."}', /no path separators or "\.\."/],
    ['{"checkpoint": "step-000012/.."}', /no path separators/],
    ['{"checkpoint": "/etc"}', /step-NNNNNN/],
    ['{"checkpoint": "step-000012", "step": 11}', /field "step" must equal the folder's step 12/],
    ['{"checkpoint": "step-99999999999999999999"}', /beyond any run/],
    ['not json', /not valid JSON/],
  ];
  for (const [text, why] of bad) refuses(() => parseLatestPointer(text, LATEST_PATH), why, LATEST_PATH);
});

/** Any outcome but a valid value or a StepError naming the file fails the property. */
function validOrStepError<T>(fn: () => T, path: string, check: (v: T) => void): void {
  let v: T;
  try {
    v = fn();
  } catch (e) {
    if (!(e instanceof StepError)) throw new Error(`not a StepError: ${String(e)}`);
    if (!e.message.startsWith(path)) throw new Error(`the error does not name ${path}: ${e.message}`);
    return;
  }
  check(v);
}

// Inputs near valid ones find the deep branches (half of them are valid states, the rest have one
// field replaced by arbitrary JSON); arbitrary JSON and text find the shallow ones.
const validState = fc.record({
  step: fc.nat(20), accum: fc.integer({ min: 1, max: 3 }), seed: fc.nat(3), method: fc.constantFrom('vanilla', 'step', 'relora'),
  frozen: fc.uniqueArray(fc.nat(3), { maxLength: 4 }), rank: fc.integer({ min: 1, max: 8 }), alpha: fc.double({ min: 0.5, max: 64, noNaN: true }),
  startFrac: fc.double({ min: 0, max: 1, noNaN: true }), loss: fc.option(fc.double({ min: 0, max: 20, noNaN: true })),
}).map((r) => {
  const vanilla = r.method === 'vanilla';
  return {
    format: TRAINER_STATE_FORMAT, version: 1, method: r.method, step: r.step, tokens: r.step * 64, sampler: { seed: r.seed, step: r.step * r.accum },
    stage: vanilla ? 0 : 1, stageStartStep: Math.floor(r.step * r.startFrac), frozenLayers: vanilla ? [] : r.frozen,
    lora: vanilla || r.frozen.length === 0 ? null : { rank: r.rank, alpha: r.alpha }, lastRestart: Math.floor(r.step * r.startFrac),
    lastLoss: r.loss, lastValLoss: null,
  } as Record<string, unknown>;
});
const FIELDS = ['format', 'version', 'method', 'step', 'tokens', 'sampler', 'stage', 'stageStartStep', 'frozenLayers', 'lora', 'lastRestart', 'lastLoss', 'lastValLoss'];
const stateLike = fc.oneof(
  validState,
  fc.tuple(validState, fc.constantFrom(...FIELDS), fc.oneof(fc.jsonValue(), fc.constant(undefined))).map(([s, k, v]) => ({ ...s, [k]: v })),
);

function checkState(s: TrainerState): void {
  assert.equal(s.format, TRAINER_STATE_FORMAT);
  assert.ok(Number.isSafeInteger(s.step) && s.step >= 0 && s.stageStartStep <= s.step && s.lastRestart <= s.step);
  assert.ok(Number.isSafeInteger(s.sampler.step) && s.sampler.step >= 0);
  assert.ok(s.frozenLayers.every((i) => Number.isSafeInteger(i) && i >= 0 && i < 4));
  assert.ok(s.lora === null || (s.lora.rank >= 1 && s.lora.alpha > 0));
  assert.ok(s.lastLoss === null || Number.isFinite(s.lastLoss));
}

test('fuzz trainer-state.json: any input gives a valid state or a StepError naming the file', () => {
  const text = fc.oneof(stateLike.map((s) => JSON.stringify(s)), fc.json(), fc.string(), fc.jsonValue().map((v) => JSON.stringify(v)));
  fc.assert(fc.property(text, fc.option(fc.nat(20)), (t, folderStep) => {
    validOrStepError(() => parseTrainerState(t, STATE_PATH, { layers: 4, folderStep: folderStep ?? undefined }), STATE_PATH, (s) => {
      checkState(s);
      if (folderStep !== null) assert.equal(s.step, folderStep);
    });
  }), { numRuns: 3000, seed: 20260530 });
});

test('fuzz latest.json: any input gives a folder name directly under checkpoints/ or a StepError naming the file', () => {
  const name = fc.oneof(fc.nat(1_000_000).map(checkpointName), fc.string(), fc.constantFrom('..', '.', 'step-000001/..', '../step-000001', 'step-1', 'step-0000001'));
  const text = fc.oneof(
    fc.record({ checkpoint: fc.oneof(name, fc.jsonValue()), step: fc.oneof(fc.nat(1_000_000), fc.jsonValue()) }, { requiredKeys: [] }).map((v) => JSON.stringify(v)),
    fc.json(), fc.string());
  fc.assert(fc.property(text, (t) => {
    validOrStepError(() => parseLatestPointer(t, LATEST_PATH), LATEST_PATH, (p) => {
      assert.match(p.checkpoint, /^step-\d{6,}$/);
      assert.equal(p.step, Number(p.checkpoint.slice(5)));
    });
  }), { numRuns: 3000, seed: 20260531 });
});
