import { zeros } from '../../engine/creation.js';
import type { Tensor } from '../../engine/tensor.js';
import * as E from '../../kernels/elementwise.js';
import * as R from '../../kernels/reduce.js';
import type { ReduceOptions } from '../../kernels/reduce.js';
import { needsGrad, record } from '../tape.js';

/** The input's shape with the reduced axes kept as 1 (so a gradient broadcasts back). */
function keptShape(x: Tensor, axis: ReduceOptions['axis']): number[] {
  if (axis === undefined) return x.shape.map(() => 1);
  const axes = (typeof axis === 'number' ? [axis] : [...axis]).map((a) => (a < 0 ? a + x.rank : a));
  return x.shape.map((d, i) => (axes.includes(i) ? 1 : d));
}

/** Broadcasts g (reduced, any keepdim) back to x's shape, times `scale`. */
function expand(g: Tensor, x: Tensor, axis: ReduceOptions['axis'], scale: number): Tensor {
  const kept = g.reshape(keptShape(x, axis));
  const zero = zeros(x.shape, { dtype: g.dtype, device: g.backend }); // add broadcasts g over them
  const out = scale === 1 ? E.add(zero, kept) : E.add(zero, E.mul(kept, scale));
  kept.dispose();
  return out;
}

export function sum(x: Tensor, options: ReduceOptions = {}): Tensor {
  const out = R.sum(x, options);
  if (!needsGrad(x)) return out;
  return record('sum', out, [x], [], (g) => [expand(g, x, options.axis, 1)]);
}

export function mean(x: Tensor, options: ReduceOptions = {}): Tensor {
  const out = R.mean(x, options);
  if (!needsGrad(x)) return out;
  const reduced = x.size / Math.max(1, out.size);
  return record('mean', out, [x], [], (g) => [expand(g, x, options.axis, 1 / reduced)]);
}

/** Max over axes; the gradient is shared equally among tied maxima. */
export function max(x: Tensor, options: ReduceOptions = {}): Tensor {
  const out = R.max(x, options);
  if (!needsGrad(x)) return out;
  return record('max', out, [x], [x, out], (g, [sx, so]) => {
    const m = so!.reshape(keptShape(x, options.axis));
    const mask = E.equal(sx!, m);
    const count = R.sum(mask, { axis: options.axis, keepdim: true });
    const share = E.div(g.reshape(keptShape(x, options.axis)), count);
    return [E.mul(mask, share)];
  });
}

/** Sum of squares of every element (a scalar). */
export function sumOfSquares(x: Tensor): Tensor {
  const out = R.sumOfSquares(x);
  if (!needsGrad(x)) return out;
  return record('sumOfSquares', out, [x], [x], (g, [sx]) => [E.mul(E.mul(sx!, 2), g)]);
}
