/** describeValue prints any parsed JSON value for an error message: short, one line, never throws. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { describeValue, oneLine } from '../../engine/describe-value.js';
import { fuzzSeed, nastyValue, toJsonText } from './fuzz-inputs.js';

test(`fuzz describeValue: any JSON value prints within the limit on one line (seed ${fuzzSeed(41)}, 1000 cases)`, () => {
  fc.assert(fc.property(nastyValue, fc.integer({ min: 3, max: 200 }), (node, max) => {
    let value: unknown;
    try { value = JSON.parse(toJsonText(node)); } catch { return; } // NaN, 0x10, ...: not JSON
    const s = describeValue(value, max);
    assert.ok(s.length <= max, `${s.length} > ${max}`);
    assert.ok(!/[\n\r\u2028\u2029]/.test(s));
    if (!s.includes('...') && !s.includes('Infinity')) {
      // Printed whole: it reads back as the value.
      assert.deepEqual(JSON.parse(s), value);
    }
  }), { seed: fuzzSeed(41), numRuns: 1000 });
});

test('describeValue: JSON-like for small values, Infinity and NaN by name, deep and long values cut', () => {
  assert.equal(describeValue(['a', 1, { k: true, n: null }]), '["a",1,{"k":true,"n":null}]');
  assert.equal(describeValue([Infinity, -Infinity, NaN, -0]), '[Infinity,-Infinity,NaN,-0]');
  assert.equal(describeValue(JSON.parse('['.repeat(100000) + ']'.repeat(100000))), '[[[[[...]]]]]');
  assert.equal(describeValue('x'.repeat(1e6), 10), '"xxxxxx...');
  assert.equal(describeValue({ 'k\u2028': 'v\u2029\n' }), '{"k\\u2028":"v\\u2029\\n"}');
  assert.equal(oneLine('a\nb\u2028c', 20), 'a\\nb\\u2028c');
});
