/** Atomic file writes: a temp file in the same directory, fsync, then rename over the target. */
import { randomBytes } from 'node:crypto';
import { open, rename, unlink } from 'node:fs/promises';

/** A temp name next to `path`, so the final rename stays on one file system. */
export function tempPathFor(path: string): string {
  return `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
}

/**
 * Writes `chunks` to `path` so that a reader sees either the old file or the whole new one, never
 * a partial file; on error the temp file is removed and the old file stays.
 */
export async function writeFileAtomic(path: string, chunks: string | Uint8Array | readonly Uint8Array[]): Promise<void> {
  const list = typeof chunks === 'string' ? [new TextEncoder().encode(chunks)] : chunks instanceof Uint8Array ? [chunks] : chunks;
  const tmp = tempPathFor(path);
  const fh = await open(tmp, 'wx');
  try {
    for (const c of list) {
      let done = 0;
      while (done < c.byteLength) done += (await fh.write(c, done, c.byteLength - done)).bytesWritten;
    }
    await fh.sync();
    await fh.close();
  } catch (e) {
    await fh.close().catch(() => {});
    await unlink(tmp).catch(() => {});
    throw e;
  }
  try {
    await rename(tmp, path);
  } catch (e) {
    await unlink(tmp).catch(() => {});
    throw e;
  }
}
