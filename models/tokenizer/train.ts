/**
 * BPE training (Sennrich et al. 2016, byte-level as in GPT-2) with incremental pair counts:
 * the text is reduced to unique pre-token pieces with frequencies; pair counts and, per pair, the
 * pieces that contain it are kept up to date as each merge rewrites only the pieces it touches.
 * The next merge comes from a max-heap with lazy deletion (a popped entry whose count is stale is
 * pushed back with its live count). Counts only fall for old pairs and new pairs always contain
 * the new token, so the popped live entry is the true maximum. Ties go to the smaller pair
 * (left id, then right id): training is deterministic.
 */
import { PairHeap } from './pair-heap.js';
import { forEachPiece } from './pretokenize.js';

/** Unique pre-token pieces of `texts` with their counts; special-token strings are cut out first. */
export function countPieces(texts: Iterable<string>, specialTokens: readonly string[] = []): Map<string, number> {
  const counts = new Map<string, number>();
  const splitter = specialSplitter(specialTokens);
  const add = (piece: string): void => {
    counts.set(piece, (counts.get(piece) ?? 0) + 1);
  };
  for (const text of texts) {
    for (const part of splitter ? text.split(splitter) : [text]) forEachPiece(part, add);
  }
  return counts;
}

/** A RegExp matching any of the special tokens (longest first), or null when there are none. */
export function specialSplitter(specialTokens: readonly string[]): RegExp | null {
  if (specialTokens.length === 0) return null;
  const escaped = [...specialTokens].sort((a, b) => b.length - a.length).map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  return new RegExp(escaped.join('|'), 'g');
}

export interface LearnOptions {
  /** How many merges to learn at most (fewer when no pair is frequent enough). */
  numMerges: number;
  /** A pair must occur at least this often to be merged (default 2). */
  minFrequency?: number;
  /** Called every `progressEvery` merges (default 1000) with the merges so far. */
  onProgress?: (mergesDone: number, lastPairCount: number) => void;
  progressEvery?: number;
}

/** Learns merges from piece counts. Merge i creates token id 256 + i from the pair [left, right]. */
export function learnMerges(pieceCounts: ReadonlyMap<string, number>, options: LearnOptions): [number, number][] {
  const { numMerges, minFrequency = 2, onProgress, progressEvery = 1000 } = options;
  if (!Number.isInteger(numMerges) || numMerges < 0) throw new RangeError(`learnMerges: numMerges must be a non-negative integer, got ${numMerges}`);
  if (!Number.isInteger(minFrequency) || minFrequency < 1) throw new RangeError(`learnMerges: minFrequency must be an integer >= 1, got ${minFrequency}`);
  const K = 256 + numMerges; // pair key = left * K + right (ids stay below K)
  const encoder = new TextEncoder();
  const words: number[][] = [];
  const freqs: number[] = [];
  for (const [piece, count] of pieceCounts) {
    const bytes = encoder.encode(piece);
    if (bytes.length < 2) continue; // a single byte has no pair
    words.push(Array.from(bytes));
    freqs.push(count);
  }

  const pairCount = new Map<number, number>();
  const where = new Map<number, number[]>(); // pair -> pieces that (may) contain it, no repeats in a row
  const note = (key: number, w: number): void => {
    const list = where.get(key);
    if (list === undefined) where.set(key, [w]);
    else if (list[list.length - 1] !== w) list.push(w);
  };
  for (let w = 0; w < words.length; w++) {
    const sym = words[w]!, f = freqs[w]!;
    for (let i = 0; i + 1 < sym.length; i++) {
      const key = sym[i]! * K + sym[i + 1]!;
      pairCount.set(key, (pairCount.get(key) ?? 0) + f);
      note(key, w);
    }
  }
  const heap = new PairHeap();
  for (const [key, count] of pairCount) heap.push(count, key);

  const merges: [number, number][] = [];
  while (merges.length < numMerges) {
    const top = heap.pop();
    if (top === undefined) break;
    const [count, key] = top;
    const live = pairCount.get(key) ?? 0;
    if (live !== count) {
      if (live > 0) heap.push(live, key);
      continue;
    }
    if (count < minFrequency) break;
    const a = Math.floor(key / K), b = key - a * K;
    const z = 256 + merges.length;
    merges.push([a, b]);
    applyMerge(a, b, z, where.get(key) ?? [], words, freqs, K, pairCount, where, heap, note);
    if (onProgress && merges.length % progressEvery === 0) onProgress(merges.length, count);
  }
  return merges;
}

/** Rewrites every piece that contains (a, b) and updates the pair counts by the difference. */
function applyMerge(
  a: number, b: number, z: number, candidates: readonly number[], words: number[][], freqs: readonly number[], K: number,
  pairCount: Map<number, number>, where: Map<number, number[]>, heap: PairHeap, note: (key: number, w: number) => void,
): void {
  const delta = new Map<number, number>();
  for (const w of candidates) {
    const sym = words[w]!;
    const out: number[] = [];
    for (let i = 0; i < sym.length;) {
      if (i + 1 < sym.length && sym[i] === a && sym[i + 1] === b) {
        out.push(z);
        i += 2;
      } else {
        out.push(sym[i]!);
        i += 1;
      }
    }
    if (out.length === sym.length) continue; // a stale entry: this piece no longer has the pair
    const f = freqs[w]!;
    for (let i = 0; i + 1 < sym.length; i++) {
      const key = sym[i]! * K + sym[i + 1]!;
      delta.set(key, (delta.get(key) ?? 0) - f);
    }
    for (let i = 0; i + 1 < out.length; i++) {
      const key = out[i]! * K + out[i + 1]!;
      delta.set(key, (delta.get(key) ?? 0) + f);
      if (out[i] === z || out[i + 1] === z) note(key, w);
    }
    words[w] = out;
  }
  for (const [key, d] of delta) {
    if (d === 0) continue;
    const next = (pairCount.get(key) ?? 0) + d;
    if (next <= 0) {
      pairCount.delete(key);
      where.delete(key);
    } else {
      pairCount.set(key, next);
      if (d > 0) heap.push(next, key); // only pairs with the new token grow
    }
  }
}
