/**
 * The matmul shapes of training, per model: every linear's forward and both backward forms
 * (Linear computes y = x W^T with W [out, in]: forward x·W^T, dX = dY·W, dW = dY^T·X), the LM
 * head over one chunk of rows (autograd/ops/linear-cross-entropy.ts), LoRA adapters of rank 8 and
 * 64, and attention's products in their composed (batched matmul) form, plus 1024^3.
 */
import { DEFAULT_CHUNK_LOGITS_BYTES } from '../autograd/ops/linear-cross-entropy.js';
import type { MatmulShape } from './peers/tfjs.js';

export interface NamedShape extends MatmulShape {
  name: string;
  /** Batch of both operands (attention: batch x heads). */
  batch?: number;
}

interface ModelDims { name: string; tokens: number; batch: number; seq: number; hidden: number; ffn: number; vocab: number; heads: number }

/** bench:train's configs: tiny and small at 8 x 64 tokens, h256 at 8 x 256, 60m at 4 x 256. */
export const MODELS: ModelDims[] = [
  { name: 'tiny', tokens: 512, batch: 8, seq: 64, hidden: 64, ffn: 176, vocab: 1024, heads: 4 },
  { name: 'small', tokens: 512, batch: 8, seq: 64, hidden: 128, ffn: 344, vocab: 2048, heads: 4 },
  { name: 'h256', tokens: 2048, batch: 8, seq: 256, hidden: 256, ffn: 688, vocab: 4096, heads: 4 },
  { name: '60m', tokens: 1024, batch: 4, seq: 256, hidden: 512, ffn: 1376, vocab: 32000, heads: 8 },
];

/** x·W^T, dX = dY·W, dW = dY^T·X for a linear `inF` -> `outF` over T tokens. */
function linear(prefix: string, T: number, inF: number, outF: number): NamedShape[] {
  return [
    { name: `${prefix} fwd`, M: T, K: inF, N: outF, transB: true },
    { name: `${prefix} dX`, M: T, K: outF, N: inF },
    { name: `${prefix} dW`, M: outF, K: T, N: inF, transA: true },
  ];
}

export function modelShapes(m: ModelDims): NamedShape[] {
  const T = m.tokens, H = m.hidden, D = H / m.heads;
  const rows = Math.max(1, Math.min(T, Math.floor(DEFAULT_CHUNK_LOGITS_BYTES / (m.vocab * 4))));
  const p = (s: string): string => `${m.name} ${s}`;
  const shapes: NamedShape[] = [
    ...linear(p('q/k/v/o'), T, H, H),
    ...linear(p('mlp up/gate'), T, H, m.ffn),
    ...linear(p('mlp down'), T, m.ffn, H),
    // LM head per chunk of rows: logits = h·W^T; dH = dlogits·W; dW = dlogits^T·h.
    ...linear(p(`lm head (${rows} rows)`), rows, H, m.vocab),
  ];
  for (const r of [8, 64]) {
    // LoRA on a hidden x hidden linear: down = x·A^T (A [r, H]), up = down·B^T (B [H, r]), with backward.
    shapes.push(...linear(p(`lora r${r} down`), T, H, r), ...linear(p(`lora r${r} up`), T, r, H));
  }
  const bh = m.batch * m.heads, S = m.seq;
  shapes.push(
    { name: p('attn scores q·k^T'), M: S, K: D, N: S, transB: true, batch: bh },
    { name: p('attn probs·v'), M: S, K: S, N: D, batch: bh },
    { name: p('attn dV = P^T·dO'), M: S, K: S, N: D, transA: true, batch: bh },
    { name: p('attn dP = dO·v^T'), M: S, K: D, N: S, transB: true, batch: bh },
    { name: p('attn dQ = dS·k'), M: S, K: S, N: D, batch: bh },
    { name: p('attn dK = dS^T·q'), M: S, K: S, N: D, transA: true, batch: bh },
  );
  return shapes;
}

export const SQUARE: NamedShape = { name: 'square 1024^3', M: 1024, K: 1024, N: 1024 };

/** Edge tiles and a one-token decode, kept from the earlier bench. */
export const EXTRA: NamedShape[] = [
  { name: 'edge tiles, odd dims', M: 2047, K: 509, N: 1375 },
  { name: 'edge tiles, dW odd', M: 509, K: 2047, N: 1375, transA: true },
  { name: 'decode: 1 token x hidden x ffn', M: 1, K: 512, N: 1376 },
];

export const ALL_SHAPES: NamedShape[] = [SQUARE, ...MODELS.flatMap(modelShapes), ...EXTRA];
