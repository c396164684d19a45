import { test } from 'node:test';
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

test('f16 rounding is to nearest (error at most half an ulp)', () => {
  for (let i = 0; i < 2000; i++) {
    const x = (Math.random() - 0.5) * 2 ** (Math.floor(Math.random() * 30) - 14);
    const r = roundToF16(x);
    const exp = Math.max(Math.floor(Math.log2(Math.abs(x))), -14);
    const ulp = 2 ** (exp - 10);
    assert.ok(Math.abs(r - x) <= ulp / 2 + 1e-30, `${x} -> ${r}`);
  }
});

test('bytes per element', () => {
  assert.deepEqual(['f16', 'f32', 'i32', 'f64'].map((d) => bytesPerElement(d as never)), [2, 4, 4, 8]);
});
