/**
 * The built-in tasks, made from Brown documents (`step eval-tasks` passes the validation documents
 * only, `--write-sft pos-brown` the training ones). Every choice is deterministic given the seed:
 * the random numbers come from a Philox stream of that seed, drawn in a fixed order.
 *   lambada-brown        last-word cloze: a paragraph's sentence (with up to ~60 words of the
 *                        sentences before it) minus its last word; the target is that word.
 *   next-sentence-brown  multiple choice: the sentences before, then the true next sentence against
 *                        3 sentences of similar length drawn from other documents.
 *   pos-brown            instruction: tag each word of a short sentence with its Brown tag.
 */
import { philox4x32, splitU64 } from '../../engine/random.js';
import { detokenize } from '../../models/data/brown.js';
import type { TaggedDocument, TaggedSentence } from './brown-tagged.js';
import type { ChoiceExample, ClozeExample, GenerationExample, GenerationTask, Task } from './task.js';

export const BUILTIN_TASKS = ['lambada-brown', 'next-sentence-brown', 'pos-brown'] as const;
export type BuiltinTaskName = typeof BUILTIN_TASKS[number];

export const POS_INSTRUCTION = 'Tag each word of the sentence with its part of speech (Brown corpus tags).';

/** Uniform numbers in [0, 1) from a Philox stream: the n-th call uses block n of the seed. */
export function seededUniform(seed: number): () => number {
  const [k0, k1] = splitU64(seed);
  let n = 0;
  return () => (philox4x32(n++, 0, 0, 0, k0, k1)[0] >>> 8) * 2 ** -24;
}

/** Fisher-Yates shuffle of a copy, with `rand`. */
export function shuffled<T>(items: readonly T[], rand: () => number): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

const words = (s: TaggedSentence) => s.words.map((w) => w.word);

/** The words of the sentences before `at` in its paragraph, the nearest ones, up to `maxWords` (at least the one just before). */
function precedingWords(paragraph: readonly TaggedSentence[], at: number, maxWords: number): string[] {
  let out: string[] = [];
  for (let i = at - 1; i >= 0; i--) {
    const w = words(paragraph[i]!);
    if (out.length > 0 && out.length + w.length > maxWords) break;
    out = [...w, ...out];
  }
  return out;
}

const PUNCTUATION_TAG = /^[^a-z]+$/; // tags such as . , '' ) --
const PLAIN_WORD = /^[A-Za-z]{2,}$/;

/** Marks the next word is glued to (no space between), so a target after one would not follow a space. */
const OPENERS = new Set(['``', "'", '(', '[', '{']);

/** Where the sentence's last word is (only punctuation after it), or -1 when it is not a plain word after a space. */
function lastWordIndex(s: TaggedSentence): number {
  let i = s.words.length - 1;
  while (i >= 0 && PUNCTUATION_TAG.test(s.words[i]!.tag)) i--;
  return i > 0 && PLAIN_WORD.test(s.words[i]!.word) && !OPENERS.has(s.words[i - 1]!.word) ? i : -1;
}

export interface BrownTaskOptions {
  seed?: number;
  /** Context words before the sentence (lambada-brown, next-sentence-brown; default 60). */
  maxContextWords?: number;
}

/** lambada-brown: one example per paragraph of two or more sentences (a random eligible sentence other than the first). */
export function lambadaBrown(docs: readonly TaggedDocument[], options: BrownTaskOptions = {}): Task {
  const rand = seededUniform(options.seed ?? 0);
  const examples: ClozeExample[] = [];
  for (const doc of docs) {
    for (const paragraph of doc.paragraphs) {
      const eligible = paragraph.map((s, i) => (i > 0 && lastWordIndex(s) > 0 ? i : -1)).filter((i) => i > 0);
      if (eligible.length === 0) continue;
      const at = eligible[Math.floor(rand() * eligible.length)]!;
      const s = paragraph[at]!;
      const last = lastWordIndex(s);
      const context = [...precedingWords(paragraph, at, options.maxContextWords ?? 60), ...words(s).slice(0, last)];
      examples.push({ context: detokenize(context), target: s.words[last]!.word, source: doc.id });
    }
  }
  return { name: 'lambada-brown', kind: 'cloze', examples: shuffled(examples, rand), note: `last-word cloze, ${examples.length} paragraphs of ${docs.length} documents` };
}

const CHOICE_WORDS = { min: 4, max: 30 };

/** next-sentence-brown: one example per paragraph of two or more sentences; 3 distractors from other documents. */
export function nextSentenceBrown(docs: readonly TaggedDocument[], options: BrownTaskOptions & { distractors?: number } = {}): Task {
  const rand = seededUniform(options.seed ?? 0);
  // a choice starts with a letter or digit (not a quote or bracket closing the sentence before)
  const fits = (s: TaggedSentence) => s.words.length >= CHOICE_WORDS.min && s.words.length <= CHOICE_WORDS.max && /^[A-Za-z0-9]/.test(s.words[0]!.word);
  const pool = docs.flatMap((d) => d.paragraphs.flat()).filter(fits);
  const k = options.distractors ?? 3;
  const examples: ChoiceExample[] = [];
  for (const doc of docs) {
    for (const paragraph of doc.paragraphs) {
      const eligible = paragraph.map((s, i) => (i > 0 && fits(s) ? i : -1)).filter((i) => i > 0);
      if (eligible.length === 0) continue;
      const at = eligible[Math.floor(rand() * eligible.length)]!;
      const truth = paragraph[at]!;
      const n = truth.words.length;
      const others = pool.filter((s) => s.doc !== doc.id);
      const similar = others.filter((s) => s.words.length >= 0.7 * n && s.words.length <= 1.3 * n);
      const from = similar.length >= k ? similar : others;
      const picked = shuffled(from, rand).slice(0, k);
      const gold = Math.floor(rand() * (k + 1));
      const choices = picked.map((s) => detokenize(words(s)));
      choices.splice(gold, 0, detokenize(words(truth)));
      examples.push({ context: detokenize(precedingWords(paragraph, at, options.maxContextWords ?? 60)), choices, gold, source: doc.id });
    }
  }
  return { name: 'next-sentence-brown', kind: 'choice', examples: shuffled(examples, rand), note: `true next sentence vs ${k} from other documents, ${examples.length} paragraphs of ${docs.length} documents` };
}

export interface PosOptions {
  seed?: number;
  /** Longest sentence kept, in Brown tokens (words and punctuation; default 12). */
  maxWords?: number;
  /** Shortest sentence kept (default 3). */
  minWords?: number;
}

/** One pos-brown record per sentence of minWords..maxWords tokens: input the words, output their tags, both space-separated. */
export function posBrown(docs: readonly TaggedDocument[], options: PosOptions = {}): GenerationTask & { dropped: { long: number; short: number } } {
  const rand = seededUniform(options.seed ?? 0);
  const maxWords = options.maxWords ?? 12, minWords = options.minWords ?? 3;
  const examples: GenerationExample[] = [];
  const dropped = { long: 0, short: 0 };
  for (const doc of docs) {
    for (const s of doc.paragraphs.flat()) {
      if (s.words.length > maxWords) { dropped.long++; continue; }
      if (s.words.length < minWords || s.words.some((w) => w.tag === '')) { dropped.short++; continue; }
      examples.push({ instruction: POS_INSTRUCTION, input: words(s).join(' '), output: s.words.map((w) => w.tag).join(' '), source: doc.id });
    }
  }
  const total = examples.length + dropped.long + dropped.short;
  return {
    name: 'pos-brown', kind: 'generation', examples: shuffled(examples, rand), dropped,
    note: `kept ${examples.length} of ${total} sentences of ${docs.length} documents: ${dropped.long} longer than ${maxWords} tokens, ${dropped.short} shorter than ${minWords} or untagged dropped`,
  };
}
