/**
 * A run folder has one owner: `run.lock` holds the owning process's pid, host and start time. It
 * is created atomically (the content is written to a private temp file, then hard-linked to the
 * lock name, which fails when the lock exists: O_EXCL semantics with no half-written lock ever
 * visible). A lock whose pid is gone on this host is stale and is taken over. The lock is released
 * when the run ends, on error, and on SIGINT / SIGTERM.
 *
 * Also here: cleaning the temp folders a killed process left behind, and checking that a folder
 * is writable before the run depends on it.
 */
import { existsSync, linkSync, readdirSync, readFileSync, renameSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { StepError } from '../../engine/errors.js';

export const LOCK_FILE = 'run.lock';

export interface LockOwner {
  pid: number;
  hostname: string;
  started: string;
}

/** True when a process with this pid exists on this machine (EPERM: it exists but is not ours). */
export function pidAlive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function readOwner(path: string): LockOwner | null {
  try {
    const o = JSON.parse(readFileSync(path, 'utf8')) as Partial<LockOwner>;
    if (typeof o.pid !== 'number' || typeof o.hostname !== 'string') return null;
    return { pid: o.pid, hostname: o.hostname, started: String(o.started ?? '?') };
  } catch {
    return null;
  }
}

/** The held lock of a run folder; `release()` is idempotent. */
export class RunLock {
  private released = false;
  private readonly onSignal: (signal: NodeJS.Signals) => void;
  private readonly onExit: () => void;

  constructor(readonly path: string, readonly owner: LockOwner, readonly tookOver: LockOwner | null) {
    this.onExit = () => this.release();
    this.onSignal = (signal) => {
      this.release();
      // let the default action end the process, as if we had not been listening
      process.kill(process.pid, signal);
    };
    process.once('SIGINT', this.onSignal);
    process.once('SIGTERM', this.onSignal);
    process.once('exit', this.onExit);
  }

  release(): void {
    if (this.released) return;
    this.released = true;
    process.removeListener('SIGINT', this.onSignal);
    process.removeListener('SIGTERM', this.onSignal);
    process.removeListener('exit', this.onExit);
    const now = readOwner(this.path);
    if (now && now.pid === this.owner.pid && now.started === this.owner.started) {
      try { unlinkSync(this.path); } catch { /* already gone */ }
    }
  }
}

/**
 * Takes the lock of `runDir` (which must exist) for this process, or throws a StepError naming
 * the process that holds it. A stale lock (its pid is gone) is taken over; `tookOver` says whose.
 */
export function acquireRunLock(runDir: string): RunLock {
  const path = join(runDir, LOCK_FILE);
  const owner: LockOwner = { pid: process.pid, hostname: hostname(), started: new Date().toISOString() };
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, JSON.stringify(owner) + '\n');
  try {
    let tookOver: LockOwner | null = null;
    for (let attempt = 0; attempt < 5; attempt++) {
      try {
        linkSync(tmp, path);
        return new RunLock(path, owner, tookOver);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw new StepError(`cannot create the lock ${path}: ${(e as Error).message}`);
      }
      const holder = readOwner(path);
      if (holder === null) {
        // unreadable: a lock of another tool, or cut short; its age tells whether a writer may still be at it
        if (Date.now() - safeMtime(path) < 10_000) throw new StepError(`${path} exists but cannot be read; another process may be starting this run. Try again, or delete the file if no process uses ${runDir}`);
      } else if (holder.pid === process.pid && holder.hostname === owner.hostname) {
        throw new StepError(`${runDir} is already in use by this process (pid ${holder.pid}, since ${holder.started}); one run folder trains in one run at a time`);
      } else if (holder.hostname !== owner.hostname) {
        throw new StepError(`${runDir} is in use by process ${holder.pid} on host ${holder.hostname} (since ${holder.started}); if that process is gone, delete ${path} and try again`);
      } else if (pidAlive(holder.pid)) {
        throw new StepError(`${runDir} is in use by process ${holder.pid} (since ${holder.started}); wait for it to finish or stop it (kill ${holder.pid}), then try again`);
      }
      // stale: move it aside atomically (only one taker wins), check we moved the one we judged, drop it
      const aside = `${path}.stale-${process.pid}`;
      try {
        renameSync(path, aside);
      } catch {
        continue; // someone else took it over first; look again
      }
      const moved = readOwner(aside);
      if (holder && moved && (moved.pid !== holder.pid || moved.started !== holder.started)) {
        try { linkSync(aside, path); } catch { /* the new owner's lock is back or another one exists */ }
        rmSync(aside, { force: true });
        continue;
      }
      rmSync(aside, { force: true });
      tookOver = holder ?? { pid: 0, hostname: '?', started: '?' };
    }
    throw new StepError(`cannot take the lock ${path}: other processes keep taking it; try again`);
  } finally {
    rmSync(tmp, { force: true });
  }
}

function safeMtime(path: string): number {
  try { return statSync(path).mtimeMs; } catch { return 0; }
}

/** A leftover of a killed process: `<name>.tmp-PID[-hex]`, `<name>.old-PID`, `<name>.stale-PID`. */
const LEFTOVER = /^(.+)\.(tmp|old|stale)-(\d+)(?:-[0-9a-f]+)?$/;

/**
 * Removes the temp files and folders that processes no longer alive left in the run folder and in
 * its checkpoints/ folder (the caller holds the lock, so leftovers of this very process are stale
 * too). A `step-N.old-PID` whose `step-N` is missing (killed between the two renames of a
 * checkpoint write) is moved back into place rather than removed. Returns what it did, one line each.
 */
export function cleanStaleLeftovers(runDir: string): string[] {
  const done: string[] = [];
  for (const dir of [runDir, join(runDir, 'checkpoints')]) {
    if (!existsSync(dir)) continue;
    for (const name of readdirSync(dir)) {
      const m = LEFTOVER.exec(name);
      if (!m) continue;
      const pid = Number(m[3]);
      if (pid !== process.pid && pidAlive(pid)) continue;
      const path = join(dir, name), target = join(dir, m[1]!);
      if (m[2] === 'old' && !existsSync(target)) {
        renameSync(path, target);
        done.push(`restored ${target} from ${name} (left by process ${pid})`);
      } else {
        rmSync(path, { recursive: true, force: true });
        done.push(`removed ${path} (left by process ${pid})`);
      }
    }
  }
  return done;
}

/** Throws a StepError naming `dir` unless a probe file can be created and removed in it. */
export function checkWritable(dir: string, what: string): void {
  const probe = join(dir, `.write-probe-${process.pid}`);
  try {
    writeFileSync(probe, '');
    unlinkSync(probe);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? 'error';
    const hint = code === 'ENOSPC' ? 'the disk is full; free space' : 'fix its permissions (or choose another --runs-dir)';
    throw new StepError(`${what} ${dir} is not writable (${code}: ${(e as Error).message.split(',')[0]}); ${hint}, then try again`);
  }
}

/**
 * Undoes a start that failed: frees the optimizer and model made so far, releases the lock, and
 * removes what the start created (newest first), so a failed start leaves nothing behind.
 */
export function undoFailedStart(made: { optimizer: { dispose(): void } | null; model: { dispose(): void } | null; lock: RunLock | null; created: string[] }): void {
  made.optimizer?.dispose();
  made.model?.dispose();
  made.lock?.release();
  for (const path of made.created.reverse()) rmSync(path, { recursive: true, force: true });
}
