import type { Backend } from '../engine/backend.js';
import { fromArray, ones } from '../engine/creation.js';
import { ropeInvFreq } from '../kernels/rope.js';
import type { DType } from '../engine/dtype.js';
import { ShapeError, StepError } from '../engine/errors.js';
import { Generator } from '../engine/random.js';
import { markRowBlocks, rowBlockName, rowBlockRangesFor } from '../engine/row-blocks.js';
import { keep, scopeSync } from '../engine/scope.js';
import { formatShape } from '../engine/shape.js';
import type { Tensor } from '../engine/tensor.js';
import * as A from '../autograd/index.js';
import { markRecomputable } from '../autograd/saved.js';
import { gatherRowBlocks, linearRowBlocks } from '../autograd/ops/row-blocks.js';
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
  /**
   * The token embedding [V, H] as consecutive row blocks (engine/row-blocks.ts): one tensor when
   * it fits in one buffer of the device, several when the vocabulary is larger than one binding.
   */
  readonly embedBlocks: Tensor[];
  /** The untied LM head [V, H] as row blocks, or null when tied to the embedding. */
  readonly headBlocks: Tensor[] | null;

  /**
   * `embed` and `lmHead` are whole tensors or lists of row blocks [rows, H] in row order (each at
   * most one buffer; see initRowBlockTable), which files and optimizer state then treat as one tensor.
   */
  constructor(
    readonly config: LlamaDims,
    embed: Tensor | Tensor[],
    readonly layers: LlamaLayer[],
    public norm: Tensor,
    lmHead: Tensor | Tensor[] | null,
  ) {
    this.embedBlocks = Array.isArray(embed) ? embed : [embed];
    this.headBlocks = lmHead === null ? null : Array.isArray(lmHead) ? lmHead : [lmHead];
    if (this.embedBlocks.length > 1) markRowBlocks('model.embed_tokens.weight', this.embedBlocks);
    if (this.headBlocks && this.headBlocks.length > 1) markRowBlocks('lm_head.weight', this.headBlocks);
  }

  /** The device the model lives on. */
  get backend(): Backend {
    return this.embedBlocks[0]!.backend;
  }

  /** The embedding as one tensor; an error when it is split into row blocks (use `embedBlocks`). */
  get embed(): Tensor {
    return whole(this.embedBlocks, 'model.embed_tokens.weight');
  }

  /** The untied LM head as one tensor (null when tied); an error when it is split (use `headBlocks`). */
  get lmHead(): Tensor | null {
    return this.headBlocks && whole(this.headBlocks, 'lm_head.weight');
  }

  /** The LM head's row blocks: the untied head's, else the embedding's. */
  private get head(): Tensor[] {
    return this.headBlocks ?? this.embedBlocks;
  }

  get headDim(): number {
    return this.config.hidden_size / this.config.num_attention_heads;
  }

  /**
   * Every tensor of the model under its Hugging Face name, in a fixed order. A table split into
   * row blocks is listed block by block, as `model.embed_tokens.weight[0:10923]`, ...; see
   * `hfTensors()` for one entry per Hugging Face tensor.
   */
  namedTensors(): [string, Tensor][] {
    const out: [string, Tensor][] = blockEntries('model.embed_tokens.weight', this.embedBlocks);
    for (const l of this.layers) out.push(...l.namedTensors());
    out.push(['model.norm.weight', this.norm]);
    if (this.headBlocks) out.push(...blockEntries('lm_head.weight', this.headBlocks));
    return out;
  }

  /** One entry per Hugging Face tensor, with its row blocks (one tensor when whole): what files hold. */
  hfTensors(): [string, Tensor[]][] {
    const out: [string, Tensor[]][] = [['model.embed_tokens.weight', this.embedBlocks]];
    for (const l of this.layers) out.push(...l.namedTensors().map(([n, t]): [string, Tensor[]] => [n, [t]]));
    out.push(['model.norm.weight', [this.norm]]);
    if (this.headBlocks) out.push(['lm_head.weight', this.headBlocks]);
    return out;
  }

  private ropeFrequencies(): Tensor {
    if (!this.invFreq || this.invFreq.isDisposed) {
      const d = this.headDim;
      this.invFreq = keep(fromArray(ropeInvFreq(d, this.config.rope_theta), [d / 2], { device: this.backend, label: 'rope inv_freq' }));
    }
    return this.invFreq;
  }

  /**
   * Frees what the model object caches beside its tensors (RoPE's inv_freq), for a model object
   * that is replaced by another sharing its tensors (growth): dispose() would free those too.
   */
  releaseCaches(): void {
    this.invFreq?.dispose();
    this.invFreq = null;
  }

  /** Frees every tensor of the model and its gradients. */
  dispose(): void {
    this.releaseCaches();
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

  /**
   * logits [B, T, V] for i32 token ids [B, T] (they must fit in one buffer; training uses `loss`,
   * which never makes them). `lastPosition` gives only the last position's, [B, 1, V] (generation).
   */
  forward(ids: Tensor, options: { positionOffset?: number; lastPosition?: boolean } = {}): Tensor {
    return scopeSync(() => {
      let h = this.hidden(ids, options.positionOffset ?? 0);
      if (options.lastPosition) {
        const [b, t, hidden] = h.shape as [number, number, number];
        h = A.slice(h, [0, t - 1, 0], [b, 1, hidden]);
      }
      return linearRowBlocks(h, this.head);
    });
  }

  /** The final hidden states [B, T, H] (after the last RMSNorm), the LM head's input. */
  private hidden(ids: Tensor, positionOffset = 0): Tensor {
    if (ids.dtype !== 'i32' || ids.rank !== 2) throw new ShapeError(`LlamaModel.forward: ids must be i32 [B, T], got ${ids.dtype} ${formatShape(ids.shape)}`);
    // only the hidden states reach the caller's scope: what backward needs, the graph keeps (see autograd/tape.ts)
    return scopeSync(() => {
      let h = gatherRowBlocks(this.embedBlocks, ids);
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
      return A.linearCrossEntropy(A.reshape(h, [b * t, hidden]), this.head, A.reshape(targets, [b * t]), { chunkRows: options.chunkRows });
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
    // q, k, v stay [B, T, heads, D] as the projections make them: the attention kernels read that
    // layout directly, so no head permutes are copied, forward or backward
    const q = A.rope(A.reshape(layer.q.forward(hIn, g), [b, t, nH, d]), rope);
    const k = A.rope(A.reshape(layer.k.forward(hIn, g), [b, t, nKV, d]), rope); // each query head reads its KV head
    const v = A.reshape(layer.v.forward(hIn, g), [b, t, nKV, d]);
    // fused FlashAttention kernels: no [B, nH, T, T] scores in memory; attention saves only q, k, v
    // (its backward reruns the forward kernel for the output and row log-sum-exp it reads)
    const options = { causal: true, scale: 1 / Math.sqrt(d), recomputeOutput: true, layout: 'bthd' as const };
    const ctx = A.reshape(A.attention(q, k, v, options), [b, t, hidden]);
    // the o projection keeps no copy of its input either: backward reruns attention's forward from
    // the q, k, v it saves anyway, the same values to the bit
    if (ctx.requiresGrad) markRecomputable(ctx, [q, k, v], ([sq, sk, sv]) => A.reshape(A.attention(sq!, sk!, sv!, options), [b, t, hidden]));
    return layer.o.forward(ctx, g);
  }

  private mlp(layer: LlamaLayer, h: Tensor): Tensor {
    const g = this.dropoutGenerator;
    const hPost = A.rmsNorm(h, layer.postNorm, this.config.rms_norm_eps);
    return layer.down.forward(A.swiglu(layer.gate.forward(hPost, g), layer.up.forward(hPost, g)), g);
  }

}

/** The one tensor of a table that is not split; a clear error when it is. */
function whole(blocks: readonly Tensor[], name: string): Tensor {
  if (blocks.length !== 1) throw new StepError(`LlamaModel: ${name} is split into ${blocks.length} row blocks (larger than one buffer of the device); use the model's embedBlocks / headBlocks or hfTensors()`);
  return blocks[0]!;
}

/** namedTensors entries of a table: its HF name when whole, one `name[first:end]` per row block when split. */
function blockEntries(name: string, blocks: readonly Tensor[]): [string, Tensor][] {
  if (blocks.length === 1) return [[name, blocks[0]!]];
  let first = 0;
  return blocks.map((t) => {
    const entry: [string, Tensor] = [rowBlockName(name, first, t.shape[0]!), t];
    first += t.shape[0]!;
    return entry;
  });
}

/**
 * normal(0, std) [V, H] table as row blocks of at most the device's largest buffer (f32 rows, for
 * the master weights and moments of mixed precision); the values are those of one [V, H] draw,
 * whatever the split (each block draws its span of the same Philox stream).
 */
export function initRowBlockTable(rows: number, cols: number, std: number, g: Generator, device: Backend, name: string, dtype: DType): Tensor[] {
  const ranges = rowBlockRangesFor(device, rows, cols, name);
  if (ranges.length === 1) return [initWeight([rows, cols], std, g, device, name, dtype)];
  if (cols % 2 !== 0) throw new StepError(`${name}: a table split into row blocks needs an even row length (the normal draw makes pairs), got ${cols}`);
  const start = g.take(Math.ceil((rows * cols) / 2)); // the whole table's span, as one randn would take
  const blocks = ranges.map(([first, n]) => {
    const span = new Generator(g.seed);
    span.setState({ seed: g.seed, offset: start + (first * cols) / 2 });
    return initWeight([n, cols], std, span, device, rowBlockName(name, first, n), dtype);
  });
  markRowBlocks(name, blocks);
  return blocks;
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
  const embed = initRowBlockTable(config.vocab_size, h, std, g, dev, 'model.embed_tokens.weight', dt);
  const layers: LlamaLayer[] = [];
  for (let i = 0; i < config.num_hidden_layers; i++) {
    const p = `model.layers.${i}`;
    layers.push(new LlamaLayer(i, norm(`${p}.input_layernorm.weight`),
      linear(`${p}.self_attn.q_proj`, h, h), linear(`${p}.self_attn.k_proj`, kvDim, h),
      linear(`${p}.self_attn.v_proj`, kvDim, h), linear(`${p}.self_attn.o_proj`, h, h),
      norm(`${p}.post_attention_layernorm.weight`),
      linear(`${p}.mlp.gate_proj`, f, h), linear(`${p}.mlp.up_proj`, f, h), linear(`${p}.mlp.down_proj`, h, f)));
  }
  const head = config.tie_word_embeddings ? null : initRowBlockTable(config.vocab_size, h, std, g, dev, 'lm_head.weight', dt);
  return new LlamaModel(config, embed, layers, norm('model.norm.weight'), head);
}

export { setTrainable };
