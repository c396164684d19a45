/**
 * The document interface every text source gives (Brown corpus, a folder of .txt files): a list of
 * documents with stable ids, and a deterministic train/validation split by document.
 */
import { StepError } from '../../engine/errors.js';

/** A data file or folder that is missing, unreadable or corrupt. */
export class DataError extends StepError {}

export interface TextDocument {
  /** Stable name: a Brown file id such as "ca01", or a path relative to the loaded folder. */
  readonly id: string;
  readonly text: string;
}

export interface DocumentSplit<D extends TextDocument = TextDocument> {
  readonly train: D[];
  readonly validation: D[];
}

/**
 * The split used everywhere: documents in their (sorted) order, every `every`-th one goes to
 * validation (indices every-1, 2*every-1, ...), the rest to training. With every = 10 that is 10%.
 * It depends only on the order of the ids, so it is stable across runs and machines.
 */
export function splitEveryNth<D extends TextDocument>(docs: readonly D[], every = 10): DocumentSplit<D> {
  if (!Number.isInteger(every) || every < 2) throw new RangeError(`splitEveryNth: every must be an integer >= 2, got ${every}`);
  const train: D[] = [], validation: D[] = [];
  docs.forEach((d, i) => ((i + 1) % every === 0 ? validation : train).push(d));
  return { train, validation };
}

/** The texts of `docs` joined by `separator` (a blank line by default). */
export function joinDocuments(docs: readonly TextDocument[], separator = '\n\n'): string {
  return docs.map((d) => d.text).join(separator);
}
