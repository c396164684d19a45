/** Atomic file writes: a temp file in the same directory, fsync, then rename over the target. */
import { randomBytes } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import { open, rename, unlink } from 'node:fs/promises';

/** A temp name next to `path`, so the final rename stays on one file system. */
export function tempPathFor(path: string): string {
  return `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
}

/**
 * Lets `write` fill a temp file, then renames it to `path`: a reader sees either the old file or
 * the whole new one, never a partial file. On any error the temp file is removed and the old
 * file stays.
 */
export async function writeAtomic(path: string, write: (fh: FileHandle) => Promise<void>): Promise<void> {
  const tmp = tempPathFor(path);
  let fh: FileHandle | null = null;
  try {
    fh = await open(tmp, 'wx');
    await write(fh);
    await fh.sync();
    await fh.close();
    fh = null;
    await rename(tmp, path);
  } catch (e) {
    await fh?.close().catch(() => {});
    await unlink(tmp).catch(() => {});
    throw e;
  }
}

/** Writes `chunks` to `path` atomically (see writeAtomic). */
export async function writeFileAtomic(path: string, chunks: string | Uint8Array | readonly Uint8Array[]): Promise<void> {
  const list = typeof chunks === 'string' ? [new TextEncoder().encode(chunks)] : chunks instanceof Uint8Array ? [chunks] : chunks;
  await writeAtomic(path, async (fh) => {
    for (const c of list) {
      let done = 0;
      while (done < c.byteLength) done += (await fh.write(c, done, c.byteLength - done)).bytesWritten;
    }
  });
}
