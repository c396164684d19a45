import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { Tensor } from '../../index.js';
import { keep, ones, rand, scope, scopeSync, zeros } from '../../index.js';
import { testBothBackends } from '../helpers/backends.js';

testBothBackends('scope frees intermediates across await and returns what fn returns', async (b) => {
  const base = b.memory().count;
  const out = await scope(async () => {
    const a = ones([4]);
    await a.toArray(); // an await inside the scope
    const c = zeros([8]);
    await new Promise((r) => setTimeout(r, 5));
    zeros([16]);
    return { c, list: [a] };
  });
  assert.equal(b.memory().count, base + 2, 'the returned tensors survive, the third is freed');
  assert.equal(out.c.isDisposed, false);
  assert.equal(out.list[0]!.isDisposed, false);
  out.c.dispose();
  out.list[0]!.dispose();
  assert.equal(b.memory().count, base);
});

testBothBackends('nested scopes hand returned tensors to the parent; keep() survives all scopes', async (b) => {
  const base = b.memory().count;
  let inner: Tensor | undefined;
  let kept: Tensor | undefined;
  await scope(async () => {
    inner = await scope(async () => {
      kept = keep(zeros([2], { label: 'kept' }));
      zeros([3]);
      return ones([1]);
    });
    assert.equal(inner.isDisposed, false, 'returned to the outer scope');
  });
  assert.equal(inner!.isDisposed, true, 'freed when the outer scope ends');
  assert.equal(kept!.isDisposed, false);
  kept!.dispose();
  assert.equal(b.memory().count, base);
});

testBothBackends('scope frees on throw; scopeSync works and rejects async functions', async (b) => {
  const base = b.memory().count;
  await assert.rejects(scope(async () => { zeros([5]); throw new Error('boom'); }), /boom/);
  assert.equal(b.memory().count, base);
  const t = scopeSync(() => { zeros([3]); return ones([2]); });
  assert.equal(b.memory().count, base + 1);
  t.dispose();
  assert.throws(() => scopeSync(() => Promise.resolve(1) as never), /use `await scope\(fn\)`/);
  assert.equal(b.memory().count, base);
});

testBothBackends('concurrent scopes do not free each other\'s tensors', async (b) => {
  const base = b.memory().count;
  const [x, y] = await Promise.all([
    scope(async () => { const t = ones([3]); await new Promise((r) => setTimeout(r, 10)); return t; }),
    scope(async () => { const t = zeros([3]); await new Promise((r) => setTimeout(r, 1)); return t; }),
  ]);
  assert.deepEqual([...await x.toArray()], [1, 1, 1]);
  assert.deepEqual([...await y.toArray()], [0, 0, 0]);
  x.dispose(); y.dispose();
  assert.equal(b.memory().count, base);
});

/** A random program: nested scopes that create, dispose, keep and return tensors. */
type Step = { kind: 'create' | 'dispose' | 'keep' | 'nest' | 'await'; n: number; ret: boolean };
const stepArb = fc.record({
  kind: fc.constantFrom('create', 'create', 'dispose', 'keep', 'nest', 'await') as fc.Arbitrary<Step['kind']>,
  n: fc.integer({ min: 0, max: 40 }),
  ret: fc.boolean(),
});

testBothBackends('property: after any program of scopes nothing leaks but kept tensors', async (b) => {
  await fc.assert(fc.asyncProperty(fc.array(stepArb, { maxLength: 30 }), async (steps) => {
    const base = b.memory();
    const kept: Tensor[] = [];
    const run = async (depth: number, from: number): Promise<Tensor[]> => {
      const mine: Tensor[] = [];
      for (let i = from; i < steps.length; i++) {
        const s = steps[i]!;
        if (s.kind === 'create') mine.push(rand([s.n]));
        else if (s.kind === 'dispose' && mine.length) mine.splice(s.n % mine.length, 1)[0]!.dispose();
        else if (s.kind === 'keep' && mine.length) kept.push(keep(mine.splice(s.n % mine.length, 1)[0]!));
        else if (s.kind === 'await') await new Promise((r) => setImmediate(r));
        else if (s.kind === 'nest' && depth < 3) {
          const returned = await scope(() => run(depth + 1, i + 1));
          for (const t of returned) assert.equal(t.isDisposed, false, 'returned tensors survive their scope');
          mine.push(...returned);
          break;
        }
      }
      return mine.filter((t, k) => steps[k]?.ret ?? true);
    };
    const survivors = await scope(() => run(0, 0));
    for (const t of survivors) t.dispose();
    for (const t of kept) assert.equal(t.isDisposed, false);
    const keptBytes = kept.reduce((s, t) => s + t.size * 4, 0);
    assert.equal(b.memory().allocated - base.allocated, keptBytes);
    assert.equal(b.memory().count - base.count, kept.length);
    for (const t of kept) t.dispose();
    assert.equal(b.memory().allocated, base.allocated);
  }), { numRuns: 60 });
});
