/**
 * Parameter counts of a LLaMA config, split the way the STEP planner needs them: embeddings, one
 * decoder layer (attention q,k,v,o with grouped-query k/v; MLP gate, up, down; two RMSNorm
 * weights), all layers, the final norm and the LM head (0 when tied to the embeddings).
 */
import type { LlamaConfig } from './config.js';
import { ConfigError, kvDim } from './config.js';

/** One bias-free linear of a decoder layer: HF module path within the layer, weight [out, in]. */
export interface LinearShape {
  /** e.g. 'self_attn.q_proj' (full name: model.layers.{i}.self_attn.q_proj.weight). */
  path: string;
  in: number;
  out: number;
}

/** The 7 linears of one decoder layer, in Hugging Face module order. */
export function layerLinears(c: LlamaConfig): LinearShape[] {
  const h = c.hidden_size, f = c.intermediate_size, kv = kvDim(c);
  return [
    { path: 'self_attn.q_proj', in: h, out: h },
    { path: 'self_attn.k_proj', in: h, out: kv },
    { path: 'self_attn.v_proj', in: h, out: kv },
    { path: 'self_attn.o_proj', in: h, out: h },
    { path: 'mlp.gate_proj', in: h, out: f },
    { path: 'mlp.up_proj', in: h, out: f },
    { path: 'mlp.down_proj', in: f, out: h },
  ];
}

export interface LayerCounts {
  q: number; k: number; v: number; o: number;
  attention: number;
  gate: number; up: number; down: number;
  mlp: number;
  /** input_layernorm + post_attention_layernorm weights (2 * hidden). */
  norms: number;
  total: number;
}

export interface ParameterCounts {
  /** model.embed_tokens.weight: vocab * hidden. */
  embeddings: number;
  perLayer: LayerCounts;
  /** perLayer.total * num_hidden_layers. */
  layers: number;
  /** model.norm.weight: hidden. */
  finalNorm: number;
  /** lm_head.weight: vocab * hidden, or 0 when tied to the embeddings. */
  head: number;
  total: number;
  /** total without embeddings and head (what "1.2B" counts in the STEP paper's largest model). */
  nonEmbedding: number;
}

export function countParameters(c: LlamaConfig): ParameterCounts {
  const [q, k, v, o, gate, up, down] = layerLinears(c).map((l) => l.in * l.out) as [number, number, number, number, number, number, number];
  const attention = q + k + v + o, mlp = gate + up + down, norms = 2 * c.hidden_size;
  const perLayer: LayerCounts = { q, k, v, o, attention, gate, up, down, mlp, norms, total: attention + mlp + norms };
  const embeddings = c.vocab_size * c.hidden_size;
  const layers = perLayer.total * c.num_hidden_layers;
  const finalNorm = c.hidden_size;
  const head = c.tie_word_embeddings ? 0 : embeddings;
  return { embeddings, perLayer, layers, finalNorm, head, total: embeddings + layers + finalNorm + head, nonEmbedding: layers + finalNorm };
}

/** The largest LoRA rank every linear of a layer takes: min over the 7 linears of min(in, out). */
export function maxLoraRank(c: LlamaConfig): number {
  return Math.min(...layerLinears(c).map((l) => Math.min(l.in, l.out)));
}

/** Checks a LoRA rank against the config; throws naming the rank and the allowed range. */
export function checkLoraRank(c: LlamaConfig, rank: number, where = 'LoRA'): number {
  const max = maxLoraRank(c);
  if (!Number.isInteger(rank) || rank < 1 || rank > max) {
    throw new ConfigError(`${where}: rank ${rank} must be an integer in 1..${max} (the smallest side of a layer's linears; hidden size ${c.hidden_size}, k/v width ${kvDim(c)})`);
  }
  return rank;
}

/** LoRA parameters of one layer: rank * sum over the 7 linears of (in + out) (A: [r, in], B: [out, r]). */
export function loraParamsPerLayer(c: LlamaConfig, rank: number): number {
  checkLoraRank(c, rank);
  return rank * layerLinears(c).reduce((s, l) => s + l.in + l.out, 0);
}
