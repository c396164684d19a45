/**
 * Applies learned merges to one pre-token piece (its UTF-8 bytes): repeatedly merge the pair with
 * the lowest rank, all its occurrences left to right. This is exactly what training did to the
 * pieces it saw. Short pieces use a plain scan; long ones (a long run of spaces or symbols) a
 * linked list and a min-heap keyed by (rank, position), O(n log n).
 */

/** Looks up the rank (merge index) of a pair, or -1 when the pair was never merged. */
export type RankOf = (left: number, right: number) => number;

const LONG_PIECE = 48;

export function mergePiece(bytes: ArrayLike<number>, rankOf: RankOf): number[] {
  return bytes.length > LONG_PIECE ? mergeLong(bytes, rankOf) : mergeShort(bytes, rankOf);
}

/** O(n^2) but allocation-free apart from the result: best for typical words of a few bytes. */
export function mergeShort(bytes: ArrayLike<number>, rankOf: RankOf): number[] {
  const sym = Array.from(bytes);
  while (sym.length > 1) {
    let best = -1, bestAt = -1;
    for (let i = 0; i + 1 < sym.length; i++) {
      const r = rankOf(sym[i]!, sym[i + 1]!);
      if (r >= 0 && (best < 0 || r < best)) {
        best = r;
        bestAt = i;
      }
    }
    if (best < 0) break;
    const a = sym[bestAt]!, b = sym[bestAt + 1]!, z = 256 + best;
    let w = bestAt;
    for (let i = bestAt; i < sym.length;) {
      if (i + 1 < sym.length && sym[i] === a && sym[i + 1] === b) {
        sym[w++] = z;
        i += 2;
      } else {
        sym[w++] = sym[i++]!;
      }
    }
    sym.length = w;
  }
  return sym;
}

const POS_BITS = 2 ** 26; // heap entry = rank * 2^26 + position (exact in a double for rank < 2^26)

/** Linked-list merge driven by a min-heap; same result as `mergeShort` (tested). */
export function mergeLong(bytes: ArrayLike<number>, rankOf: RankOf): number[] {
  const n = bytes.length;
  if (n >= POS_BITS) throw new RangeError(`mergeLong: a pre-token piece of ${n} bytes is too long (limit ${POS_BITS - 1})`);
  if (n === 0) return [];
  const sym = Int32Array.from(bytes as ArrayLike<number>);
  const next = new Int32Array(n), prev = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    next[i] = i + 1 < n ? i + 1 : -1;
    prev[i] = i - 1;
  }
  const heap: number[] = [];
  const pushPair = (i: number): void => {
    const j = next[i]!;
    if (j < 0) return;
    const r = rankOf(sym[i]!, sym[j]!);
    if (r >= 0) heapPush(heap, r * POS_BITS + i);
  };
  for (let i = 0; i + 1 < n; i++) pushPair(i);
  while (heap.length > 0) {
    const entry = heapPop(heap);
    const r = Math.floor(entry / POS_BITS), i = entry - r * POS_BITS;
    const j = next[i]!;
    // Stale when i was absorbed (prev link broken), has no right neighbour, or its pair changed.
    if (sym[i]! < 0 || j < 0 || rankOf(sym[i]!, sym[j]!) !== r) continue;
    sym[i] = 256 + r;
    sym[j] = -1; // j is gone
    const k = next[j]!;
    next[i] = k;
    if (k >= 0) prev[k] = i;
    // A new token only ever merges at a higher rank, so (rank, position) order stays left to right.
    if (prev[i]! >= 0) pushPair(prev[i]!);
    pushPair(i);
  }
  const out: number[] = [];
  for (let i = 0; i >= 0; i = next[i]!) out.push(sym[i]!);
  return out;
}

function heapPush(h: number[], v: number): void {
  let i = h.length;
  h.push(v);
  while (i > 0) {
    const p = (i - 1) >> 1;
    if (h[p]! <= v) break;
    h[i] = h[p]!;
    i = p;
  }
  h[i] = v;
}

function heapPop(h: number[]): number {
  const top = h[0]!;
  const last = h.pop()!;
  const n = h.length;
  if (n > 0) {
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const c = l + 1 < n && h[l + 1]! < h[l]! ? l + 1 : l;
      if (h[c]! >= last) break;
      h[i] = h[c]!;
      i = c;
    }
    h[i] = last;
  }
  return top;
}
