import { appendFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Backend } from '../../engine/backend.js';
import type { ByCategory } from '../../engine/memory.js';
import { MODEL_STATE_CATEGORIES, formatBytes } from '../../engine/memory.js';

/** The run's peak so far, as logged in `memory` and `end` events. */
export interface PeakRecord {
  /** Peak of all allocated bytes, with the split by category at that moment. */
  total: number;
  breakdown: ByCategory;
  /** Peak of model state (parameter + frozen + gradient + optimizer live together), with its split. */
  modelState: { total: number; breakdown: Record<string, number> };
}

/**
 * The whole-run peak: the device is made for the run and its tracker's peak is never reset while
 * it trains, so this covers every step and every stage transition so far.
 */
export function wholeRunPeak(device: Backend): PeakRecord {
  const m = device.memory();
  const state = Object.fromEntries(MODEL_STATE_CATEGORIES.map((c) => [c, m.peakModelState.breakdown[c]]));
  return { total: m.peak.total, breakdown: m.peak.breakdown, modelState: { total: m.peakModelState.total, breakdown: state } };
}

/** One JSON object per line in runs/NAME/log.jsonl: the run's history, for `step report`. */
export class RunLog {
  readonly path: string;

  constructor(readonly runDir: string) {
    mkdirSync(runDir, { recursive: true });
    this.path = join(runDir, 'log.jsonl');
  }

  write(event: string, fields: Record<string, unknown>): void {
    appendFileSync(this.path, JSON.stringify({ event, time: new Date().toISOString(), ...fields }) + '\n');
  }
}

/** The terminal line: step, tokens/s, loss, lr, live/peak memory (redrawn in place on a TTY). */
export class Progress {
  private lastLine = 0;
  private readonly tty = process.stdout.isTTY === true;

  constructor(private readonly total: number, private readonly device: Backend, private readonly every: number) {}

  update(step: number, fields: { loss: number; lr: number; tokensPerSecond: number; stage?: number }): void {
    const m = this.device.memory();
    const width = String(this.total).length;
    const bar = this.bar(step / this.total);
    const line = `${bar} step ${String(step).padStart(width)}/${this.total}${fields.stage !== undefined ? ` stage ${fields.stage + 1}` : ''}` +
      `  loss ${fields.loss.toFixed(4)}  lr ${fields.lr.toExponential(2)}  ${Math.round(fields.tokensPerSecond)} tok/s` +
      `  mem ${formatBytes(m.allocated)} / peak ${formatBytes(m.peak.total)}`;
    if (this.tty) {
      process.stdout.write(`\r${line}\x1b[K`);
    } else if (step - this.lastLine >= this.every || step === this.total) {
      process.stdout.write(line + '\n');
      this.lastLine = step;
    }
  }

  /** Prints a line of its own (after the bar on a TTY). */
  note(text: string): void {
    process.stdout.write(this.tty ? `\r\x1b[K${text}\n` : `${text}\n`);
  }

  finish(): void {
    if (this.tty) process.stdout.write('\n');
  }

  private bar(fraction: number): string {
    const n = 20, full = Math.round(Math.min(1, Math.max(0, fraction)) * n);
    return `[${'#'.repeat(full)}${'.'.repeat(n - full)}]`;
  }
}
