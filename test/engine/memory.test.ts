import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { Allocation, Category } from '../../index.js';
import { BufferPool, CATEGORIES, MODEL_STATE_CATEGORIES, MemoryTracker, OutOfMemoryError } from '../../index.js';
import { sizeClass } from '../../engine/pool.js';

function pool(tracker = new MemoryTracker(), max = 2 ** 30) {
  let created = 0, destroyed = 0;
  const p = new BufferPool<{ n: number }>(tracker, (n) => { created++; return { n }; }, () => { destroyed++; }, max);
  return { p, tracker, counts: () => ({ created, destroyed }) };
}

test('sizeClass: at least the request, at most 25% (or 256 B) more, monotone', () => {
  fc.assert(fc.property(fc.integer({ min: 0, max: 2 ** 40 }), fc.integer({ min: 0, max: 2 ** 40 }), (a, b) => {
    const ca = sizeClass(a);
    assert.ok(ca >= a);
    assert.ok(ca <= Math.max(256, a * 1.25 + 1), `${a} -> ${ca}`);
    if (a <= b) assert.ok(ca <= sizeClass(b));
  }));
  assert.equal(sizeClass(0), 256);
  assert.equal(sizeClass(257), 320);
  assert.equal(sizeClass(1024), 1024);
  assert.equal(sizeClass(1025), 1280);
});

const op = fc.oneof(
  fc.record({ kind: fc.constant('alloc' as const), bytes: fc.integer({ min: 0, max: 5000 }), category: fc.constantFrom(...CATEGORIES) }),
  fc.record({ kind: fc.constant('free' as const), pick: fc.nat() }),
  fc.record({ kind: fc.constant('retag' as const), pick: fc.nat(), category: fc.constantFrom(...CATEGORIES) }),
  fc.record({ kind: fc.constant('trim' as const) }),
  fc.record({ kind: fc.constant('resetPeak' as const) }),
);

test('tracker arithmetic under random alloc/free/retag/trim sequences', () => {
  fc.assert(fc.property(fc.array(op, { maxLength: 120 }), (ops) => {
    const { p, tracker } = pool();
    const live: { a: Allocation<{ n: number }>; category: Category }[] = [];
    let peak = 0, peakState = 0;
    const stateOf = () => live.filter((l) => MODEL_STATE_CATEGORIES.includes(l.category)).reduce((s, l) => s + l.a.bytes, 0);
    let peakByCat: Record<string, number> = Object.fromEntries(CATEGORIES.map((c) => [c, 0]));
    for (const o of ops) {
      if (o.kind === 'alloc') live.push({ a: p.allocate(o.bytes, o.category, 'x'), category: o.category });
      else if (o.kind === 'free' && live.length) p.release(live.splice(o.pick % live.length, 1)[0]!.a);
      else if (o.kind === 'retag' && live.length) {
        const l = live[o.pick % live.length]!;
        tracker.retag(l.a.id, o.category);
        l.category = o.category;
      } else if (o.kind === 'trim') p.trim();
      else if (o.kind === 'resetPeak') {
        tracker.resetPeak();
        peak = live.reduce((s, l) => s + l.a.bytes, 0);
        peakState = stateOf();
        peakByCat = Object.fromEntries(CATEGORIES.map((c) => [c, live.filter((l) => l.category === c).reduce((s, l) => s + l.a.bytes, 0)]));
      }
      const r = tracker.report();
      const sum = live.reduce((s, l) => s + l.a.bytes, 0);
      peak = Math.max(peak, sum);
      assert.equal(r.allocated, sum, 'allocated = sum of live');
      assert.equal(r.count, live.length);
      for (const c of CATEGORIES) {
        const want = live.filter((l) => l.category === c).reduce((s, l) => s + l.a.bytes, 0);
        assert.equal(r.live[c], want, `live ${c}`);
        assert.ok(r.live[c] >= 0);
        peakByCat[c] = Math.max(peakByCat[c]!, want);
        assert.equal(r.peakByCategory[c], peakByCat[c], `peak of ${c}`);
      }
      assert.equal(r.peak.total, peak, 'peak = max over time');
      peakState = Math.max(peakState, stateOf());
      assert.equal(r.peakModelState.total, peakState, 'model-state peak = max over time of parameter+frozen+gradient+optimizer');
      assert.equal(Object.values(r.peakModelState.breakdown).reduce((s, x) => s + x, 0), r.peakModelState.total, 'its breakdown sums to it');
      assert.equal(Object.values(r.peak.breakdown).reduce((s, x) => s + x, 0), r.peak.total, 'breakdown sums to the peak');
      assert.ok(r.reserved >= r.live.parameter + r.live.frozen + r.live.gradient + r.live.optimizer + r.live.activation + r.live.temporary + r.live.staging);
      assert.ok(r.reserved >= live.reduce((s, l) => s + l.a.capacity, 0), 'reserved covers every live buffer');
      assert.ok(r.peakReserved >= r.reserved);
    }
  }), { numRuns: 300 });
});

test('model-state peak: the simultaneous maximum of the four state categories, not the sum of their own peaks', () => {
  const t = new MemoryTracker();
  const g = t.onAlloc(300, 'gradient', 'g');
  t.onAlloc(1000, 'activation', 'a'); // not model state: does not raise it
  t.onFree(g);
  t.onAlloc(100, 'parameter', 'p');
  t.onAlloc(150, 'optimizer', 'o');
  const r = t.report();
  assert.equal(r.peakByCategory.gradient + r.peakByCategory.parameter + r.peakByCategory.optimizer, 550);
  assert.equal(r.peakModelState.total, 300, 'the gradient alone, before it was freed');
  assert.deepEqual(r.peakModelState.breakdown, { parameter: 0, frozen: 0, gradient: 300, optimizer: 0, activation: 0, temporary: 0, staging: 0 });
  const x = t.onAlloc(100, 'temporary', 'x');
  t.retag(x, 'frozen'); // a retag into a state category raises it: 100 + 150 + 100
  assert.equal(t.report().peakModelState.total, 350);
});

test('pool reuses a freed buffer of the same size class and trim destroys the cache', () => {
  const { p, tracker, counts } = pool();
  const a = p.allocate(1000, 'activation', 'a');
  p.release(a);
  const b = p.allocate(1010, 'gradient', 'b');
  assert.equal(b.buffer, a.buffer);
  assert.deepEqual(counts(), { created: 1, destroyed: 0 });
  p.release(b);
  assert.equal(tracker.report().reserved, sizeClass(1000));
  p.trim();
  assert.equal(tracker.report().reserved, 0);
  assert.deepEqual(counts(), { created: 1, destroyed: 1 });
});

test('limit: throws OutOfMemoryError naming categories and labels, after trying to free the cache', () => {
  const { p, tracker } = pool();
  tracker.limit = 4096;
  const w = p.allocate(2048, 'parameter', 'layer0.weight');
  const cached = p.allocate(1024, 'temporary', 'tmp');
  p.release(cached); // 1024 cached
  p.allocate(1500, 'optimizer', 'adam.m'); // class 1536: fits only after the cache is trimmed
  assert.equal(tracker.report().reserved, 2048 + 1536);
  assert.throws(() => p.allocate(1000, 'activation', 'attn.scores'), (e: unknown) => {
    assert.ok(e instanceof OutOfMemoryError);
    assert.match(e.message, /attn\.scores/);
    assert.match(e.message, /parameter 2\.00 KiB/);
    assert.match(e.message, /layer0\.weight/);
    return true;
  });
  assert.equal(tracker.report().allocated, 2048 + 1500, 'a failed allocation changes nothing');
  p.release(w);
});

test('buffers larger than the device binding limit fail clearly', () => {
  const { p } = pool(new MemoryTracker(), 1 << 20);
  assert.throws(() => p.allocate((1 << 20) + 4, 'activation', 'big'), /big: 1048580 bytes exceed the device's largest bindable buffer/);
});

test('timeline is bounded and ordered', () => {
  const tracker = new MemoryTracker(5);
  const { p } = pool(tracker);
  for (let i = 0; i < 8; i++) p.release(p.allocate(10 * i, 'temporary', `t${i}`));
  const tl = tracker.timeline();
  assert.equal(tl.length, 5);
  assert.deepEqual(tl.map((e) => e.seq), [11, 12, 13, 14, 15]);
  assert.equal(tl.at(-1)!.kind, 'free');
  assert.equal(tl.at(-1)!.allocated, 0);
});

test('pool: a size class hands out its oldest free buffer, whatever order they were freed in', () => {
  const { p, counts } = pool();
  let held = [0, 1, 2].map(() => p.allocate(1000, 'activation', 'x'));
  const buffers = held.map((x) => x.buffer);
  for (const order of [[0, 1, 2], [2, 0, 1], [1, 2, 0], [2, 1, 0]]) {
    for (const i of order) p.release(held[i]!);
    held = [0, 1, 2].map(() => p.allocate(1000, 'activation', 'x'));
    assert.deepEqual(held.map((x) => buffers.indexOf(x.buffer)), [0, 1, 2], `freed in order ${order.join(', ')}: handed out oldest first`);
  }
  assert.equal(counts().created, 3, 'no new buffers');
});
