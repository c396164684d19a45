/**
 * safetensors I/O (the Hugging Face format): an 8-byte little-endian header length N, N bytes of
 * JSON `{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {string: string}}`
 * padded with spaces to a multiple of 8, then the raw little-endian data; offsets are relative to
 * the end of the header. Files are written atomically (temp file, fsync, rename) and every field
 * is validated on read, so a corrupt or truncated file fails with its path and the tensor named.
 */
import { open } from 'node:fs/promises';
import { writeAtomic } from './atomic-write.js';
import type { FileHandle } from 'node:fs/promises';
import { endianness } from 'node:os';
import type { Backend } from './backend.js';
import { fromArray } from './creation.js';
import { getDevice } from './device.js';
import type { DType } from './dtype.js';
import { f16BitsToF32, f32ToF16Bits } from './dtype.js';
import { describeValue, oneLine } from './describe-value.js';
import { StepError } from './errors.js';
import type { Category } from './memory.js';
import type { Tensor } from './tensor.js';

/** Any malformed, truncated or mismatched safetensors file. */
export class SafetensorsError extends StepError {}

/** dtype names of the format, with their element sizes. BF16 is read only (widened exactly to f32). */
const FILE_DTYPES = { F32: 4, F16: 2, I32: 4, F64: 8, BF16: 2 } as const;
export type SafetensorsDType = keyof typeof FILE_DTYPES;

const TO_FILE: Record<DType, SafetensorsDType> = { f32: 'F32', f16: 'F16', i32: 'I32', f64: 'F64' };
const FROM_FILE: Record<SafetensorsDType, DType> = { F32: 'f32', F16: 'f16', I32: 'i32', F64: 'f64', BF16: 'f32' };

/** Same cap as the reference implementation: a larger header means a corrupt length field. */
const MAX_HEADER_BYTES = 100 * 1024 * 1024;

export interface SafetensorsEntry {
  dtype: SafetensorsDType;
  shape: number[];
  /** Byte range in the data section: [begin, end). */
  dataOffsets: [number, number];
}

export interface SafetensorsHeader {
  entries: Map<string, SafetensorsEntry>;
  metadata: Record<string, string>;
  /** Where the data section starts in the file (8 + header length). */
  dataStart: number;
}

/** A tensor or metadata name, quoted and cut short: a corrupt header can hold a 100 MB name. */
function quoteName(name: string): string {
  return describeValue(name, 120);
}

/** Strict UTF-8: the format requires it, and a replaced byte would silently rename a tensor. */
const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function assertLittleEndian(where: string): void {
  if (endianness() !== 'LE') throw new SafetensorsError(`${where}: safetensors I/O needs a little-endian host`);
}

/** The dtype's file name, e.g. 'F32'. */
export function safetensorsDType(dtype: DType): SafetensorsDType {
  return TO_FILE[dtype];
}

/**
 * Validates a header (the JSON text between the length field and the data) against the data
 * section size. Throws SafetensorsError naming `file` and the offending tensor.
 */
export function parseSafetensorsHeader(json: string, dataBytes: number, file: string, dataStart = 8 + Buffer.byteLength(json)): SafetensorsHeader {
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch (e) {
    throw new SafetensorsError(`${file}: the header is not valid JSON (${oneLine((e as Error).message)}); the file is corrupt or not a safetensors file`);
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new SafetensorsError(`${file}: the header must be a JSON object, got ${Array.isArray(raw) ? 'an array' : typeof raw}`);
  }
  const entries = new Map<string, SafetensorsEntry>();
  let metadata: Record<string, string> = {};
  for (const [name, value] of Object.entries(raw as Record<string, unknown>)) {
    if (name === '__metadata__') {
      metadata = checkMetadata(value, file);
      continue;
    }
    entries.set(name, checkEntry(name, value, dataBytes, file));
  }
  // Overlap check: sorted by start, each tensor must begin at or after the previous one's end.
  const sorted = [...entries].filter(([, e]) => e.dataOffsets[1] > e.dataOffsets[0]).sort((a, b) => a[1].dataOffsets[0] - b[1].dataOffsets[0]);
  for (let i = 1; i < sorted.length; i++) {
    const [prevName, prev] = sorted[i - 1]!, [name, e] = sorted[i]!;
    if (e.dataOffsets[0] < prev.dataOffsets[1]) {
      throw new SafetensorsError(`${file}: tensor ${quoteName(name)} bytes [${e.dataOffsets.join(', ')}) overlap tensor ${quoteName(prevName)} bytes [${prev.dataOffsets.join(', ')}); the file is corrupt`);
    }
  }
  return { entries, metadata, dataStart };
}

function checkMetadata(value: unknown, file: string): Record<string, string> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new SafetensorsError(`${file}: "__metadata__" must be an object of strings`);
  }
  for (const [k, v] of Object.entries(value)) {
    if (typeof v !== 'string') throw new SafetensorsError(`${file}: "__metadata__" value of ${quoteName(k)} must be a string, got ${describeValue(v)}`);
  }
  return { ...(value as Record<string, string>) };
}

function checkEntry(name: string, value: unknown, dataBytes: number, file: string): SafetensorsEntry {
  const where = `${file}: tensor ${quoteName(name)}`;
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new SafetensorsError(`${where}: header entry must be an object with dtype, shape, data_offsets, got ${describeValue(value)}`);
  }
  const { dtype, shape, data_offsets: offsets } = value as Record<string, unknown>;
  // hasOwn, not `in`: "constructor" or "toString" are in every object.
  if (typeof dtype !== 'string' || !Object.hasOwn(FILE_DTYPES, dtype)) {
    throw new SafetensorsError(`${where}: unsupported dtype ${describeValue(dtype)}; this library reads ${Object.keys(FILE_DTYPES).join(', ')} (convert the file, e.g. to F32, first)`);
  }
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new SafetensorsError(`${where}: shape ${describeValue(shape)} must be an array of integers >= 0`);
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && o >= 0)) {
    throw new SafetensorsError(`${where}: data_offsets ${describeValue(offsets)} must be two integers >= 0`);
  }
  const [begin, end] = offsets as [number, number];
  const size = (shape as number[]).reduce((a, d) => a * d, 1);
  const bytes = size * FILE_DTYPES[dtype as SafetensorsDType];
  if (end < begin || end - begin !== bytes) {
    throw new SafetensorsError(`${where}: data_offsets [${begin}, ${end}) cover ${end - begin} bytes but ${dtype} ${describeValue(shape)} needs ${bytes}; the file is corrupt`);
  }
  if (end > dataBytes) {
    throw new SafetensorsError(`${where}: data_offsets end at byte ${end} of the data section but it holds only ${dataBytes} bytes; the file is truncated or corrupt`);
  }
  return { dtype: dtype as SafetensorsDType, shape: [...(shape as number[])], dataOffsets: [begin, end] };
}

/** The header bytes (length field + JSON padded with spaces to a multiple of 8) for these entries. */
export function encodeSafetensorsHeader(entries: ReadonlyMap<string, SafetensorsEntry>, metadata: Record<string, string> = {}): Buffer {
  const obj: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) obj.__metadata__ = metadata;
  for (const [name, e] of entries) {
    if (name === '__metadata__') throw new SafetensorsError('saveSafetensors: "__metadata__" is reserved and cannot name a tensor');
    obj[name] = { dtype: e.dtype, shape: e.shape, data_offsets: e.dataOffsets };
  }
  let json = JSON.stringify(obj);
  const pad = (8 - (Buffer.byteLength(json) % 8)) % 8;
  json += ' '.repeat(pad);
  const n = Buffer.byteLength(json);
  const out = Buffer.alloc(8 + n);
  out.writeBigUInt64LE(BigInt(n), 0);
  out.write(json, 8, 'utf8');
  return out;
}

/** A tensor's bytes as the file stores them. */
async function tensorBytes(t: Tensor): Promise<Uint8Array> {
  const values = await t.toArray();
  if (t.dtype === 'f16') {
    const bits = new Uint16Array(values.length);
    for (let i = 0; i < values.length; i++) bits[i] = f32ToF16Bits(values[i]!); // exact: f16 -> f32 -> f16 is lossless
    return new Uint8Array(bits.buffer);
  }
  return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
}

/**
 * Tensors by name. A list of tensors is one tensor of the file made of their rows one after
 * another (row blocks of a table too large for one buffer, see row-blocks.ts): same dtype and
 * trailing dims, the first dims summed.
 */
export type TensorMap = ReadonlyMap<string, Tensor | readonly Tensor[]> | Readonly<Record<string, Tensor | readonly Tensor[]>>;

function entriesOf(tensors: TensorMap): [string, readonly Tensor[]][] {
  const list = tensors instanceof Map ? [...tensors] : Object.entries(tensors);
  return list.map(([name, t]) => [name, Array.isArray(t) ? t : [t as Tensor]]);
}

/** dtype and shape of the file tensor made of `parts` (their rows concatenated). */
function concatenatedShape(parts: readonly Tensor[], where: string): { dtype: DType; shape: number[] } {
  const first = parts[0];
  if (!first) throw new SafetensorsError(`${where}: an empty list of row blocks`);
  if (parts.length === 1) return { dtype: first.dtype, shape: [...first.shape] };
  const rest = first.shape.slice(1).join();
  for (const t of parts) {
    if (t.rank === 0 || t.dtype !== first.dtype || t.shape.slice(1).join() !== rest) {
      throw new SafetensorsError(`${where}: row blocks must share the dtype and every dim but the first, got ${first.describe()} and ${t.describe()}`);
    }
  }
  return { dtype: first.dtype, shape: [parts.reduce((n, t) => n + t.shape[0]!, 0), ...first.shape.slice(1)] };
}

/**
 * Writes the tensors in one pass, then renames the file into place: a crash or error never leaves
 * a partial file at `path`. Tensors are read back one at a time (host memory stays at one tensor).
 * f16 is written as raw f16 bits (NaN payloads normalise to 0x7e00); f64 exists on the cpu backend only.
 */
export async function saveSafetensors(path: string, tensors: TensorMap, metadata: Record<string, string> = {}): Promise<void> {
  assertLittleEndian(`saveSafetensors(${path})`);
  for (const [k, v] of Object.entries(metadata)) {
    if (typeof v !== 'string') throw new SafetensorsError(`saveSafetensors(${path}): metadata "${k}" must be a string, got ${typeof v}`);
  }
  const list = entriesOf(tensors);
  const entries = new Map<string, SafetensorsEntry>();
  let offset = 0;
  for (const [name, parts] of list) {
    if (entries.has(name)) throw new SafetensorsError(`saveSafetensors(${path}): duplicate tensor name "${name}"`);
    for (const t of parts) t.use(`saveSafetensors(${path}) "${name}"`);
    const { dtype, shape } = concatenatedShape(parts, `saveSafetensors(${path}) "${name}"`);
    const bytes = shape.reduce((a, d) => a * d, 1) * FILE_DTYPES[TO_FILE[dtype]];
    entries.set(name, { dtype: TO_FILE[dtype], shape, dataOffsets: [offset, offset + bytes] });
    offset += bytes;
  }
  const header = encodeSafetensorsHeader(entries, metadata);
  await writeAtomic(path, async (fh) => {
    await fh.write(header);
    for (const [, parts] of list) for (const t of parts) await fh.write(await tensorBytes(t));
  });
}

export interface LoadTensorOptions {
  /** Target backend (default: the current device). */
  device?: Backend;
  /** Memory category of the new tensors (default `temporary`), or one per name. */
  category?: Category | ((name: string) => Category);
  /** Cast on load (e.g. F64 -> f32 for WebGPU). Default: the file's dtype (BF16 -> f32). */
  dtype?: DType;
}

export interface LoadOptions extends LoadTensorOptions {
  /** Load only these names; a name not in the file is an error. */
  names?: readonly string[];
}

/** Decodes raw little-endian bytes into numbers the backend's write() takes. */
function decodeValues(bytes: Uint8Array, dtype: SafetensorsDType): ArrayLike<number> {
  const buf = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength); // aligned copy
  switch (dtype) {
    case 'F32': return new Float32Array(buf);
    case 'I32': return new Int32Array(buf);
    case 'F64': return new Float64Array(buf);
    case 'F16': {
      const bits = new Uint16Array(buf);
      const out = new Float32Array(bits.length);
      for (let i = 0; i < bits.length; i++) out[i] = f16BitsToF32(bits[i]!);
      return out;
    }
    case 'BF16': {
      const bits = new Uint16Array(buf);
      const wide = new Uint32Array(bits.length);
      for (let i = 0; i < bits.length; i++) wide[i] = bits[i]! << 16; // bf16 is the top half of an f32
      return new Float32Array(wide.buffer);
    }
  }
}

/** An open safetensors file: the header is parsed and validated; tensors load one by one on demand. */
export class SafetensorsReader {
  private constructor(readonly path: string, private fh: FileHandle | null, readonly header: SafetensorsHeader) {}

  /** Opens and validates `path` (header, offsets against the file size). Close it when done. */
  static async open(path: string): Promise<SafetensorsReader> {
    assertLittleEndian(`openSafetensors(${path})`);
    let fh: FileHandle;
    try {
      fh = await open(path, 'r');
    } catch (e) {
      throw new SafetensorsError(`${path}: cannot open it (${(e as Error).message}); check the path`);
    }
    try {
      const stat = await fh.stat();
      if (!stat.isFile()) throw new SafetensorsError(`${path}: not a file (a directory or device); give the path of a .safetensors file`);
      const size = stat.size;
      if (size < 8) throw new SafetensorsError(`${path}: ${size} bytes is too small for a safetensors file (8-byte header length missing)`);
      const lenBuf = Buffer.alloc(8);
      await readExactly(fh, lenBuf, 0, path, 'header length');
      const n = lenBuf.readBigUInt64LE(0);
      if (n > BigInt(MAX_HEADER_BYTES) || n > BigInt(size - 8)) {
        throw new SafetensorsError(`${path}: header length field says ${n} bytes but the file has ${size} bytes (limit ${MAX_HEADER_BYTES}); the file is truncated or not a safetensors file`);
      }
      const headerBuf = Buffer.alloc(Number(n));
      await readExactly(fh, headerBuf, 8, path, 'header');
      if (headerBuf.length === 0 || headerBuf[0] !== 0x7b) {
        throw new SafetensorsError(`${path}: the header does not start with "{"; the file is corrupt or not a safetensors file`);
      }
      let json: string;
      try {
        json = UTF8.decode(headerBuf);
      } catch {
        throw new SafetensorsError(`${path}: the header is not valid UTF-8; the file is corrupt or not a safetensors file`);
      }
      const dataStart = 8 + Number(n);
      const header = parseSafetensorsHeader(json, size - dataStart, path, dataStart);
      return new SafetensorsReader(path, fh, header);
    } catch (e) {
      await fh.close();
      throw e;
    }
  }

  get names(): string[] {
    return [...this.header.entries.keys()];
  }

  get metadata(): Record<string, string> {
    return { ...this.header.metadata };
  }

  /** dtype, shape and byte range of one tensor, or a SafetensorsError listing the names. */
  entry(name: string): SafetensorsEntry {
    const e = this.header.entries.get(name);
    if (!e) {
      const names = this.names;
      throw new SafetensorsError(`${this.path}: no tensor "${name}" in the file; it holds ${names.length} tensors: ${names.slice(0, 8).map(quoteName).join(', ')}${names.length > 8 ? ', ...' : ''}`);
    }
    return e;
  }

  /** Reads one tensor's raw bytes. */
  async bytes(name: string): Promise<Uint8Array> {
    const e = this.entry(name);
    if (!this.fh) throw new SafetensorsError(`${this.path}: reader is closed`);
    const buf = Buffer.alloc(e.dataOffsets[1] - e.dataOffsets[0]);
    await readExactly(this.fh, buf, this.header.dataStart + e.dataOffsets[0], this.path, `tensor ${quoteName(name)}`);
    return buf;
  }

  /** One tensor's values as numbers (f16 and BF16 widened exactly to f32), for writing into an existing tensor. */
  async values(name: string): Promise<ArrayLike<number>> {
    return decodeValues(await this.bytes(name), this.entry(name).dtype);
  }

  /** Rows [first, first + rows) of one tensor (along its first dim) as numbers, as `values` gives them. */
  async rowValues(name: string, first: number, rows: number): Promise<ArrayLike<number>> {
    const e = this.entry(name);
    const total = e.shape[0] ?? 1;
    if (!Number.isSafeInteger(first) || !Number.isSafeInteger(rows) || first < 0 || rows < 0 || first + rows > total) {
      throw new SafetensorsError(`${this.path}: rows [${first}, ${first + rows}) of tensor ${quoteName(name)} are outside its ${total} rows`);
    }
    if (!this.fh) throw new SafetensorsError(`${this.path}: reader is closed`);
    const rowBytes = total === 0 ? 0 : (e.dataOffsets[1] - e.dataOffsets[0]) / total;
    const buf = Buffer.alloc(rows * rowBytes);
    await readExactly(this.fh, buf, this.header.dataStart + e.dataOffsets[0] + first * rowBytes, this.path, `rows of tensor ${quoteName(name)}`);
    return decodeValues(buf, e.dtype);
  }

  /** Loads one tensor onto a device; its label is its name. */
  async tensor(name: string, options: LoadTensorOptions = {}): Promise<Tensor> {
    const e = this.entry(name);
    const values = await this.values(name);
    const category = typeof options.category === 'function' ? options.category(name) : options.category;
    return fromArray(values, e.shape, { dtype: options.dtype ?? FROM_FILE[e.dtype], device: options.device ?? getDevice(), category, label: name });
  }

  async close(): Promise<void> {
    const fh = this.fh;
    this.fh = null;
    await fh?.close();
  }
}

async function readExactly(fh: FileHandle, buf: Buffer, position: number, path: string, what: string): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    const { bytesRead } = await fh.read(buf, done, buf.length - done, position + done);
    if (bytesRead === 0) throw new SafetensorsError(`${path}: file ended while reading ${what} (${done} of ${buf.length} bytes); it is truncated`);
    done += bytesRead;
  }
}

/** Opens a file for lazy loading by name (see SafetensorsReader). */
export function openSafetensors(path: string): Promise<SafetensorsReader> {
  return SafetensorsReader.open(path);
}

/**
 * Loads every tensor (or `options.names`) of a file onto a device. On error, tensors already
 * loaded are disposed before the error is thrown.
 */
export async function loadSafetensors(path: string, options: LoadOptions = {}): Promise<{ tensors: Map<string, Tensor>; metadata: Record<string, string> }> {
  const reader = await SafetensorsReader.open(path);
  const tensors = new Map<string, Tensor>();
  try {
    const names = options.names ?? reader.names;
    if (new Set(names).size !== names.length) throw new SafetensorsError(`loadSafetensors(${path}): a name appears twice in options.names`);
    for (const name of names) reader.entry(name); // every missing name fails before any upload
    for (const name of names) tensors.set(name, await reader.tensor(name, options));
    return { tensors, metadata: reader.metadata };
  } catch (e) {
    for (const t of tensors.values()) t.dispose();
    throw e;
  } finally {
    await reader.close();
  }
}

/**
 * Writes the file tensor `name` into existing tensors: one tensor of the same size, or the row
 * blocks that together hold its rows (in order; see row-blocks.ts), each read from the file by
 * itself so host memory stays at one block. Shapes are the caller's to check.
 */
export async function readRowBlocks(reader: SafetensorsReader, name: string, blocks: readonly Tensor[]): Promise<void> {
  if (blocks.length === 1) {
    const t = blocks[0]!;
    t.backend.write(t.storage, await reader.values(name));
    return;
  }
  let first = 0;
  for (const t of blocks) {
    t.backend.write(t.storage, await reader.rowValues(name, first, t.shape[0]!));
    first += t.shape[0]!;
  }
}
