import { test } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { train } from '../../step/train/trainer.js';
import { acquireRunLock, LOCK_FILE } from '../../step/train/run-folder.js';
import { captureStdout, cliArgs, events, runOptions, spawnCli } from './run-fixtures.js';

/** The pid of a process that has ended (so nothing owns it now). */
function deadPid(): number {
  return spawnSync(process.execPath, ['-e', '0']).pid!;
}

const isRoot = process.getuid?.() === 0;

/** Makes `dir` read-only (root ignores modes: a read-only bind mount over itself); returns the undo, or the reason it cannot. */
function makeReadOnly(dir: string): (() => void) | string {
  if (!isRoot) {
    chmodSync(dir, 0o555);
    return () => chmodSync(dir, 0o755);
  }
  try {
    execFileSync('mount', ['--bind', dir, dir], { stdio: 'ignore' });
    execFileSync('mount', ['-o', 'remount,bind,ro', dir], { stdio: 'ignore' });
  } catch (e) {
    return `root without mount permission cannot make a folder read-only (${(e as Error).message.split('\n')[0]})`;
  }
  return () => execFileSync('umount', [dir]);
}

/** A tmpfs of `kb` KiB (a disk that fills up), or the reason there is none (mounting needs root). */
function smallDisk(kb: number): { dir: string; undo: () => void } | string {
  const dir = mkdtempSync(join(tmpdir(), 'step-small-disk-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${kb}k`, 'tmpfs', dir], { stdio: 'ignore' });
  } catch (e) {
    return `mounting a small tmpfs needs root (${(e as Error).message.split('\n')[0]})`;
  }
  return { dir, undo: () => execFileSync('umount', [dir]) };
}

function skipOr<T>(t: TestContext, v: T | string): v is T {
  if (typeof v === 'string') { t.skip(v); return false; }
  return true;
}

test('a run name in use is refused (naming the folder, --resume and --overwrite); --overwrite replaces the run', async () => {
  const o = runOptions({ steps: 4, checkpointEvery: 2 });
  await train(o);
  const runDir = join(o.runsDir, 'r');
  const before = readFileSync(join(runDir, 'log.jsonl'), 'utf8');
  await assert.rejects(train({ ...o, steps: 6 }), new RegExp(`the run folder ${runDir} already exists; continue that run with --resume r, or replace it with --overwrite`));
  assert.equal(readFileSync(join(runDir, 'log.jsonl'), 'utf8'), before, 'the old run is untouched');
  // --overwrite with a bad option: refused before anything of the old run is removed
  await assert.rejects(train({ ...o, seqLen: 100 }, null, { overwrite: true }), /--seq-len 100 is beyond the model's context: max_position_embeddings is 64/);
  assert.equal(readFileSync(join(runDir, 'log.jsonl'), 'utf8'), before);
  const r = await train({ ...o, steps: 6, checkpointEvery: 3 }, null, { overwrite: true });
  assert.equal(r.finalStep, 6);
  assert.deepEqual(readdirSync(join(runDir, 'checkpoints')).sort(), ['step-000003', 'step-000006'], 'the old checkpoints are gone');
  assert.equal(events(runDir, 'start').length, 1, 'a fresh log');
  assert.ok(!existsSync(join(runDir, LOCK_FILE)), 'the lock is released at the end');
});

test('checks that fail leave no run folder behind: sequence length beyond the context, too little validation data, a bad name', async () => {
  const o = runOptions({ name: 'fresh' });
  await assert.rejects(train({ ...o, seqLen: 100 }), /step train: --seq-len 100 is beyond the model's context: max_position_embeddings is 64/);
  assert.ok(!existsSync(join(o.runsDir, 'fresh')));
  // 10% of a 200-token shard is validation: 20 tokens, fewer than one window of 32 + 1
  const shardDir = mkdtempSync(join(tmpdir(), 'step-shard-'));
  const shard = join(shardDir, 'tiny.bin');
  const { writeTokenShard } = await import('../../models/data/shards.js');
  await writeTokenShard(shard, Array.from({ length: 200 }, (_, i) => (i * 7) % 290));
  await assert.rejects(train({ ...o, data: shard, seqLen: 32 }), /the validation split of token shard .* has 20 tokens, fewer than one window of --seq-len 32 \+ 1 = 33/);
  assert.ok(!existsSync(join(o.runsDir, 'fresh')));
  await assert.rejects(train({ ...o, name: '..' }), /--name takes a plain run name/);
  await assert.rejects(train(o, '../r'), /--resume takes a plain run name/);
});

test('one owner per run: a second process is refused naming the holder; SIGTERM releases the lock; a stale lock is taken over', async () => {
  const o = runOptions({ name: 'locked', steps: 5000, checkpointEvery: 0 });
  const child = spawnCli(cliArgs(o));
  try {
    await child.waitFor(/run folder: /);
    const runDir = join(o.runsDir, 'locked');
    const lock = JSON.parse(readFileSync(join(runDir, LOCK_FILE), 'utf8'));
    assert.equal(lock.pid, child.pid);
    assert.ok(typeof lock.hostname === 'string' && typeof lock.started === 'string');
    // a second process: --resume of the same run
    const second = spawnCli(['train', '--resume', 'locked', '--runs-dir', o.runsDir, '--device', 'cpu']);
    const end = await second.exit;
    assert.notEqual(end.code, 0);
    assert.match(second.output(), new RegExp(`${runDir} is in use by process ${child.pid} \\(since .*\\); wait for it to finish or stop it`));
    // in this process: --overwrite of the running run, and resume
    await assert.rejects(train({ ...o, steps: 10 }, null, { overwrite: true }), new RegExp(`in use by process ${child.pid}`));
    await assert.rejects(train(o, 'locked'), new RegExp(`in use by process ${child.pid}`));
    assert.ok(existsSync(join(runDir, 'log.jsonl')), 'the running run keeps its folder');
    child.kill('SIGTERM');
    const { signal } = await child.exit;
    assert.equal(signal, 'SIGTERM');
    assert.ok(!existsSync(join(runDir, LOCK_FILE)), 'SIGTERM released the lock');
    // a lock left by a process that is gone: taken over with a note
    const gone = deadPid();
    writeFileSync(join(runDir, LOCK_FILE), JSON.stringify({ pid: gone, hostname: JSON.parse(JSON.stringify(lock)).hostname, started: '2026-01-01T00:00:00Z' }));
    const { value: r, out } = await captureStdout(() => train({ ...o, stopAfter: 2 }, 'locked'));
    assert.equal(r.stopped, true);
    assert.match(out, new RegExp(`took over the lock of process ${gone} \\(started 2026-01-01T00:00:00Z\\), which is no longer running`));
    assert.equal(events(runDir, 'lock-takeover').length, 1);
    assert.ok(!existsSync(join(runDir, LOCK_FILE)));
  } finally {
    child.kill('SIGKILL');
  }
});

test('SIGINT releases the lock; a lock held by this process refuses a second run here', async () => {
  const o = runOptions({ name: 'int', steps: 5000, checkpointEvery: 0 });
  const child = spawnCli(cliArgs(o));
  try {
    await child.waitFor(/run folder: /);
    const t0 = Date.now();
    child.kill('SIGINT');
    assert.equal((await child.exit).signal, 'SIGINT');
    assert.ok(Date.now() - t0 < 20_000, `the run stops at once on SIGINT (took ${Date.now() - t0} ms)`);
    assert.ok(!existsSync(join(o.runsDir, 'int', LOCK_FILE)));
  } finally {
    child.kill('SIGKILL');
  }
  const held = acquireRunLock(join(o.runsDir, 'int'));
  try {
    await assert.rejects(train(o, 'int'), /is already in use by this process/);
  } finally {
    held.release();
  }
});

test('leftovers of killed processes are cleaned on resume; an .old folder whose checkpoint is missing is moved back', async () => {
  const o = runOptions({ steps: 8, checkpointEvery: 2, stopAfter: 4 });
  await train(o);
  const ck = join(o.runsDir, 'r', 'checkpoints');
  const gone = deadPid();
  mkdirSync(join(ck, `step-000006.tmp-${gone}`));
  writeFileSync(join(ck, `step-000006.tmp-${gone}`, 'model.safetensors'), 'partial');
  renameSync(join(ck, 'step-000004'), join(ck, `step-000004.old-${gone}`)); // killed between the two renames
  writeFileSync(join(o.runsDir, 'r', `latest.json.tmp-${gone}-0a1b2c3d`), '{"checkpoint"');
  mkdirSync(join(ck, 'step-000002.tmp-1')); // pid 1 is alive: not a leftover
  const { value: r, out } = await captureStdout(() => train({ ...o, stopAfter: null }, 'r'));
  assert.equal(r.finalStep, 8);
  assert.equal(events(r.runDir, 'resume').at(-1)!.step, 4, 'resumed from the restored step-4 checkpoint');
  assert.match(out, new RegExp(`restored ${ck}/step-000004 from step-000004.old-${gone}`));
  assert.match(out, new RegExp(`removed ${ck}/step-000006.tmp-${gone}`));
  assert.deepEqual(readdirSync(ck).sort(), ['step-000002', 'step-000002.tmp-1', 'step-000004', 'step-000006', 'step-000008']);
  assert.ok(!existsSync(join(o.runsDir, 'r', `latest.json.tmp-${gone}-0a1b2c3d`)));
});

test('a run folder or checkpoints folder that is not writable is refused at the start with its path', async (t) => {
  const o = runOptions({ steps: 8, checkpointEvery: 2, stopAfter: 2 });
  await train(o);
  const runDir = join(o.runsDir, 'r');
  const undo = makeReadOnly(join(runDir, 'checkpoints'));
  if (!skipOr(t, undo)) return;
  try {
    await assert.rejects(train(o, 'r'), new RegExp(`the checkpoints folder ${runDir}/checkpoints is not writable \\((EROFS|EACCES)`));
  } finally {
    undo();
  }
  assert.ok(!existsSync(join(runDir, LOCK_FILE)), 'the refused start released the lock');
  const undoRuns = makeReadOnly(o.runsDir);
  if (!skipOr(t, undoRuns)) return;
  try {
    await assert.rejects(train({ ...o, name: 'new' }), /cannot create the run folder .*new \((EROFS|EACCES)\); check that .* is writable/);
    await assert.rejects(train(o, 'r'), new RegExp(`the run folder ${runDir} is not writable`));
  } finally {
    undoRuns();
  }
});

test('disk full: a checkpoint write removes its partial folder and says so; a start that fails removes the folder it created', async (t) => {
  const disk = smallDisk(200);
  if (!skipOr(t, disk)) return;
  try {
    const o = runOptions({ runsDir: disk.dir, steps: 8, checkpointEvery: 2 });
    const runDir = join(disk.dir, 'r');
    await assert.rejects(train(o), new RegExp(`writing checkpoint ${runDir}/checkpoints/step-0000\\d\\d failed: disk full \\(ENOSPC\\); removed the partial ${runDir}/checkpoints/step-0000\\d\\d\\.tmp-${process.pid}`));
    assert.ok(readdirSync(join(runDir, 'checkpoints')).every((n) => !n.includes('.tmp-')), 'no partial checkpoint left');
  } finally {
    disk.undo();
  }
  const tiny = smallDisk(8);
  if (!skipOr(t, tiny)) return;
  try {
    const o = runOptions({ runsDir: tiny.dir, name: 'cramped' });
    await assert.rejects(train(o), /ENOSPC|disk is full/);
    assert.deepEqual(readdirSync(tiny.dir), [], 'the run folder this start created is gone');
  } finally {
    tiny.undo();
  }
});

test('an unreadable lock file is respected while fresh (a starting process may be writing it) and taken over once old', () => {
  const dir = mkdtempSync(join(tmpdir(), 'step-lock-'));
  const path = join(dir, LOCK_FILE);
  writeFileSync(path, '');
  assert.throws(() => acquireRunLock(dir), new RegExp(`${path} exists but cannot be read; another process may be starting this run`));
  const old = new Date(Date.now() - 60_000);
  utimesSync(path, old, old);
  const lock = acquireRunLock(dir);
  assert.equal(lock.tookOver?.pid, 0);
  assert.equal(JSON.parse(readFileSync(path, 'utf8')).pid, process.pid);
  lock.release();
  assert.ok(!existsSync(path));
  assert.deepEqual(readdirSync(dir), [], 'no temp or stale file left');
});
