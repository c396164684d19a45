import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * A small training corpus for tests: a temp folder of `documents` .txt files of generated
 * English-like text (300 words each), reproducible from `seed`.
 */
export function tinyCorpus(options: { documents?: number; seed?: number } = {}): string {
  const dir = mkdtempSync(join(tmpdir(), 'step-corpus-'));
  const words = ['the', 'cat', 'sat', 'on', 'a', 'mat', 'and', 'dog', 'ran', 'to', 'house', 'big', 'red', 'small', 'tree', 'under', 'blue', 'sky'];
  let x = options.seed ?? 7;
  for (let d = 0; d < (options.documents ?? 40); d++) {
    const out: string[] = [];
    for (let i = 0; i < 300; i++) { x = (x * 1103515245 + 12345) % 2 ** 31; out.push(words[x % words.length]!); if (i % 12 === 11) out.push('.'); }
    writeFileSync(join(dir, `doc${String(d).padStart(2, '0')}.txt`), out.join(' '));
  }
  return dir;
}
