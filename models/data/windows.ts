/**
 * Training windows from a token stream. A window of length T starting at s gives inputs
 * tokens[s .. s+T) and targets tokens[s+1 .. s+T+1) (next-token prediction), so s ranges over
 * [0, N - T - 1] (P = N - T positions).
 *
 * Random windows are a pure function of (seed, step, row): row b of step t takes one Philox4x32-10
 * block (engine/random.ts) with counter (t low 32 bits, t high 32 bits, b, 0) and key (seed low,
 * seed high); its first two words w0, w1 form u = (w0 * 2^21 + (w1 >>> 11)) * 2^-53 in [0, 1) and
 * s = floor(u * P). The sampler's whole state is {seed, step}: restore it and a resumed run draws
 * exactly the windows it would have drawn. Arrays are plain host Int32Array, [B, T] row-major,
 * ready for fromArray(inputs, [B, T], { dtype: 'i32' }).
 */
import { Generator as PhiloxGenerator, philox4x32, splitU64 } from '../../engine/random.js';
import { DataError } from './documents.js';

export type TokenArray = Uint16Array | Uint32Array | Int32Array | readonly number[];

export interface WindowBatch {
  /** [batch, seqLen] row-major. */
  inputs: Int32Array;
  /** [batch, seqLen] row-major: inputs shifted left by one token. */
  targets: Int32Array;
  batch: number;
  seqLen: number;
  /** Start of each row's window in the token array. */
  starts: number[];
}

export interface SamplerState {
  seed: number;
  /** The step whose windows the next call to next() returns. */
  step: number;
}

export interface WindowShape {
  batch: number;
  seqLen: number;
}

function checkShape(op: string, tokens: TokenArray, { batch, seqLen }: WindowShape): void {
  if (!Number.isInteger(batch) || batch < 1) throw new RangeError(`${op}: batch must be a positive integer, got ${batch}`);
  if (!Number.isInteger(seqLen) || seqLen < 1) throw new RangeError(`${op}: seqLen must be a positive integer, got ${seqLen}`);
  if (tokens.length < seqLen + 1) {
    throw new DataError(`${op}: a window of seqLen ${seqLen} needs ${seqLen + 1} tokens, but the data has ${tokens.length}; use more data or a shorter seqLen`);
  }
}

/** Copies the windows at `starts` into a batch. */
export function gatherWindows(tokens: TokenArray, starts: readonly number[], seqLen: number): WindowBatch {
  const batch = starts.length;
  const inputs = new Int32Array(batch * seqLen), targets = new Int32Array(batch * seqLen);
  starts.forEach((s, b) => {
    if (!Number.isInteger(s) || s < 0 || s + seqLen + 1 > tokens.length) {
      throw new RangeError(`gatherWindows: window ${b} starts at ${s}, outside [0, ${tokens.length - seqLen - 1}] for ${tokens.length} tokens and seqLen ${seqLen}`);
    }
    for (let t = 0; t < seqLen; t++) {
      inputs[b * seqLen + t] = tokens[s + t]!;
      targets[b * seqLen + t] = tokens[s + t + 1]!;
    }
  });
  return { inputs, targets, batch, seqLen, starts: [...starts] };
}

/** The window starts of (seed, step): `batch` values in [0, positions). */
export function windowStarts(seed: number, step: number, batch: number, positions: number): number[] {
  PhiloxGenerator.checkSeed(seed);
  if (!Number.isSafeInteger(step) || step < 0) throw new RangeError(`windowStarts: step must be a non-negative integer, got ${step}`);
  const [k0, k1] = splitU64(seed), [c0, c1] = splitU64(step);
  const out: number[] = [];
  for (let b = 0; b < batch; b++) {
    const [w0, w1] = philox4x32(c0, c1, b, 0, k0, k1);
    const u = (w0 * 2 ** 21 + (w1 >>> 11)) * 2 ** -53;
    out.push(Math.floor(u * positions));
  }
  return out;
}

/** Random training windows, reproducible from {seed, step}. */
export class WindowSampler {
  private readonly tokens: TokenArray;
  readonly batch: number;
  readonly seqLen: number;
  private seedValue: number;
  private stepValue: number;

  constructor(tokens: TokenArray, options: WindowShape & { seed: number; step?: number }) {
    checkShape('WindowSampler', tokens, options);
    this.tokens = tokens;
    this.batch = options.batch;
    this.seqLen = options.seqLen;
    this.seedValue = PhiloxGenerator.checkSeed(options.seed);
    this.stepValue = 0;
    this.setState({ seed: options.seed, step: options.step ?? 0 });
  }

  /** The windows of any step (does not move the sampler). */
  batchAt(step: number): WindowBatch {
    const starts = windowStarts(this.seedValue, step, this.batch, this.tokens.length - this.seqLen);
    return gatherWindows(this.tokens, starts, this.seqLen);
  }

  /** The windows of the current step, then advances to the next step. */
  next(): WindowBatch {
    const out = this.batchAt(this.stepValue);
    this.stepValue += 1;
    return out;
  }

  getState(): SamplerState {
    return { seed: this.seedValue, step: this.stepValue };
  }

  setState(state: SamplerState): void {
    this.seedValue = PhiloxGenerator.checkSeed(state.seed);
    if (!Number.isSafeInteger(state.step) || state.step < 0) throw new RangeError(`WindowSampler.setState: step must be a non-negative integer, got ${state.step}`);
    this.stepValue = state.step;
  }
}

/** How many non-overlapping windows `sequentialWindows` yields. */
export function countSequentialWindows(tokenCount: number, seqLen: number): number {
  return tokenCount > seqLen ? Math.floor((tokenCount - 1) / seqLen) : 0;
}

/**
 * Non-overlapping windows in order (starts 0, T, 2T, ... while a full window plus its last target
 * fits), grouped `batch` at a time; the last batch may be smaller. For validation: every token
 * after the first is a target exactly once, except at most T - 1 at the end.
 */
export function* sequentialWindows(tokens: TokenArray, shape: WindowShape): Generator<WindowBatch> {
  checkShape('sequentialWindows', tokens, shape);
  const { batch, seqLen } = shape;
  const windows = countSequentialWindows(tokens.length, seqLen);
  for (let first = 0; first < windows; first += batch) {
    const starts: number[] = [];
    for (let w = first; w < Math.min(first + batch, windows); w++) starts.push(w * seqLen);
    yield gatherWindows(tokens, starts, seqLen);
  }
}
