/**
 * The STEP integer programme, solved exactly: choose stage sizes n_1..n_K (positive integers,
 * sum L) minimising max over stages i of cost(n_i, N_{i-1}), where N_{i-1} = n_1 + ... + n_{i-1}
 * is the number of layers already trained (frozen in stage i) and N_0 = 0.
 *
 * Method: dynamic programming over (stage, layers placed). Let
 *   F(k, m) = least possible max over stages k..K of their costs, given N_{k-1} = m,
 * over tails n_k..n_K >= 1 summing to L - m. Stage j's cost depends only on (n_j, N_{j-1}), and
 * N_{j-1} is fixed by m and n_k..n_{j-1}, so
 *   F(K+1, L) = -inf,  F(K+1, m != L) = +inf,
 *   F(k, m) = min over n in 1..L-m-(K-k) of max(cost(n, m), F(k+1, m+n)).
 * Proof that F is the optimum (induction on k from K+1 down): any tail starting with n has max
 * max(cost(n, m), max of its rest) >= max(cost(n, m), F(k+1, m+n)) by the induction hypothesis
 * (max is monotone in each argument), and an optimal tail of F(k+1, m+n) attains it. So F(1, 0)
 * is the least peak over all C(L-1, K-1) splits. Costs are integers below 2^53 (checked), so every
 * comparison is exact. Work: O(K L^2) cost lookups (L = 100, K = 8: 80,000).
 *
 * Ties: many splits can share the least peak. We return the lexicographically LARGEST one (n_1 as
 * large as possible, then n_2, ...): the first stage is ordinary pre-training, so at the same
 * peak this trains the most layers fully and earliest. It is built forward: at stage k take the
 * largest n with cost(n, m) <= peak and F(k+1, m+n) <= peak; such an n exists at every stage
 * because the prefix chosen so far is a prefix of some optimal split.
 */
import { StepError } from '../../engine/errors.js';

/** Bytes of a stage that trains `n` new layers on top of `prev` already-trained (frozen) ones. */
export type StageCost = (n: number, prev: number) => number;

export interface SplitResult {
  /** n_1..n_K. */
  split: number[];
  /** cost(n_i, N_{i-1}) per stage. */
  stageCosts: number[];
  /** max of stageCosts. */
  peak: number;
  /** 1-based index of the first stage whose cost is the peak. */
  peakStage: number;
}

/** Checks L and K; throws naming them and the rule. */
export function checkStageCount(layers: number, stages: number, where = 'STEP planner'): void {
  if (!Number.isSafeInteger(layers) || layers < 1) throw new StepError(`${where}: the number of layers must be a positive integer, got ${layers}`);
  if (!Number.isSafeInteger(stages) || stages < 1) throw new StepError(`${where}: the number of stages K must be an integer >= 1, got ${stages}`);
  if (stages > layers) {
    throw new StepError(`${where}: K = ${stages} stages cannot each add at least one of the ${layers} layers; use K <= ${layers}`);
  }
}

/** Checks a given split against L (and K when given); throws naming the split and the rule. */
export function checkSplit(split: readonly number[], layers: number, stages?: number, where = 'STEP planner'): void {
  const shown = `[${split.join(',')}]`;
  if (split.length === 0) throw new StepError(`${where}: the split is empty; give K stage sizes that sum to ${layers}`);
  for (const n of split) {
    if (!Number.isSafeInteger(n) || n < 1) throw new StepError(`${where}: split ${shown} has ${n}; every stage adds a positive integer number of layers`);
  }
  const sum = split.reduce((s, n) => s + n, 0);
  if (sum !== layers) throw new StepError(`${where}: split ${shown} sums to ${sum}, but the model has ${layers} layers; the sizes must sum to ${layers}`);
  if (stages !== undefined && split.length !== stages) {
    throw new StepError(`${where}: split ${shown} has ${split.length} stages but K = ${stages}; give K sizes or leave K out`);
  }
}

function exactCost(cost: StageCost, n: number, prev: number): number {
  const c = cost(n, prev);
  if (!Number.isSafeInteger(c)) throw new StepError(`STEP planner: stage cost(${n} new, ${prev} frozen) = ${c} is not an integer below 2^53; the optimum could not be exact`);
  return c;
}

/** The costs of a given split. */
export function evaluateSplit(split: readonly number[], cost: StageCost): SplitResult {
  const stageCosts: number[] = [];
  let prev = 0;
  for (const n of split) {
    stageCosts.push(exactCost(cost, n, prev));
    prev += n;
  }
  const peak = Math.max(...stageCosts);
  return { split: [...split], stageCosts, peak, peakStage: stageCosts.indexOf(peak) + 1 };
}

/** The exact optimum (least peak; ties: lexicographically largest split). See the file comment. */
export function solveSplit(layers: number, stages: number, cost: StageCost): SplitResult {
  checkStageCount(layers, stages);
  const L = layers, K = stages;
  // c[m][n] = cost(n, m) for m + n <= L: each pair evaluated once.
  const c: number[][] = [];
  for (let m = 0; m < L; m++) {
    const row: number[] = [0];
    for (let n = 1; m + n <= L; n++) row.push(exactCost(cost, n, m));
    c.push(row);
  }
  // F[k][m] for k = 1..K+1 (index k), m = 0..L.
  const F: number[][] = Array.from({ length: K + 2 }, () => new Array<number>(L + 1).fill(Infinity));
  F[K + 1]![L] = -Infinity;
  for (let k = K; k >= 1; k--) {
    const left = K - k; // stages after k, each needs >= 1 layer
    for (let m = k - 1; m <= L - 1 - left; m++) {
      let best = Infinity;
      for (let n = 1; n <= L - m - left; n++) {
        const v = Math.max(c[m]![n]!, F[k + 1]![m + n]!);
        if (v < best) best = v;
      }
      F[k]![m] = best;
    }
  }
  const peak = F[1]![0]!;
  const split: number[] = [];
  let m = 0;
  for (let k = 1; k <= K; k++) {
    const left = K - k;
    let n = L - m - left;
    while (n >= 1 && !(c[m]![n]! <= peak && F[k + 1]![m + n]! <= peak)) n--;
    if (n < 1) throw new Error(`STEP planner: internal error rebuilding the optimal split at stage ${k}`);
    split.push(n);
    m += n;
  }
  const r = evaluateSplit(split, cost);
  if (r.peak !== peak) throw new Error(`STEP planner: internal error: split [${split}] peaks at ${r.peak}, optimum ${peak}`);
  return r;
}
