/**
 * Reads a run folder (runs/NAME) for `step report`: train-config.json and log.jsonl (one JSON event
 * per line, written by step/train/run-log.ts). Resumed runs log some steps twice; the last record
 * of a step wins, as it is the history that the final model actually has.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { StepError } from '../../engine/errors.js';
import type { TrainOptions } from '../train/options.js';

export type StateCategory = 'parameter' | 'frozen' | 'gradient' | 'optimizer';
export const STATE_KEYS: readonly StateCategory[] = ['parameter', 'frozen', 'gradient', 'optimizer'];

export interface TrainPoint { step: number; tokens: number; loss: number; lr: number; stage: number; tokensPerSecond: number; memory: Record<string, number> }
export interface EvalPoint { step: number; tokens: number; loss: number; perplexity: number; stage: number }
/** A logged peak (step/train/run-log.ts PeakRecord): the process's peak so far, all categories and model state. */
export interface PeakLog {
  total: number;
  breakdown: Record<string, number>;
  /** Absent in logs written before the whole-run peak was logged. */
  modelState: { total: number; breakdown: Record<string, number> } | null;
}

export interface MemoryRecord {
  step: number;
  stage: number;
  measured: Record<StateCategory, number>;
  predicted: Record<StateCategory, number> | null;
  match: boolean | null;
  peak: PeakLog | null;
}
export interface MarkerEvent { event: string; step: number }

export interface RunData {
  name: string;
  dir: string;
  options: TrainOptions;
  start: Record<string, unknown> | null;
  end: Record<string, unknown> | null;
  train: TrainPoint[];
  evals: EvalPoint[];
  /** One per stage (the last record of each). */
  memory: MemoryRecord[];
  /** stage, relora-start, relora-restart, resume, stop, nan. */
  markers: MarkerEvent[];
  /**
   * Every peak the run logged (memory, stop and end events). Each process's tracker starts with
   * it and is never reset, so the largest of them is the run's whole-life peak.
   */
  peaks: PeakLog[];
  unigramPerplexity: number | null;
  /** Wall seconds from the first to the last event (all processes of a resumed run). */
  wallSeconds: number | null;
}

/** A run given as a path to its folder, or as a name under ./runs. */
export function resolveRunDir(spec: string, cwd = process.cwd()): string {
  const candidates = [resolve(cwd, spec), resolve(cwd, 'runs', spec)];
  for (const c of candidates) {
    if (existsSync(c) && statSync(c).isDirectory()) return c;
  }
  throw new StepError(`step report: no run "${spec}": neither ${candidates[0]} nor ${candidates[1]} is a folder; give a run folder (runs/NAME) or a name under ./runs`);
}

function readJson(path: string, what: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new StepError(`step report: cannot read ${what} ${path}: ${(e as Error).message}; is this a run folder written by step train?`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new StepError(`step report: ${path} is not valid JSON (${(e as Error).message}); the run's ${what} is corrupt`);
  }
}

const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);

/** Parses log.jsonl; a line that is not a JSON object with an `event` throws naming the file and line. */
export function parseLog(path: string, text: string): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  const lines = text.split('\n');
  for (const [i, line] of lines.entries()) {
    if (line.trim() === '') continue;
    let e: unknown;
    try {
      e = JSON.parse(line);
    } catch (err) {
      // A run killed while appending can leave a torn last line; anywhere else it is corruption.
      const last = lines.slice(i + 1).every((l) => l.trim() === '');
      throw new StepError(`step report: ${path}:${i + 1}: corrupt log line (${(err as Error).message})${last ? '; the run may have been killed while writing it: delete that line and run step report again' : ''}: ${line.slice(0, 120)}`);
    }
    if (typeof e !== 'object' || e === null || Array.isArray(e) || typeof (e as { event?: unknown }).event !== 'string') {
      throw new StepError(`step report: ${path}:${i + 1}: a log line must be a JSON object with an "event" field, got ${line.slice(0, 120)}`);
    }
    out.push(e as Record<string, unknown>);
  }
  if (out.length === 0) throw new StepError(`step report: ${path} is empty: the run wrote no events (did step train start?)`);
  return out;
}

function lastPerStep<T extends { step: number }>(items: T[]): T[] {
  const m = new Map<number, T>();
  for (const it of items) m.set(it.step, it);
  return [...m.values()].sort((a, b) => a.step - b.step);
}

function stateBytes(v: unknown): Record<StateCategory, number> | null {
  if (typeof v !== 'object' || v === null) return null;
  const o = v as Record<string, unknown>;
  return Object.fromEntries(STATE_KEYS.map((k) => [k, num(o[k]) ?? 0])) as Record<StateCategory, number>;
}

function peakOf(value: unknown): PeakLog | null {
  const p = value as { total?: unknown; breakdown?: unknown; modelState?: { total?: unknown; breakdown?: unknown } } | undefined;
  if (!p || num(p.total) === null) return null;
  const ms = p.modelState && num(p.modelState.total) !== null
    ? { total: p.modelState.total as number, breakdown: (p.modelState.breakdown ?? {}) as Record<string, number> } : null;
  return { total: p.total as number, breakdown: (p.breakdown ?? {}) as Record<string, number>, modelState: ms };
}

function requireFields(path: string, e: Record<string, unknown>, keys: string[]): void {
  for (const k of keys) {
    if (num(e[k]) === null) throw new StepError(`step report: ${path}: a "${String(e.event)}" event at step ${String(e.step)} lacks a numeric "${k}"; the log is corrupt`);
  }
}

/** Loads a run folder; `spec` is a path or a name under ./runs. */
export function loadRun(spec: string, cwd = process.cwd()): RunData {
  const dir = resolveRunDir(spec, cwd);
  const configPath = join(dir, 'train-config.json');
  const logPath = join(dir, 'log.jsonl');
  if (!existsSync(logPath)) throw new StepError(`step report: ${dir} has no log.jsonl; is it a run folder written by step train?`);
  const options = readJson(configPath, 'train-config.json') as TrainOptions;
  if (typeof options !== 'object' || options === null || typeof options.method !== 'string') {
    throw new StepError(`step report: ${configPath} does not hold training options (no "method"); the file is corrupt`);
  }
  const events = parseLog(logPath, readFileSync(logPath, 'utf8'));
  const train: TrainPoint[] = [], evals: EvalPoint[] = [], memory: MemoryRecord[] = [], markers: MarkerEvent[] = [], peaks: PeakLog[] = [];
  let start: Record<string, unknown> | null = null, end: Record<string, unknown> | null = null;
  for (const e of events) {
    const logged = peakOf(e.peak);
    if (logged && ['memory', 'stop', 'end'].includes(e.event as string)) peaks.push(logged);
    switch (e.event) {
      case 'start': start ??= e; break;
      case 'end': end = e; break;
      case 'train':
        requireFields(logPath, e, ['step', 'tokens', 'loss']);
        train.push({ step: e.step as number, tokens: e.tokens as number, loss: e.loss as number, lr: num(e.lr) ?? 0, stage: num(e.stage) ?? 0,
          tokensPerSecond: num(e.tokensPerSecond) ?? 0, memory: (e.memory ?? {}) as Record<string, number> });
        break;
      case 'eval':
        requireFields(logPath, e, ['step', 'tokens', 'loss']);
        evals.push({ step: e.step as number, tokens: e.tokens as number, loss: e.loss as number, perplexity: num(e.perplexity) ?? Math.exp(e.loss as number), stage: num(e.stage) ?? 0 });
        break;
      case 'memory': {
        requireFields(logPath, e, ['step', 'stage']);
        const measured = stateBytes(e.measured);
        if (!measured) throw new StepError(`step report: ${logPath}: the "memory" event at step ${String(e.step)} lacks "measured"; the log is corrupt`);
        const rec: MemoryRecord = { step: e.step as number, stage: e.stage as number, measured, predicted: stateBytes(e.predicted),
          match: typeof e.match === 'boolean' ? e.match : null, peak: logged };
        const at = memory.findIndex((m) => m.stage === rec.stage);
        if (at >= 0) memory[at] = rec; else memory.push(rec);
        break;
      }
      default:
        if (num(e.step) !== null) markers.push({ event: e.event as string, step: e.step as number });
    }
  }
  const times = events.map((e) => Date.parse(String(e.time))).filter((t) => Number.isFinite(t));
  const unigram = num(end?.unigramPerplexity) ?? num(start?.unigramPerplexity);
  return {
    name: basename(dir), dir, options, start, end, train: lastPerStep(train), evals: lastPerStep(evals),
    memory: memory.sort((a, b) => a.stage - b.stage), markers, peaks, unigramPerplexity: unigram,
    wallSeconds: times.length > 1 ? (Math.max(...times) - Math.min(...times)) / 1000 : null,
  };
}
