/**
 * Documents from a text file or a folder of text files: the folder is walked recursively, files
 * ending in one of `extensions` (default .txt) are read as UTF-8 in sorted order of their relative
 * paths (code-unit order, '/' separators, so the order is the same on every OS).
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { join, relative, sep, basename } from 'node:path';
import { DataError, splitEveryNth, type DocumentSplit, type TextDocument } from './documents.js';

export interface TextFilesOptions {
  /** File name endings to read (default ['.txt']); ignored when `path` is a single file. */
  extensions?: string[];
  /** Every n-th document goes to validation (default 10); see splitEveryNth. */
  validationEvery?: number;
}

export interface TextFileCorpus extends DocumentSplit {
  readonly documents: TextDocument[];
}

export async function loadTextFiles(path: string, options: TextFilesOptions = {}): Promise<TextFileCorpus> {
  const extensions = options.extensions ?? ['.txt'];
  let info;
  try {
    info = await stat(path);
  } catch (e) {
    throw new DataError(`loadTextFiles: cannot read ${path} (${(e as Error).message}); give a text file or a folder of ${extensions.join('/')} files`);
  }
  let files: string[];
  if (info.isDirectory()) {
    files = (await walk(path)).filter((f) => extensions.some((x) => f.endsWith(x)));
    files = files.map((f) => relative(path, f).split(sep).join('/')).sort(compareCodeUnits);
    if (files.length === 0) throw new DataError(`loadTextFiles: no ${extensions.join('/')} files under ${path}`);
  } else {
    files = [basename(path)];
  }
  const root = info.isDirectory() ? path : join(path, '..');
  const documents: TextDocument[] = [];
  for (const id of files) documents.push({ id, text: await readUtf8(join(root, ...id.split('/'))) });
  return { documents, ...splitEveryNth(documents, options.validationEvery) };
}

async function walk(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await walk(p)));
    else if (e.isFile()) out.push(p);
  }
  return out;
}

function compareCodeUnits(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Strict UTF-8 (a BOM is dropped): bad bytes are an error naming the file, not silent U+FFFD. */
async function readUtf8(file: string): Promise<string> {
  const bytes = await readFile(file);
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new DataError(`loadTextFiles: ${file} is not valid UTF-8; convert it (e.g. iconv -t UTF-8) or remove it from the folder`);
  }
}
