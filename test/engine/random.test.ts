import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Generator, philox4x32, rand, randn, scope } from '../../index.js';
import { mulhi32 } from '../../engine/random.js';
import { assertClose, bothBackends, testBothBackends } from '../helpers/backends.js';

test('Philox4x32-10 matches the Random123 known-answer vectors', () => {
  const hex = (w: number[]) => w.map((x) => x.toString(16).padStart(8, '0')).join(' ');
  assert.equal(hex(philox4x32(0, 0, 0, 0, 0, 0)), '6627e8d5 e169c58d bc57ac4c 9b00dbd8');
  const f = 0xffffffff;
  assert.equal(hex(philox4x32(f, f, f, f, f, f)), '408f276d 41c83b0e a20bc7c6 6d5451fd');
  assert.equal(hex(philox4x32(0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0)),
    'd16cfe09 94fdcceb 5001e420 24126ea1');
});

test('mulhi32 equals the BigInt product', () => {
  fc.assert(fc.property(fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 0, max: 0xffffffff }), (a, b) => {
    assert.equal(mulhi32(a, b), Number((BigInt(a) * BigInt(b)) >> 32n));
  }));
});

test('Generator: offsets advance by blocks used, state round-trips, bad seeds are refused', () => {
  const g = new Generator(7);
  assert.equal(g.take(3), 0);
  assert.equal(g.take(2), 3);
  const st = g.getState();
  const h = new Generator(0);
  h.setState(st);
  assert.deepEqual(h.getState(), { seed: 7, offset: 5 });
  assert.throws(() => new Generator(-1), /seed/);
  assert.throws(() => new Generator(1.5), /seed/);
});

testBothBackends('rand: uniform in [0,1), mean ~0.5; randn: mean ~0, std ~1', async () => {
  await scope(async () => {
    const g = new Generator(123);
    const u = await rand([40000], { generator: g }).toArray();
    let mu = 0;
    for (const x of u) { assert.ok(x >= 0 && x < 1); mu += x; }
    assert.ok(Math.abs(mu / u.length - 0.5) < 0.01);
    const z = await randn([40000], { generator: g, mean: 2, std: 3 }).toArray();
    let m = 0, v = 0;
    for (const x of z) m += x;
    m /= z.length;
    for (const x of z) v += (x - m) ** 2;
    v /= z.length;
    assert.ok(Math.abs(m - 2) < 0.06, `mean ${m}`);
    assert.ok(Math.abs(Math.sqrt(v) - 3) < 0.06, `std ${Math.sqrt(v)}`);
  });
});

testBothBackends('rand: consecutive draws continue the stream (two halves = one whole)', async () => {
  await scope(async () => {
    const whole = await rand([64], { generator: new Generator(5) }).toArray();
    const g = new Generator(5);
    const a = await rand([32], { generator: g }).toArray();
    const b = await rand([32], { generator: g }).toArray();
    assert.deepEqual([...a, ...b], [...whole]);
  });
});

test('PRNG: the same seed gives the same numbers on cpu and webgpu (uniform exact, normal to 2e-6)', async (t) => {
  const both = await bothBackends(t);
  if (!both) return;
  const { cpu, gpu } = both;
  await fc.assert(fc.asyncProperty(
    fc.integer({ min: 0, max: 2 ** 53 - 1 }), fc.integer({ min: 0, max: 2 ** 40 }), fc.integer({ min: 0, max: 3000 }),
    fc.constantFrom('f32' as const, 'f16' as const),
    async (seed, offset, n, dtype) => {
      await scope(async () => {
        const draw = async (device: typeof cpu, normal: boolean) => {
          const g = new Generator(seed);
          g.take(offset);
          const opts = { generator: g, device: device as never, dtype };
          return (normal ? randn([n], opts) : rand([n], opts)).toArray();
        };
        assert.deepEqual(await draw(gpu, false), await draw(cpu, false));
        const tol = dtype === 'f16' ? 1e-3 : 2e-6;
        assertClose(await draw(gpu, true), await draw(cpu, true), tol, tol, 'randn webgpu vs cpu');
      });
    }), { numRuns: 25 });
});
