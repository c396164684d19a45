/**
 * Named LLaMA configurations.
 *
 * - `60m`, `130m`, `350m`, `1b`: the LLaMA family of GaLore (arXiv 2403.03507) and ReLoRA, which
 *   the STEP paper trains: vocabulary 32000 (the T5 tokenizer's), untied embeddings, 1024
 *   positions (GaLore's max_sequence_length), RMSNorm eps 1e-6. `350m` has 368M parameters (the
 *   paper's 368M model); `1b` has 1.208B without embeddings (the paper's 1.2B).
 * - `680m`: ours, for the paper's 680M class (its config is not in GaLore's family): h1536 f4096
 *   16 heads 24 layers, 679.5M parameters without embeddings, otherwise as the family above.
 * - `tiny`, `small`: ours, sized to train in minutes on 2 CPU cores: context 128, SwiGLU width
 *   about 8/3 of hidden rounded to a multiple of 8, untied like the family above.
 * Any key can be overridden (the tokenizer decides vocab_size; STEP stages change num_hidden_layers).
 */
import type { LlamaConfig } from './config.js';
import { CONFIG_KEYS, ConfigError, validateConfig } from './config.js';

interface Preset {
  description: string;
  shape: Pick<LlamaConfig, 'vocab_size' | 'hidden_size' | 'intermediate_size' | 'num_attention_heads' | 'num_hidden_layers' | 'max_position_embeddings'>;
}

const PRESETS: Record<string, Preset> = {
  tiny: { description: 'ours: trains in minutes on 2 CPU cores', shape: { vocab_size: 1024, hidden_size: 64, intermediate_size: 176, num_attention_heads: 4, num_hidden_layers: 4, max_position_embeddings: 128 } },
  small: { description: 'ours: a larger CPU model', shape: { vocab_size: 2048, hidden_size: 128, intermediate_size: 344, num_attention_heads: 4, num_hidden_layers: 6, max_position_embeddings: 128 } },
  '60m': { description: 'GaLore/ReLoRA LLaMA 60M', shape: { vocab_size: 32000, hidden_size: 512, intermediate_size: 1376, num_attention_heads: 8, num_hidden_layers: 8, max_position_embeddings: 1024 } },
  '130m': { description: 'GaLore/ReLoRA LLaMA 130M', shape: { vocab_size: 32000, hidden_size: 768, intermediate_size: 2048, num_attention_heads: 12, num_hidden_layers: 12, max_position_embeddings: 1024 } },
  '350m': { description: 'GaLore/ReLoRA LLaMA 350M (STEP paper: 368M)', shape: { vocab_size: 32000, hidden_size: 1024, intermediate_size: 2736, num_attention_heads: 16, num_hidden_layers: 24, max_position_embeddings: 1024 } },
  '680m': { description: 'ours: STEP paper 680M class (non-embedding 679.5M)', shape: { vocab_size: 32000, hidden_size: 1536, intermediate_size: 4096, num_attention_heads: 16, num_hidden_layers: 24, max_position_embeddings: 1024 } },
  '1b': { description: 'GaLore/ReLoRA LLaMA 1B (STEP paper: 1.2B)', shape: { vocab_size: 32000, hidden_size: 2048, intermediate_size: 5461, num_attention_heads: 32, num_hidden_layers: 24, max_position_embeddings: 1024 } },
};

/** Preset names, smallest first. */
export const PRESET_NAMES: readonly string[] = Object.keys(PRESETS);

export function presetDescription(name: string): string {
  return lookup(name).description;
}

function lookup(name: string): Preset {
  const p = Object.prototype.hasOwnProperty.call(PRESETS, name) ? PRESETS[name] : undefined;
  if (!p) throw new ConfigError(`unknown preset ${JSON.stringify(name)}; valid presets: ${PRESET_NAMES.join(', ')}`);
  return p;
}

/**
 * The config of a preset, with `overrides` applied (e.g. { vocab_size: tokenizer.vocabSize,
 * num_hidden_layers: 12 }) and validated. Presets carry no token ids: the tokenizer sets them.
 */
export function presetConfig(name: string, overrides: Partial<LlamaConfig> = {}): LlamaConfig {
  const p = lookup(name);
  for (const k of Object.keys(overrides)) {
    if (!(CONFIG_KEYS as readonly string[]).includes(k)) {
      throw new ConfigError(`preset ${name}: unknown override key "${k}"; valid keys: ${CONFIG_KEYS.join(', ')}`);
    }
  }
  const c: LlamaConfig = {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    ...p.shape,
    num_key_value_heads: p.shape.num_attention_heads,
    rms_norm_eps: 1e-6,
    rope_theta: 10000,
    tie_word_embeddings: false,
    hidden_act: 'silu',
    initializer_range: 0.02,
  };
  for (const [k, v] of Object.entries(overrides)) {
    if (v !== undefined) (c as unknown as Record<string, unknown>)[k] = v;
  }
  // Fewer attention heads without saying the kv heads: keep plain multi-head attention.
  if (overrides.num_attention_heads !== undefined && overrides.num_key_value_heads === undefined) {
    c.num_key_value_heads = c.num_attention_heads;
  }
  return validateConfig(c, `preset ${name}`);
}
