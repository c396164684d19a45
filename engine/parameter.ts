import { StepError } from './errors.js';
import { keep } from './scope.js';
import { Tensor } from './tensor.js';

export interface ParameterOptions {
  /** false makes a frozen weight: no gradient, category `frozen` (default true). */
  trainable?: boolean;
}

/**
 * Turns a tensor into a model parameter, like PyTorch's `nn.Parameter`: it wants gradients
 * (`requiresGrad`), its bytes count as `parameter` memory (`frozen` when `trainable: false`), and it
 * outlives the scope it was made in (`keep()`): the model owns it, so dispose it yourself.
 * Returns the same tensor, so it wraps a creation call: `parameter(randn([out, in], { std: 0.02 }))`.
 * @nograd it marks a leaf that gradients flow into; it computes nothing.
 */
export function parameter(t: Tensor, options: ParameterOptions = {}): Tensor {
  if (!(t instanceof Tensor)) throw new StepError(`parameter: expected a Tensor, got ${t === null ? 'null' : typeof t}; wrap a creation call, e.g. parameter(randn([4, 3]))`);
  t.use('parameter');
  if (t.gradNode !== null) {
    throw new StepError(`parameter: ${t.describe()} was computed by an op that recorded gradients; a parameter must be a leaf (create it, or clone() it under noGrad)`);
  }
  const trainable = options.trainable ?? true;
  if (trainable && t.dtype === 'i32') {
    throw new StepError(`parameter: ${t.describe()} has dtype i32; only float tensors can be trainable parameters`);
  }
  t.requiresGrad = trainable;
  t.setCategory(trainable ? 'parameter' : 'frozen');
  return keep(t);
}
