/**
 * Dynamic loss scaling for f16 gradients (as torch.cuda.amp.GradScaler): the loss is multiplied
 * by a scale before backward; the optimizer's step divides the gradients by it inside its update
 * kernels, detects inf/NaN on the device, skips that step on the device, halves the scale on
 * overflow and doubles it after `growthInterval` good steps. The scale lives in a 4-float device
 * buffer ([scale, good steps, skipped steps, last step overflowed]) so no step reads anything back.
 */
import { autogradHooks } from '../autograd-hooks.js';
import type { Backend } from '../backend.js';
import { empty, fromArray } from '../creation.js';
import { getDevice } from '../device.js';
import { DTypeError, StepError } from '../errors.js';
import { runKernel } from '../registry.js';
import { keep } from '../scope.js';
import type { Tensor } from '../tensor.js';

export interface LossScalerOptions {
  /** Default 2^16. */
  initScale?: number;
  /** Default 2. */
  growthFactor?: number;
  /** Default 0.5. */
  backoffFactor?: number;
  /** Good steps before the scale grows (default 2000). */
  growthInterval?: number;
}

export interface LossScalerState {
  scale: number;
  goodSteps: number;
  skippedSteps: number;
  lastOverflow: boolean;
}

/**
 * The state buffer is category `temporary` (labelled `loss-scaler.state`): 16 bytes of
 * bookkeeping, kept out of `optimizer` so that category holds exactly the per-parameter state.
 */
export class LossScaler {
  readonly state: Tensor;
  readonly growthFactor: number;
  readonly backoffFactor: number;
  readonly growthInterval: number;

  constructor(options: LossScalerOptions = {}, device: Backend = getDevice()) {
    const initScale = options.initScale ?? 2 ** 16;
    this.growthFactor = options.growthFactor ?? 2;
    this.backoffFactor = options.backoffFactor ?? 0.5;
    this.growthInterval = options.growthInterval ?? 2000;
    if (!(initScale > 0 && Number.isFinite(initScale))) throw new StepError(`LossScaler: initScale must be a finite number > 0, got ${initScale}`);
    if (!(this.growthFactor > 1 && Number.isFinite(this.growthFactor))) throw new StepError(`LossScaler: growthFactor must be > 1, got ${this.growthFactor}`);
    if (!(this.backoffFactor > 0 && this.backoffFactor < 1)) throw new StepError(`LossScaler: backoffFactor must be in (0, 1), got ${this.backoffFactor}`);
    if (!Number.isSafeInteger(this.growthInterval) || this.growthInterval < 1) throw new StepError(`LossScaler: growthInterval must be an integer >= 1, got ${this.growthInterval}`);
    this.state = keep(fromArray([initScale, 0, 0, 0], [4], { device, category: 'temporary', label: 'loss-scaler.state' }));
  }

  get device(): Backend {
    return this.state.use('LossScaler').backend;
  }

  /**
   * loss * scale, computed on the device (the scale is never read back). Differentiable: call
   * `backward(scaler.scaleLoss(loss))` and every gradient comes out multiplied by the scale, which
   * the optimizer's step divides out again.
   */
  scaleLoss(loss: Tensor): Tensor {
    loss.use('LossScaler.scaleLoss');
    if (loss.dtype !== 'f32' && loss.dtype !== 'f16') throw new DTypeError(`LossScaler.scaleLoss: loss must be f32 or f16, got ${loss.dtype} (${loss.describe()})`);
    const out = this.scaled(loss, 'scaled loss');
    return autogradHooks()?.recordUnary('loss_scale', out, loss, (g) => this.scaled(g, 'scaled loss gradient')) ?? out;
  }

  private scaled(t: Tensor, label: string): Tensor {
    const out = empty(t.shape, { dtype: t.dtype, device: t.backend, label }, 'LossScaler.scaleLoss');
    runKernel('loss_scale', { inputs: [t, this.state], outputs: [out], attrs: {} });
    return out;
  }

  /** Reads the state back (one small readback: call it at most once per step, and only when needed). */
  async read(): Promise<LossScalerState> {
    const [scale, good, skipped, last] = await this.state.toArray();
    return { scale: scale!, goodSteps: good!, skippedSteps: skipped!, lastOverflow: last !== 0 };
  }

  /** Whether the last step found inf/NaN gradients (and was skipped). Reads back. */
  async overflowed(): Promise<boolean> {
    return (await this.read()).lastOverflow;
  }

  /** The current scale. Reads back. */
  async readScale(): Promise<number> {
    return (await this.read()).scale;
  }

  /** Restores a state read earlier (e.g. from a checkpoint). */
  load(state: LossScalerState): void {
    if (!(state.scale > 0) || !Number.isFinite(state.scale)) throw new StepError(`LossScaler.load: scale must be finite and > 0, got ${state.scale}`);
    const s = this.state.use('LossScaler.load');
    s.backend.write(s, [state.scale, state.goodSteps, state.skippedSteps, state.lastOverflow ? 1 : 0]);
  }

  dispose(): void {
    this.state.dispose();
  }
}
