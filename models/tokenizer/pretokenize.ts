/**
 * Pre-tokenization: splits text into pieces (words, numbers, punctuation runs, whitespace) so BPE
 * merges never cross a word boundary. The pattern follows GPT-2's (Radford et al. 2019):
 * contractions ('s 't 're 've 'm 'll 'd), an optional leading space plus letters, plus digits, plus
 * other symbols, then whitespace (a whitespace run gives its last space to the word that follows).
 * Every code point belongs to exactly one alternative, so the pieces concatenate back to the input.
 */

/** The name stored in tokenizer.json; a file naming another pre-tokenizer is refused on load. */
export const PRETOKENIZER_NAME = 'gpt2-regex-v1';

const PIECE = /'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

/** Splits `text` into pieces whose concatenation is exactly `text`. */
export function pretokenize(text: string): string[] {
  if (text.length === 0) return [];
  const pieces = text.match(PIECE) ?? [];
  // The alternatives cover every code point; this guard keeps the round-trip promise even if a
  // future edit of the pattern leaves a gap (a gap becomes a piece of its own).
  let total = 0;
  for (const p of pieces) total += p.length;
  return total === text.length ? pieces : pretokenizeWithGaps(text);
}

/**
 * Calls `visit` for each piece in order without building an array (for long texts). Equivalent to
 * `pretokenize(text).forEach(visit)`.
 */
export function forEachPiece(text: string, visit: (piece: string) => void): void {
  const re = new RegExp(PIECE.source, PIECE.flags);
  let last = 0;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) {
    if (m.index > last) visit(text.slice(last, m.index));
    visit(m[0]);
    last = m.index + m[0].length;
  }
  if (last < text.length) visit(text.slice(last));
}

function pretokenizeWithGaps(text: string): string[] {
  const out: string[] = [];
  let last = 0;
  for (const m of text.matchAll(PIECE)) {
    if (m.index > last) out.push(text.slice(last, m.index));
    out.push(m[0]);
    last = m.index + m[0].length;
  }
  if (last < text.length) out.push(text.slice(last));
  return out;
}
