import type { Backend } from '../engine/backend.js';
import { empty, fillInPlace, rand, randn, uniformInPlace } from '../engine/creation.js';
import type { DType } from '../engine/dtype.js';
import { ShapeError, StepError } from '../engine/errors.js';
import { parameter } from '../engine/parameter.js';
import type { Generator } from '../engine/random.js';
import { keep, scopeSync } from '../engine/scope.js';
import { formatShape } from '../engine/shape.js';
import type { Tensor } from '../engine/tensor.js';
import * as A from '../autograd/index.js';
import { greaterEqual, mul } from '../kernels/elementwise.js';
import { loraMergeInPlace } from '../kernels/lora.js';

/** Makes a tensor a trainable parameter (requiresGrad, category `parameter`) or a frozen one. */
export function setTrainable(t: Tensor, trainable: boolean): void {
  t.requiresGrad = trainable;
  t.setCategory(trainable ? 'parameter' : 'frozen');
  if (!trainable && t.grad) {
    t.grad.dispose();
    t.grad = null;
  }
}

/** A LoRA adapter on a linear: y += (alpha / r) * (x A^T) B^T, A [r, in], B [out, r]. */
export interface LoraAdapter {
  A: Tensor;
  B: Tensor;
  rank: number;
  alpha: number;
  /** Dropout on the adapter's input while training (PEFT's lora_dropout); 0 = none. */
  dropout: number;
}

/** Options of `Linear.create`; the defaults follow PyTorch's `nn.Linear`. */
export interface LinearOptions {
  /** Adds a bias b [out], y = x W^T + b (default true). */
  bias?: boolean;
  /** Used in errors, the memory tracker and `namedTensors()` (default 'linear'). */
  name?: string;
  /** Draws the initial weights (default: the global generator). */
  generator?: Generator;
  device?: Backend;
  dtype?: DType;
}

/**
 * A linear layer in Hugging Face / PyTorch layout: weight [out, in], y = x W^T (+ b). LLaMA's
 * linears have no bias. With a LoRA adapter the frozen weight is read as is (no gradient, nothing
 * saved for it) and only A and B train. The forward is built from autograd ops, so gradients reach
 * the weight, the bias and the adapter.
 */
export class Linear {
  lora: LoraAdapter | null = null;

  constructor(readonly name: string, public weight: Tensor, public bias: Tensor | null = null) {
    if (weight.rank !== 2) throw new ShapeError(`Linear ${name}: the weight must be [out, in], got ${formatShape(weight.shape)}`);
    if (bias && (bias.rank !== 1 || bias.shape[0] !== weight.shape[0])) {
      throw new ShapeError(`Linear ${name}: the bias must be [${weight.shape[0]}] (one per output), got ${formatShape(bias.shape)}`);
    }
  }

  /**
   * A new trainable layer (category `parameter`), initialised as PyTorch's `nn.Linear`: weight and
   * bias uniform in [-1/sqrt(in), 1/sqrt(in)) (kaiming_uniform with a = sqrt(5)).
   */
  static create(inFeatures: number, outFeatures: number, options: LinearOptions = {}): Linear {
    const name = options.name ?? 'linear';
    for (const [what, n] of [['inFeatures', inFeatures], ['outFeatures', outFeatures]] as const) {
      if (!Number.isInteger(n) || n < 1) throw new StepError(`Linear ${name}: ${what} must be a positive integer, got ${n}`);
    }
    const bound = 1 / Math.sqrt(inFeatures);
    const common = { low: -bound, high: bound, generator: options.generator, device: options.device, dtype: options.dtype };
    const w = parameter(rand([outFeatures, inFeatures], { ...common, label: `${name}.weight` }));
    const b = options.bias === false ? null : parameter(rand([outFeatures], { ...common, label: `${name}.bias` }));
    return new Linear(name, w, b);
  }

  get inFeatures(): number {
    return this.weight.shape[1]!;
  }

  get outFeatures(): number {
    return this.weight.shape[0]!;
  }

  /** Weight, bias and adapter under their names (`NAME.weight`, `NAME.bias`, `NAME.lora_A`, ...). */
  namedTensors(): [string, Tensor][] {
    const out: [string, Tensor][] = [[`${this.name}.weight`, this.weight]];
    if (this.bias) out.push([`${this.name}.bias`, this.bias]);
    if (this.lora) out.push([`${this.name}.lora_A`, this.lora.A], [`${this.name}.lora_B`, this.lora.B]);
    return out;
  }

  /** The tensors that train (requiresGrad): what to hand an optimizer. */
  parameters(): Tensor[] {
    return this.namedTensors().map(([, t]) => t).filter((t) => t.requiresGrad);
  }

  /** Frees the layer's tensors and their gradients. */
  dispose(): void {
    for (const [, t] of this.namedTensors()) {
      t.grad?.dispose();
      t.grad = null;
      t.dispose();
    }
  }

  /** y = x W^T (+ the adapter) (+ b); `dropout` draws the adapter's dropout mask (training only). */
  forward(x: Tensor, dropout: Generator | null = null): Tensor {
    const y = this.lora ? this.withLora(x, dropout) : A.matmul(x, this.weight, { transB: true });
    return this.bias ? A.add(y, this.bias) : y;
  }

  private withLora(x: Tensor, dropout: Generator | null): Tensor {
    // own scope: y, x A^T, (x A^T) B^T and its scaling die here unless backward saved them
    return scopeSync(() => {
      const { A: a, B: b, rank, alpha, dropout: p } = this.lora!;
      const y = A.matmul(x, this.weight, { transB: true });
      let xin = x;
      if (p > 0 && dropout) {
        // inverted dropout: keep with probability 1-p and scale by 1/(1-p); the mask is a constant for autograd
        const mask = mul(greaterEqual(rand(x.shape as number[], { generator: dropout, dtype: x.dtype, device: x.backend }), p), 1 / (1 - p));
        xin = A.mul(x, mask);
      }
      const down = A.matmul(xin, a, { transB: true });
      const up = A.matmul(down, b, { transB: true });
      return A.add(y, A.mul(up, alpha / rank));
    });
  }

  /**
   * Adds a LoRA adapter: A from Kaiming-uniform (bound sqrt(6 / ((1 + 5) * in)) = 1/sqrt(in), as
   * PyTorch's kaiming_uniform_(a=sqrt(5)) that PEFT uses), B zero; both trainable from step 1.
   */
  addLora(rank: number, alpha: number, generator: Generator, dtype: DType = 'f32', dropout = 0): LoraAdapter {
    if (!(dropout >= 0 && dropout < 1)) throw new StepError(`${this.name}: LoRA dropout must be in [0, 1), got ${dropout}`);
    if (this.lora) throw new StepError(`${this.name}: already has a LoRA adapter; merge it first`);
    if (!Number.isInteger(rank) || rank < 1 || rank > Math.min(this.inFeatures, this.outFeatures)) {
      throw new StepError(`${this.name}: LoRA rank ${rank} must be an integer in 1..${Math.min(this.inFeatures, this.outFeatures)} (min of in ${this.inFeatures}, out ${this.outFeatures})`);
    }
    const device: Backend = this.weight.backend;
    const a = empty([rank, this.inFeatures], { dtype, device, category: 'parameter', label: `${this.name}.lora_A` });
    const b = empty([this.outFeatures, rank], { dtype, device, category: 'parameter', label: `${this.name}.lora_B` });
    a.requiresGrad = true;
    b.requiresGrad = true;
    this.lora = { A: keep(a), B: keep(b), rank, alpha, dropout }; // the model owns its parameters
    this.initLora(generator);
    return this.lora;
  }

  /**
   * (Re-)initialises the adapter in place, as a new adapter starts: A from Kaiming-uniform
   * (bound 1/sqrt(in)), B zero, so the adapter adds nothing. The tensors stay the same objects,
   * so an optimizer holding them keeps working (ReLoRA's restart).
   */
  initLora(generator: Generator): void {
    const lora = this.requireLora('initLora');
    const bound = 1 / Math.sqrt(this.inFeatures);
    uniformInPlace(lora.A, -bound, bound, generator);
    fillInPlace(lora.B, 0);
  }

  /** Adds the adapter to the weight in place (W += (alpha / r) B A, no W-sized temporary); the adapter stays. */
  mergeLoraIntoWeight(): void {
    const { A: a, B: b, rank, alpha } = this.requireLora('mergeLoraIntoWeight');
    loraMergeInPlace(this.weight, b, a, alpha / rank);
  }

  private requireLora(op: string): LoraAdapter {
    if (!this.lora) throw new StepError(`${this.name}.${op}: this linear has no LoRA adapter (add one with addLora)`);
    return this.lora;
  }
}

/** normal(0, std) weights of shape [out, in] (HF LLaMA init: std = initializer_range = 0.02). */
export function initWeight(shape: number[], std: number, generator: Generator, device: Backend, name: string, dtype: DType = 'f32'): Tensor {
  const w = keep(randn(shape, { std, generator, device, dtype, category: 'parameter', label: name })); // owned by the model
  w.requiresGrad = true;
  return w;
}
