/**
 * Activation checkpointing (gradient checkpointing): run a function of one tensor without keeping
 * anything it would save for backward, keep only its input, and recompute it during backward.
 * A decoder block checkpointed this way holds one [B, T, hidden] tensor between forward and
 * backward instead of every intermediate backward reads; the price is a second forward of the block.
 */
import { StepError } from '../engine/errors.js';
import { keep, scopeSync } from '../engine/scope.js';
import type { Tensor } from '../engine/tensor.js';
import { backward, backwardWithInputGrads } from './backward.js';
import { isGradEnabled, noGrad, withGradEnabled } from './grad-mode.js';
import { record } from './tape.js';

export interface CheckpointOptions {
  /**
   * The state of the random streams `fn` draws from: saved before the forward and restored before
   * the recomputation, so both draw the same numbers (e.g. dropout masks); the stream is put back
   * where it stood once the recomputation is done.
   */
  randomState?: { save(): unknown; restore(state: unknown): void };
}

/**
 * `fn(x)` with its graph recomputed in backward instead of kept. `fn` may use parameters (tensors
 * with requiresGrad) from its closure: in backward it runs again with recording on and its own
 * backward accumulates their `.grad`. So, unlike other ops, a checkpointed function adds into the
 * parameters' `.grad` even when the outer call is `grad()`; use `backward()` with it.
 */
export function checkpoint(fn: (x: Tensor) => Tensor, x: Tensor, options: CheckpointOptions = {}): Tensor {
  if (!isGradEnabled()) return fn(x);
  const rng = options.randomState;
  const state = rng?.save();
  const out = noGrad(() => fn(x));
  return record('checkpoint', out, [x], [x], (g, [saved]) => {
    const input = saved!.detach();
    input.requiresGrad = x.requiresGrad;
    let dx: Tensor | null = null;
    const resumeAt = rng?.save(); // the stream continues after the recomputation where it stood
    withGradEnabled(true, () => scopeSync(() => {
      if (rng) rng.restore(state);
      const y = fn(input);
      if (rng) rng.restore(resumeAt);
      if (y.shape.join() !== out.shape.join()) {
        throw new StepError(`checkpoint: the recomputed output is [${y.shape.join(', ')}] but the forward gave [${out.shape.join(', ')}]; the function must be deterministic`);
      }
      if (!y.requiresGrad) return; // nothing inside wants a gradient
      if (!input.requiresGrad) { backward(y, { grad: g }); return; }
      // the input's gradient is an intermediate of the outer graph: returned, never a `.grad` (model state)
      const [gx] = backwardWithInputGrads(y, [input], { grad: g });
      if (gx) dx = keep(gx);
    }));
    return [dx];
  });
}
