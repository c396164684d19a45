/**
 * A byte-level BPE tokenizer: ids 0..255 are the bytes of UTF-8, then one id per learned merge,
 * then the special tokens (e.g. <|endoftext|>). Text -> GPT-2-style pre-token pieces -> UTF-8
 * bytes -> merges; each piece's ids are cached, so a corpus costs about one Map lookup per piece.
 * decode(encode(s)) === s for every well-formed string (lone UTF-16 surrogates cannot be UTF-8
 * encoded; like TextEncoder they become U+FFFD).
 */
import { readFile } from 'node:fs/promises';
import { oneLine } from '../../engine/describe-value.js';
import { writeFileAtomic } from '../data/atomic-write.js';
import { formatTokenizerJson, parseTokenizerFile, TokenizerFormatError, tokenizerFile, type TokenizerFile, type TokenizerSpec } from './format.js';
import { mergePiece } from './merge-piece.js';
import { forEachPiece } from './pretokenize.js';
import { countPieces, learnMerges, specialSplitter } from './train.js';

export interface TrainTokenizerOptions {
  /** Total vocabulary: 256 bytes + merges + special tokens. */
  vocabSize: number;
  /** Strings that get ids of their own after the merges (training text never merges across them). */
  specialTokens?: string[];
  /** A pair must occur at least this often to become a merge (default 2); the vocabulary may end smaller. */
  minFrequency?: number;
  onProgress?: (mergesDone: number, lastPairCount: number) => void;
}

export interface EncodeOptions {
  /** Map special-token strings in the text to their ids (default false: they are encoded as plain text). */
  allowSpecial?: boolean;
}

const CACHE_LIMIT = 1 << 18;

/** Strict: a replaced byte would silently change a special token. */
const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

export class BpeTokenizer {
  readonly merges: readonly (readonly [number, number])[];
  readonly specialTokens: readonly string[];
  private readonly rankKey: number;
  private readonly ranks = new Map<number, number>();
  private readonly specialIds = new Map<string, number>();
  private readonly splitter: RegExp | null;
  private readonly bytesOf: Uint8Array[] = [];
  private readonly cache = new Map<string, number[]>();
  private readonly encoder = new TextEncoder();
  private readonly decoder = new TextDecoder('utf-8');

  constructor(spec: TokenizerSpec) {
    // parseTokenizerFile checks every rule the constructor relies on; reuse it for hand-made specs.
    const checked = parseTokenizerFile(tokenizerFile(spec), 'BpeTokenizer(spec)');
    this.merges = checked.merges;
    this.specialTokens = checked.specialTokens;
    this.rankKey = 256 + this.merges.length;
    for (let b = 0; b < 256; b++) this.bytesOf.push(Uint8Array.of(b));
    this.merges.forEach(([a, b], r) => {
      this.ranks.set(a * this.rankKey + b, r);
      const left = this.bytesOf[a]!, right = this.bytesOf[b]!;
      const joined = new Uint8Array(left.length + right.length);
      joined.set(left);
      joined.set(right, left.length);
      this.bytesOf.push(joined);
    });
    this.specialTokens.forEach((s, i) => {
      this.specialIds.set(s, this.rankKey + i);
      this.bytesOf.push(this.encoder.encode(s));
    });
    this.splitter = specialSplitter(this.specialTokens);
  }

  /** Learns a tokenizer from one text or many (documents). */
  static train(texts: string | Iterable<string>, options: TrainTokenizerOptions): BpeTokenizer {
    const specialTokens = options.specialTokens ?? [];
    const numMerges = options.vocabSize - 256 - specialTokens.length;
    if (!Number.isInteger(options.vocabSize) || numMerges < 0) {
      throw new RangeError(`BpeTokenizer.train: vocabSize must be an integer >= 256 + ${specialTokens.length} special tokens, got ${options.vocabSize}`);
    }
    const counts = countPieces(typeof texts === 'string' ? [texts] : texts, specialTokens);
    const merges = learnMerges(counts, { numMerges, minFrequency: options.minFrequency, onProgress: options.onProgress });
    return new BpeTokenizer({ merges, specialTokens });
  }

  get vocabSize(): number {
    return this.bytesOf.length;
  }

  /** The id of a special token; throws naming the known ones when absent. */
  specialId(token: string): number {
    const id = this.specialIds.get(token);
    if (id === undefined) throw new RangeError(`BpeTokenizer: no special token ${JSON.stringify(token)} (have: ${JSON.stringify(this.specialTokens)}); train with specialTokens: [${JSON.stringify(token)}]`);
    return id;
  }

  /** The bytes a token stands for (a copy). */
  tokenBytes(id: number): Uint8Array {
    return this.bytesOf[this.checkId(id, 'tokenBytes')]!.slice();
  }

  encode(text: string, options: EncodeOptions = {}): number[] {
    const out: number[] = [];
    if (options.allowSpecial && this.splitter) {
      const re = new RegExp(this.splitter.source, 'g');
      let last = 0;
      for (let m = re.exec(text); m !== null; m = re.exec(text)) {
        this.encodeOrdinary(text.slice(last, m.index), out);
        out.push(this.specialIds.get(m[0])!);
        last = m.index + m[0].length;
      }
      this.encodeOrdinary(text.slice(last), out);
    } else {
      this.encodeOrdinary(text, out);
    }
    return out;
  }

  /** Encodes without looking for special tokens, appending to `out`. */
  encodeOrdinary(text: string, out: number[] = []): number[] {
    forEachPiece(text, (piece) => {
      const ids = this.encodePiece(piece);
      for (let i = 0; i < ids.length; i++) out.push(ids[i]!);
    });
    return out;
  }

  /** The ids of one pre-token piece (cached; do not mutate the result). */
  encodePiece(piece: string): readonly number[] {
    let ids = this.cache.get(piece);
    if (ids === undefined) {
      ids = mergePiece(this.encoder.encode(piece), (a, b) => this.ranks.get(a * this.rankKey + b) ?? -1);
      if (this.cache.size >= CACHE_LIMIT) this.cache.clear();
      this.cache.set(piece, ids);
    }
    return ids;
  }

  /** The UTF-8 bytes of a token sequence (exact, even when it splits a character). */
  decodeBytes(ids: ArrayLike<number>): Uint8Array {
    let total = 0;
    for (let i = 0; i < ids.length; i++) total += this.bytesOf[this.checkId(ids[i]!, 'decode')]!.length;
    const out = new Uint8Array(total);
    let at = 0;
    for (let i = 0; i < ids.length; i++) {
      const b = this.bytesOf[ids[i]!]!;
      out.set(b, at);
      at += b.length;
    }
    return out;
  }

  /** Text of a token sequence; bytes that are not valid UTF-8 (a cut character) become U+FFFD. */
  decode(ids: ArrayLike<number>): string {
    return this.decoder.decode(this.decodeBytes(ids));
  }

  toJSON(): TokenizerFile {
    return tokenizerFile({ merges: this.merges.map(([a, b]) => [a, b]), specialTokens: [...this.specialTokens] });
  }

  /** Writes tokenizer.json atomically (see format.ts for the layout). */
  async save(path: string): Promise<void> {
    await writeFileAtomic(path, formatTokenizerJson(this.toJSON()));
  }

  static fromJSON(data: unknown, source = 'tokenizer.json'): BpeTokenizer {
    return new BpeTokenizer(parseTokenizerFile(data, source));
  }

  static async load(path: string): Promise<BpeTokenizer> {
    let bytes: Uint8Array;
    try {
      bytes = await readFile(path);
    } catch (e) {
      throw new TokenizerFormatError(`tokenizer file ${path}: cannot read it (${oneLine((e as Error).message)}); check the path or train and save a tokenizer first`);
    }
    let text: string;
    try {
      text = STRICT_UTF8.decode(bytes);
    } catch {
      throw new TokenizerFormatError(`tokenizer file ${path}: not valid UTF-8; the file is corrupt`);
    }
    return BpeTokenizer.parse(text, path);
  }

  /** A tokenizer from the text of tokenizer.json; `source` (a path) names the file in errors. */
  static parse(text: string, source = 'tokenizer.json'): BpeTokenizer {
    let data: unknown;
    try {
      data = JSON.parse(text);
    } catch (e) {
      throw new TokenizerFormatError(`tokenizer file ${source}: not valid JSON (${oneLine((e as Error).message)}); the file is corrupt or truncated`);
    }
    return BpeTokenizer.fromJSON(data, source);
  }

  private checkId(id: number, op: string): number {
    if (!Number.isInteger(id) || id < 0 || id >= this.bytesOf.length) {
      throw new RangeError(`BpeTokenizer.${op}: token id ${id} is outside the vocabulary [0, ${this.bytesOf.length})`);
    }
    return id;
  }
}
