import type { DType } from '../../engine/dtype.js';
import { zeros } from '../../engine/creation.js';
import type { Shape } from '../../engine/shape.js';
import { StepError } from '../../engine/errors.js';
import { Tensor } from '../../engine/tensor.js';
import * as K from '../../kernels/elementwise.js';
import type { OpOptions } from '../../kernels/elementwise.js';
import * as U from '../../kernels/unary.js';
import { sum } from '../../kernels/reduce.js';
import { needsGrad, record } from '../tape.js';

/** Sums a broadcast gradient back to `shape` (the input's shape before broadcasting). */
export function sumToShape(g: Tensor, shape: Shape): Tensor {
  if (g.rank === shape.length && g.shape.every((d, i) => d === shape[i])) return g;
  const lead = g.rank - shape.length;
  const axes: number[] = [];
  for (let i = 0; i < g.rank; i++) {
    if (i < lead || (shape[i - lead] === 1 && g.shape[i] !== 1)) axes.push(i);
  }
  const s = axes.length ? sum(g, { axis: axes, keepdim: true }) : g;
  const out = s.reshape(shape as number[]);
  if (s !== g) s.dispose();
  return out;
}

const zeroLike = (t: Tensor) => zeros([], { dtype: t.dtype, device: t.backend });

type Saved = 'a' | 'b' | 'out';

/**
 * Wraps a binary kernel op with its gradient rule (gradients summed back over broadcast dims).
 * `forA`/`forB` list what each input's gradient reads, so only what a wanted gradient needs is
 * saved (a frozen operand's gradient keeps nothing alive).
 */
function binary(
  op: string,
  forward: (a: Tensor, b: Tensor, o: OpOptions) => Tensor,
  rule: (g: Tensor, saved: Partial<Record<Saved, Tensor>>, needA: boolean, needB: boolean) => [Tensor | null, Tensor | null],
  forA: readonly Saved[],
  forB: readonly Saved[],
) {
  return (a: Tensor | number, b: Tensor | number, o: OpOptions = {}): Tensor => {
    if (typeof a === 'number') {
      // a number first, as in PyTorch's 2 * x: the op with its operands swapped
      if (typeof b === 'number') throw new StepError(`${op}(${a}, ${b}): at least one operand must be a Tensor`);
      return scalarFirst[op]!(a, b, o);
    }
    if (typeof b === 'number') return scalarForms[op]!(a, b, o);
    if (!(a instanceof Tensor) || !(b instanceof Tensor)) {
      throw new StepError(`${op}: operands must be Tensors or numbers, got ${describeOperand(a)} and ${describeOperand(b)}`);
    }
    const out = forward(a, b, o);
    if (!needsGrad(a, b)) return out;
    const needA = a.requiresGrad, needB = b.requiresGrad;
    const want = new Set<Saved>([...(needA ? forA : []), ...(needB ? forB : [])]);
    const order = (['a', 'b', 'out'] as const).filter((k) => want.has(k));
    const source = { a, b, out };
    return record(op, out, [a, b], order.map((k) => source[k]), (g, saved) => {
      const named: Partial<Record<Saved, Tensor>> = {};
      order.forEach((k, i) => { named[k] = saved[i]!; });
      const [ga, gb] = rule(g, named, needA, needB);
      return [ga && sumToShape(ga, a.shape), gb && sumToShape(gb, b.shape)];
    });
  };
}

export const add = binary('add', K.add, (g, _s, na, nb) => [na ? g : null, nb ? g : null], [], []);
export const sub = binary('sub', K.sub, (g, _s, na, nb) => [na ? g : null, nb ? U.neg(g) : null], [], []);
export const mul = binary('mul', K.mul, (g, s, na, nb) => [na ? K.mul(g, s.b!) : null, nb ? K.mul(g, s.a!) : null], ['b'], ['a']);
/** d(a/b)/da = 1/b; d(a/b)/db = -(a/b)/b. */
export const div = binary('div', K.div, (g, s, na, nb) => {
  const gOverB = K.div(g, s.b!);
  return [na ? gOverB : null, nb ? U.neg(K.mul(gOverB, s.out!)) : null];
}, ['b'], ['b', 'out']);
/** Ties send the gradient to a. */
export const maximum = binary('maximum', K.maximum, (g, s, na, nb) => {
  const m = K.greaterEqual(s.a!, s.b!);
  return [na ? K.mul(g, m) : null, nb ? K.mul(g, U.rsub(m, 1)) : null];
}, ['a', 'b'], ['a', 'b']);
export const minimum = binary('minimum', K.minimum, (g, s, na, nb) => {
  const m = K.lessEqual(s.a!, s.b!);
  return [na ? K.mul(g, m) : null, nb ? K.mul(g, U.rsub(m, 1)) : null];
}, ['a', 'b'], ['a', 'b']);

/** Unary op with its derivative rule; `saves` says whether the rule reads the input or the output. */
function unary(op: string, forward: (x: Tensor, o: OpOptions) => Tensor, rule: (g: Tensor, x: Tensor | null, out: Tensor | null) => Tensor, saves: 'x' | 'out' | 'none') {
  return (x: Tensor, o: OpOptions = {}): Tensor => {
    const out = forward(x, o);
    if (!needsGrad(x)) return out;
    return record(op, out, [x], [saves === 'x' ? x : null, saves === 'out' ? out : null], (g, saved) =>
      [rule(g, saves === 'x' ? saved[0]! : null, saves === 'out' ? saved[0]! : null)]);
  };
}

export const neg = unary('neg', U.neg, (g) => U.neg(g), 'none');
export const exp = unary('exp', U.exp, (g, _x, y) => K.mul(g, y!), 'out');
export const log = unary('log', U.log, (g, x) => K.div(g, x!), 'x');
export const sqrt = unary('sqrt', U.sqrt, (g, _x, y) => K.div(K.mul(g, 0.5), y!), 'out');
export const rsqrt = unary('rsqrt', U.rsqrt, (g, _x, y) => K.mul(g, K.mul(U.pow(y!, 3), -0.5)), 'out');
export const square = unary('square', U.square, (g, x) => K.mul(g, K.mul(x!, 2)), 'x');
export const abs = unary('abs', U.abs, (g, x) => K.mul(g, K.sub(K.greater(x!, 0), K.less(x!, 0))), 'x');
export const sigmoid = unary('sigmoid', U.sigmoid, (g, _x, y) => K.mul(g, K.mul(y!, U.rsub(y!, 1))), 'out');
export const tanh = unary('tanh', U.tanh, (g, _x, y) => K.mul(g, U.rsub(U.square(y!), 1)), 'out');
export const relu = unary('relu', U.relu, (g, _x, y) => K.mul(g, K.greater(y!, 0)), 'out');
/** silu(x) = x sigmoid(x); d/dx = s (1 + x (1 - s)). */
export const silu = unary('silu', U.silu, (g, x) => {
  const s = U.sigmoid(x!);
  return K.mul(g, K.mul(s, K.add(K.mul(x!, U.rsub(s, 1)), 1)));
}, 'x');

/** x^p for a number p. */
export function pow(x: Tensor, p: number, o: OpOptions = {}): Tensor {
  const out = U.pow(x, p, o);
  if (!needsGrad(x)) return out;
  return record('pow', out, [x], [x], (g, [sx]) => [K.mul(g, K.mul(U.pow(sx!, p - 1), p))]);
}

function scalarForm(op: string, rule: (g: Tensor, s: number, x: Tensor | null, out: Tensor | null) => Tensor, saves: 'x' | 'out' | 'none') {
  return (x: Tensor, s: number, o: OpOptions = {}): Tensor => {
    const out = U.scalarOp(`${op}_scalar`, x, s, o);
    if (!needsGrad(x)) return out;
    return record(`${op}_scalar`, out, [x], [saves === 'x' ? x : null, saves === 'out' ? out : null], (g, saved) =>
      [rule(g, s, saves === 'x' ? saved[0]! : null, saves === 'out' ? saved[0]! : null)]);
  };
}

const scalarForms: Record<string, (x: Tensor, s: number, o: OpOptions) => Tensor> = {
  add: scalarForm('add', (g) => g, 'none'),
  sub: scalarForm('sub', (g) => g, 'none'),
  mul: scalarForm('mul', (g, s) => K.mul(g, s), 'none'),
  div: scalarForm('div', (g, s) => K.div(g, s), 'none'),
  maximum: scalarForm('maximum', (g, s, x) => K.mul(g, K.greaterEqual(x!, s)), 'x'),
  minimum: scalarForm('minimum', (g, s, x) => K.mul(g, K.lessEqual(x!, s)), 'x'),
};

/** s - x. */
export const rsub = (x: Tensor, s: number, o: OpOptions = {}) => scalarForm('rsub', (g) => U.neg(g), 'none')(x, s, o);
/** s / x; d/dx = -s/x^2 (reads the saved x, never the caller's tensor, which a scope may have freed). */
export const rdiv = (x: Tensor, s: number, o: OpOptions = {}) =>
  scalarForm('rdiv', (g, sc, sx) => K.mul(g, K.mul(U.pow(sx!, -2), -sc)), 'x')(x, s, o);

/** `s op x` for a number s, as the op with its operands swapped (sub and div have their own forms). */
const scalarFirst: Record<string, (s: number, x: Tensor, o: OpOptions) => Tensor> = {
  add: (s, x, o) => scalarForms.add!(x, s, o),
  mul: (s, x, o) => scalarForms.mul!(x, s, o),
  maximum: (s, x, o) => scalarForms.maximum!(x, s, o),
  minimum: (s, x, o) => scalarForms.minimum!(x, s, o),
  sub: (s, x, o) => rsub(x, s, o),
  div: (s, x, o) => rdiv(x, s, o),
};

function describeOperand(v: unknown): string {
  if (v instanceof Tensor) return v.describe();
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array (wrap it with fromArray())';
  return typeof v === 'object' ? `an object (${(v as object).constructor?.name ?? 'Object'})` : `a ${typeof v}`;
}

/** cond ? a : b; the gradient flows to a where cond holds and to b elsewhere (none to cond). */
export function where(cond: Tensor, a: Tensor, b: Tensor, o: OpOptions = {}): Tensor {
  const out = K.where(cond, a, b, o);
  if (!needsGrad(a, b)) return out;
  return record('where', out, [cond, a, b], [cond], (g, [c]) => {
    const z = zeroLike(g);
    return [null, a.requiresGrad ? sumToShape(K.where(c!, g, z), a.shape) : null, b.requiresGrad ? sumToShape(K.where(c!, z, g), b.shape) : null];
  });
}

/** A copy in another dtype; the gradient is cast back. */
export function cast(x: Tensor, dtype: DType, o: OpOptions = {}): Tensor {
  const out = U.cast(x, dtype, o);
  if (!needsGrad(x) || dtype === 'i32') return out;
  return record('cast', out, [x], [], (g) => [U.cast(g, x.dtype)]);
}
