/**
 * Token shards in llm.c's format (karpathy/llm.c, dev/data/data_common.py): a header of 256
 * little-endian int32 — header[0] = 20240520 (magic), header[1] = 1 (version), header[2] = number
 * of tokens, the rest 0 — then the tokens as little-endian uint16. So a shard holds ids < 65536
 * and its size is exactly 1024 + 2 * count bytes. Files are written atomically.
 */
import { open, readFile } from 'node:fs/promises';
import { writeFileAtomic } from './atomic-write.js';
import { DataError } from './documents.js';

export const SHARD_MAGIC = 20240520;
export const SHARD_VERSION = 1;
export const SHARD_HEADER_INTS = 256;
export const SHARD_HEADER_BYTES = SHARD_HEADER_INTS * 4;
/** llm.c's llama-3 shards (uint32 tokens) use this magic; we name it in the error. */
const LLAMA3_MAGIC = 20240801;
const LITTLE_ENDIAN = new Uint8Array(Uint16Array.of(1).buffer)[0] === 1;

export interface ShardHeader {
  magic: number;
  version: number;
  tokenCount: number;
}

/** Writes `tokens` (each an integer in [0, 65535]) as one shard at `path`. */
export async function writeTokenShard(path: string, tokens: ArrayLike<number>): Promise<void> {
  const n = tokens.length;
  if (n > 0x7fffffff) throw new DataError(`writeTokenShard(${path}): ${n} tokens do not fit the int32 count of the header; split them into several shards`);
  const header = new DataView(new ArrayBuffer(SHARD_HEADER_BYTES));
  header.setInt32(0, SHARD_MAGIC, true);
  header.setInt32(4, SHARD_VERSION, true);
  header.setInt32(8, n, true);
  const body = new DataView(new ArrayBuffer(2 * n));
  for (let i = 0; i < n; i++) {
    const t = tokens[i]!;
    if (!Number.isInteger(t) || t < 0 || t > 0xffff) {
      throw new DataError(`writeTokenShard(${path}): token ${i} is ${t}, but shards store uint16 ids in [0, 65535]; use a vocabulary of at most 65536 tokens`);
    }
    body.setUint16(2 * i, t, true);
  }
  await writeFileAtomic(path, [new Uint8Array(header.buffer), new Uint8Array(body.buffer)]);
}

/** Checks a header (the first 1024 bytes) against the file size; errors name the file and the field. */
export function parseShardHeader(path: string, head: Uint8Array, fileBytes: number): ShardHeader {
  if (fileBytes < SHARD_HEADER_BYTES || head.byteLength < SHARD_HEADER_BYTES) {
    throw new DataError(`token shard ${path}: header truncated: the file has ${fileBytes} bytes, a header needs ${SHARD_HEADER_BYTES}; the file is corrupt or not a shard`);
  }
  const view = new DataView(head.buffer, head.byteOffset, SHARD_HEADER_BYTES);
  const magic = view.getInt32(0, true), version = view.getInt32(4, true), tokenCount = view.getInt32(8, true);
  if (magic !== SHARD_MAGIC) {
    const hint = magic === LLAMA3_MAGIC ? "it is an llm.c llama-3 shard (uint32 tokens), which this reader does not take" : 'the file is corrupt or not a token shard';
    throw new DataError(`token shard ${path}: header[0] (magic) is ${magic}, expected ${SHARD_MAGIC}; ${hint}`);
  }
  if (version !== SHARD_VERSION) throw new DataError(`token shard ${path}: header[1] (version) is ${version}, expected ${SHARD_VERSION} (uint16 tokens); re-write the shard with writeTokenShard`);
  if (tokenCount < 0) throw new DataError(`token shard ${path}: header[2] (token count) is ${tokenCount}, which is negative; the header is corrupt`);
  const want = SHARD_HEADER_BYTES + 2 * tokenCount;
  if (fileBytes !== want) {
    throw new DataError(`token shard ${path}: header[2] (token count) is ${tokenCount}, so the file should have ${want} bytes, but it has ${fileBytes}; the file is truncated or corrupt`);
  }
  return { magic, version, tokenCount };
}

/** Reads only the header (cheap for large shards). */
export async function readTokenShardHeader(path: string): Promise<ShardHeader> {
  let fh;
  try {
    fh = await open(path, 'r');
  } catch (e) {
    throw new DataError(`token shard ${path}: cannot open it (${(e as Error).message})`);
  }
  try {
    const stat = await fh.stat();
    if (!stat.isFile()) throw new DataError(`token shard ${path}: not a file (a directory or device); give the path of a .bin shard`);
    const head = new Uint8Array(SHARD_HEADER_BYTES);
    let bytesRead: number;
    try {
      ({ bytesRead } = await fh.read(head, 0, SHARD_HEADER_BYTES, 0));
    } catch (e) {
      throw new DataError(`token shard ${path}: cannot read it (${(e as Error).message})`);
    }
    return parseShardHeader(path, head.subarray(0, bytesRead), stat.size);
  } finally {
    await fh.close();
  }
}

/** Reads a whole shard; the tokens come back as a Uint16Array of header[2] elements. */
export async function readTokenShard(path: string): Promise<Uint16Array> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (e) {
    throw new DataError(`token shard ${path}: cannot read it (${(e as Error).message})`);
  }
  const { tokenCount } = parseShardHeader(path, bytes, bytes.byteLength);
  const out = new Uint16Array(tokenCount);
  const body = bytes.subarray(SHARD_HEADER_BYTES);
  if (LITTLE_ENDIAN) {
    new Uint8Array(out.buffer).set(body); // a copy also fixes the alignment of Buffer pool slices
  } else {
    const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
    for (let i = 0; i < tokenCount; i++) out[i] = view.getUint16(2 * i, true);
  }
  return out;
}
