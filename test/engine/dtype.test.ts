import { test } from 'node:test';
import fc from 'fast-check';
import assert from 'node:assert/strict';
import { bytesPerElement, f16BitsToF32, f32ToF16Bits, roundToF16 } from '../../index.js';

test('f16 conversion: hand-computed cases', () => {
  const cases: [number, number][] = [
    [0, 0x0000], [-0, 0x8000], [1, 0x3c00], [-2, 0xc000], [0.5, 0x3800], [65504, 0x7bff],
    [65520, 0x7c00], // rounds up to Inf (halfway to 2^16, even rule)
    [Infinity, 0x7c00], [-Infinity, 0xfc00],
    [2 ** -24, 0x0001], [2 ** -25, 0x0000], // halfway: ties to even (0)
    [3 * 2 ** -25, 0x0002], // 1.5 * smallest subnormal: ties to even (2)
    [2 ** -14, 0x0400], [1 + 2 ** -11, 0x3c00], [1 + 3 * 2 ** -11, 0x3c02], [0.1, 0x2e66],
  ];
  for (const [x, bits] of cases) assert.equal(f32ToF16Bits(x), bits, `f32ToF16Bits(${x})`);
  assert.ok(Number.isNaN(f16BitsToF32(f32ToF16Bits(NaN))));
});

test('f16 conversion: every finite f16 round-trips exactly', () => {
  for (let bits = 0; bits < 0x10000; bits++) {
    const v = f16BitsToF32(bits);
    if (Number.isNaN(v)) continue;
    assert.equal(f32ToF16Bits(v), bits, `bits 0x${bits.toString(16)}`);
  }
});

test('f16 rounding of f32 values is to nearest (error at most half an ulp)', () => {
  fc.assert(fc.property(fc.float({ min: -60000, max: 60000, noNaN: true }), (x) => {
    const r = roundToF16(x);
    const exp = Math.max(Math.floor(Math.log2(Math.abs(x) || 2 ** -24)), -14);
    const ulp = 2 ** (exp - 10);
    assert.ok(Math.abs(r - x) <= ulp / 2, `${x} -> ${r}`);
  }), { numRuns: 5000 });
});

test('bytes per element', () => {
  assert.deepEqual(['f16', 'f32', 'i32', 'f64'].map((d) => bytesPerElement(d as never)), [2, 4, 4, 8]);
});
