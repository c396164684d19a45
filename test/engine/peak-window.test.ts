import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { Category } from '../../index.js';
import { CATEGORIES, MODEL_STATE_CATEGORIES, MemoryTracker } from '../../index.js';

const op = fc.oneof(
  fc.record({ kind: fc.constant('alloc' as const), bytes: fc.integer({ min: 0, max: 5000 }), category: fc.constantFrom(...CATEGORIES) }),
  fc.record({ kind: fc.constant('free' as const), pick: fc.nat() }),
  fc.record({ kind: fc.constant('retag' as const), pick: fc.nat(), category: fc.constantFrom(...CATEGORIES) }),
  fc.record({ kind: fc.constant('open' as const) }),
  fc.record({ kind: fc.constant('close' as const) }),
);

test('peak windows: each reports the max since it opened, and opening or closing one never moves the tracker\'s own peak', () => {
  fc.assert(fc.property(fc.array(op, { maxLength: 100 }), (ops) => {
    const t = new MemoryTracker(), shadow = new MemoryTracker(); // shadow: the same ops, no windows
    const live: { id: number; shadowId: number; bytes: number; category: Category }[] = [];
    const sum = (cats: readonly Category[]) => live.filter((l) => cats.includes(l.category)).reduce((s, l) => s + l.bytes, 0);
    const windows: { w: ReturnType<MemoryTracker['openPeakWindow']>; total: number; state: number; open: boolean }[] = [];
    for (const o of ops) {
      if (o.kind === 'alloc') live.push({ id: t.onAlloc(o.bytes, o.category, 'x'), shadowId: shadow.onAlloc(o.bytes, o.category, 'x'), bytes: o.bytes, category: o.category });
      else if (o.kind === 'free' && live.length) {
        const l = live.splice(o.pick % live.length, 1)[0]!;
        t.onFree(l.id); shadow.onFree(l.shadowId);
      } else if (o.kind === 'retag' && live.length) {
        const l = live[o.pick % live.length]!;
        t.retag(l.id, o.category); shadow.retag(l.shadowId, o.category);
        l.category = o.category;
      } else if (o.kind === 'open') windows.push({ w: t.openPeakWindow(), total: sum(CATEGORIES), state: sum(MODEL_STATE_CATEGORIES), open: true });
      else if (o.kind === 'close') {
        const w = windows.find((x) => x.open);
        if (w) { w.w.close(); w.open = false; }
      }
      for (const w of windows.filter((x) => x.open)) {
        w.total = Math.max(w.total, sum(CATEGORIES));
        w.state = Math.max(w.state, sum(MODEL_STATE_CATEGORIES));
      }
      for (const w of windows) {
        const r = w.w.report();
        assert.equal(r.peak.total, w.total, 'window peak = max since it opened (frozen after close)');
        assert.equal(r.peakModelState.total, w.state, 'window model-state peak');
        assert.equal(Object.values(r.peakModelState.breakdown).reduce((a, b) => a + b, 0), r.peakModelState.total);
      }
      const { limit: _a, ...mine } = t.report(), { limit: _b, ...theirs } = shadow.report();
      assert.deepEqual(mine, theirs, 'windows leave the tracker\'s report unchanged');
    }
  }), { numRuns: 200 });
});

test('a peak window starts at the bytes live when it opens and keeps the split at its own peak', () => {
  const t = new MemoryTracker();
  const big = t.onAlloc(1000, 'activation', 'a');
  t.onAlloc(100, 'parameter', 'p');
  t.onFree(big);
  const w = t.openPeakWindow();
  assert.equal(w.report().peak.total, 100, 'not the tracker\'s earlier 1100');
  t.onAlloc(50, 'optimizer', 'm');
  assert.deepEqual(w.report().peakModelState.breakdown, { parameter: 100, frozen: 0, gradient: 0, optimizer: 50, activation: 0, temporary: 0, staging: 0 });
  assert.equal(t.report().peak.total, 1100, 'the tracker still has its whole-life peak');
  w.close();
  t.onAlloc(500, 'gradient', 'g');
  assert.equal(w.report().peak.total, 150, 'closed: no longer follows allocations');
});
