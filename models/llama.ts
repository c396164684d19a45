import type { Backend } from '../engine/backend.js';
import { fromArray, ones } from '../engine/creation.js';
import { ropeInvFreq } from '../kernels/rope.js';
import type { DType } from '../engine/dtype.js';
import { ShapeError, StepError } from '../engine/errors.js';
import { Generator } from '../engine/random.js';
import { keep, scopeSync } from '../engine/scope.js';
import { formatShape } from '../engine/shape.js';
import type { Tensor } from '../engine/tensor.js';
import * as A from '../autograd/index.js';
import { initWeight, Linear, setTrainable } from './linear.js';

/** The Hugging Face LlamaConfig keys the model reads. */
export interface LlamaDims {
  vocab_size: number;
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads?: number;
  rms_norm_eps: number;
  rope_theta: number;
  tie_word_embeddings: boolean;
  initializer_range?: number;
}

/** One decoder layer: pre-norm attention and pre-norm SwiGLU MLP, with residuals. */
export class LlamaLayer {
  constructor(
    readonly index: number,
    public inputNorm: Tensor,
    readonly q: Linear, readonly k: Linear, readonly v: Linear, readonly o: Linear,
    public postNorm: Tensor,
    readonly gate: Linear, readonly up: Linear, readonly down: Linear,
  ) {}

  get linears(): Linear[] {
    return [this.q, this.k, this.v, this.o, this.gate, this.up, this.down];
  }

  /** HF names and tensors of this layer (LoRA A/B included when present). */
  namedTensors(): [string, Tensor][] {
    const p = `model.layers.${this.index}`;
    const out: [string, Tensor][] = [[`${p}.input_layernorm.weight`, this.inputNorm]];
    const add = (l: Linear) => {
      out.push([`${l.name}.weight`, l.weight]);
      if (l.lora) out.push([`${l.name}.lora_A`, l.lora.A], [`${l.name}.lora_B`, l.lora.B]);
    };
    [this.q, this.k, this.v, this.o].forEach(add);
    out.push([`${p}.post_attention_layernorm.weight`, this.postNorm]);
    [this.gate, this.up, this.down].forEach(add);
    return out;
  }
}

/**
 * LLaMA decoder with Hugging Face LlamaForCausalLM semantics: token embedding, pre-norm blocks
 * (RMSNorm, causal multi-head attention with rotate-half RoPE and grouped KV heads, SwiGLU MLP),
 * final RMSNorm, LM head (tied or untied).
 */
export class LlamaModel {
  /** Draws LoRA dropout masks while set (the trainer sets it per step; null = no dropout, e.g. eval). */
  dropoutGenerator: Generator | null = null;
  /**
   * Activation checkpointing: each decoder block keeps only its input for backward and runs again
   * during backward (one more forward per step, far fewer activation bytes). Gradients are the same.
   */
  checkpointActivations = false;
  /** HF's inv_freq buffer (not a parameter), uploaded once so RoPE never uploads per call. */
  private invFreq: Tensor | null = null;

  constructor(
    readonly config: LlamaDims,
    public embed: Tensor,
    readonly layers: LlamaLayer[],
    public norm: Tensor,
    public lmHead: Tensor | null,
  ) {}

  get headDim(): number {
    return this.config.hidden_size / this.config.num_attention_heads;
  }

  /** Every tensor of the model under its Hugging Face name, in a fixed order. */
  namedTensors(): [string, Tensor][] {
    const out: [string, Tensor][] = [['model.embed_tokens.weight', this.embed]];
    for (const l of this.layers) out.push(...l.namedTensors());
    out.push(['model.norm.weight', this.norm]);
    if (this.lmHead) out.push(['lm_head.weight', this.lmHead]);
    return out;
  }

  private ropeFrequencies(): Tensor {
    if (!this.invFreq || this.invFreq.isDisposed) {
      const d = this.headDim;
      this.invFreq = keep(fromArray(ropeInvFreq(d, this.config.rope_theta), [d / 2], { device: this.embed.backend, label: 'rope inv_freq' }));
    }
    return this.invFreq;
  }

  /** Frees every tensor of the model and its gradients. */
  dispose(): void {
    this.invFreq?.dispose();
    this.invFreq = null;
    for (const [, t] of this.namedTensors()) {
      t.grad?.dispose();
      t.grad = null;
      t.dispose();
    }
  }

  /** The tensors that train (requiresGrad), in namedTensors order. */
  parameters(): Tensor[] {
    return this.namedTensors().map(([, t]) => t).filter((t) => t.requiresGrad);
  }

  /** logits [B, T, V] for i32 token ids [B, T]. */
  forward(ids: Tensor, options: { positionOffset?: number } = {}): Tensor {
    return scopeSync(() => A.matmul(this.hidden(ids, options.positionOffset ?? 0), this.lmHead ?? this.embed, { transB: true }));
  }

  /** The final hidden states [B, T, H] (after the last RMSNorm), the LM head's input. */
  private hidden(ids: Tensor, positionOffset = 0): Tensor {
    if (ids.dtype !== 'i32' || ids.rank !== 2) throw new ShapeError(`LlamaModel.forward: ids must be i32 [B, T], got ${ids.dtype} ${formatShape(ids.shape)}`);
    // only the hidden states reach the caller's scope: what backward needs, the graph keeps (see autograd/tape.ts)
    return scopeSync(() => {
      let h = A.gatherRows(this.embed, ids);
      for (const layer of this.layers) {
        h = this.checkpointActivations
          ? A.checkpoint((x) => this.block(layer, x, positionOffset), h, { randomState: this.dropoutState() })
          : this.block(layer, h, positionOffset);
      }
      return A.rmsNorm(h, this.norm, this.config.rms_norm_eps);
    });
  }

  /**
   * Mean next-token cross-entropy: logits of ids [B, T] against targets [B, T] (i32, -100 ignored).
   * The LM head and the loss run fused over row chunks (A.linearCrossEntropy): training never
   * allocates the [B*T, V] logits. `chunkRows` overrides the default chunk (see linearCrossEntropy).
   */
  loss(ids: Tensor, targets: Tensor, options: { chunkRows?: number } = {}): Tensor {
    return scopeSync(() => {
      const h = this.hidden(ids);
      const [b, t, hidden] = h.shape as [number, number, number];
      const head = this.lmHead ?? this.embed;
      return A.linearCrossEntropy(A.reshape(h, [b * t, hidden]), head, A.reshape(targets, [b * t]), { chunkRows: options.chunkRows });
    });
  }

  /** Saves and restores the dropout stream, so a recomputed block draws the masks its forward drew. */
  private dropoutState() {
    return {
      save: () => this.dropoutGenerator?.getState() ?? null,
      restore: (state: unknown) => {
        if (state && this.dropoutGenerator) this.dropoutGenerator.setState(state as ReturnType<Generator['getState']>);
      },
    };
  }

  private block(layer: LlamaLayer, x: Tensor, positionOffset: number): Tensor {
    // the attention and MLP halves in scopes of their own: intermediates backward does not read die
    // with their half (what it saves, the graph owns), so they never pile up
    const h = scopeSync(() => A.add(x, this.attention(layer, x, positionOffset)));
    return scopeSync(() => A.add(h, this.mlp(layer, h)));
  }

  private attention(layer: LlamaLayer, x: Tensor, positionOffset: number): Tensor {
    const c = this.config;
    const [b, t, hidden] = x.shape as [number, number, number];
    const nH = c.num_attention_heads, nKV = c.num_key_value_heads ?? nH, d = this.headDim;
    const g = this.dropoutGenerator;
    const hIn = A.rmsNorm(x, layer.inputNorm, c.rms_norm_eps);
    const rope = { theta: c.rope_theta, positionOffset, invFreq: this.ropeFrequencies() };
    const q = A.rope(A.reshape(layer.q.forward(hIn, g), [b, t, nH, d]), rope);
    const k = A.rope(A.reshape(layer.k.forward(hIn, g), [b, t, nKV, d]), rope);
    const v = A.reshape(layer.v.forward(hIn, g), [b, t, nKV, d]);
    const qh = A.permute(q, [0, 2, 1, 3]); // [B, nH, T, D]
    const kh = A.permute(k, [0, 2, 1, 3]); // [B, nKV, T, D]: attention maps each query head to its KV head
    const vh = A.permute(v, [0, 2, 1, 3]);
    // fused FlashAttention kernels: no [B, nH, T, T] scores in memory; saves q, k, v, the output and its row log-sum-exp
    const heads = A.attention(qh, kh, vh, { causal: true, scale: 1 / Math.sqrt(d) });
    const ctx = A.reshape(A.permute(heads, [0, 2, 1, 3]), [b, t, hidden]);
    return layer.o.forward(ctx, g);
  }

  private mlp(layer: LlamaLayer, h: Tensor): Tensor {
    const g = this.dropoutGenerator;
    const hPost = A.rmsNorm(h, layer.postNorm, this.config.rms_norm_eps);
    return layer.down.forward(A.swiglu(layer.gate.forward(hPost, g), layer.up.forward(hPost, g)), g);
  }

}

export interface InitOptions {
  device: Backend;
  seed?: number;
  dtype?: DType;
}

function checkDims(c: LlamaDims): void {
  const nKV = c.num_key_value_heads ?? c.num_attention_heads;
  if (c.hidden_size % c.num_attention_heads !== 0) throw new StepError(`LlamaModel: hidden_size ${c.hidden_size} is not a multiple of num_attention_heads ${c.num_attention_heads}`);
  if (c.num_attention_heads % nKV !== 0) throw new StepError(`LlamaModel: num_attention_heads ${c.num_attention_heads} is not a multiple of num_key_value_heads ${nKV}`);
  if ((c.hidden_size / c.num_attention_heads) % 2 !== 0) throw new StepError(`LlamaModel: the head dimension ${c.hidden_size / c.num_attention_heads} must be even for RoPE`);
}

/** A freshly initialised model: normal(0, initializer_range) linears and embeddings, ones for norms. */
export function initLlama(config: LlamaDims, options: InitOptions): LlamaModel {
  checkDims(config);
  const g = new Generator(options.seed ?? 0);
  const dev = options.device, dt = options.dtype ?? 'f32';
  const std = config.initializer_range ?? 0.02;
  const h = config.hidden_size, f = config.intermediate_size;
  const nKV = config.num_key_value_heads ?? config.num_attention_heads;
  const kvDim = nKV * (h / config.num_attention_heads);
  const norm = (name: string) => {
    const t = keep(ones([h], { device: dev, dtype: dt, category: 'parameter', label: name }));
    t.requiresGrad = true;
    return t;
  };
  const linear = (name: string, out: number, inp: number) => new Linear(name, initWeight([out, inp], std, g, dev, `${name}.weight`, dt));
  const embed = initWeight([config.vocab_size, h], std, g, dev, 'model.embed_tokens.weight', dt);
  const layers: LlamaLayer[] = [];
  for (let i = 0; i < config.num_hidden_layers; i++) {
    const p = `model.layers.${i}`;
    layers.push(new LlamaLayer(i, norm(`${p}.input_layernorm.weight`),
      linear(`${p}.self_attn.q_proj`, h, h), linear(`${p}.self_attn.k_proj`, kvDim, h),
      linear(`${p}.self_attn.v_proj`, kvDim, h), linear(`${p}.self_attn.o_proj`, h, h),
      norm(`${p}.post_attention_layernorm.weight`),
      linear(`${p}.mlp.gate_proj`, f, h), linear(`${p}.mlp.up_proj`, f, h), linear(`${p}.mlp.down_proj`, h, f)));
  }
  const head = config.tie_word_embeddings ? null : initWeight([config.vocab_size, h], std, g, dev, 'lm_head.weight', dt);
  return new LlamaModel(config, embed, layers, norm('model.norm.weight'), head);
}

export { setTrainable };
