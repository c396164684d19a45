import { appendFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Backend } from '../../engine/backend.js';
import { formatBytes } from '../../engine/memory.js';

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
