import type { Tensor } from '../../engine/tensor.js';
import * as M from '../../kernels/matmul.js';
import type { MatmulOptions } from '../../kernels/matmul.js';
import { needsGrad, record } from '../tape.js';
import { sumToShape } from './elementwise.js';
import { reshape } from './layout.js';

/**
 * Differentiable matmul with transpose flags (see kernels/matmul.ts). The gradients use the
 * flags too, so no transpose is ever materialised:
 *   C = A B      : dA = dC B^T,       dB = A^T dC
 *   C = A^T B    : dA = B dC^T,       dB = A dC
 *   C = A B^T    : dA = dC B,         dB = dC^T A
 *   C = A^T B^T  : dA = B^T dC^T,     dB = dC^T A^T
 * A batched `a` times a 2-D `b` (a linear layer) runs as one 2-D product over the flattened rows,
 * so dB is one product too; other batch broadcasts are summed back with sumToShape.
 */
export function matmul(a: Tensor, b: Tensor, options: MatmulOptions = {}): Tensor {
  const transA = options.transA ?? false, transB = options.transB ?? false;
  if (a.rank > 2 && b.rank === 2 && !transA) {
    const k = a.shape[a.rank - 1]!;
    const rows = a.shape.slice(0, -1).reduce((x, y) => x * y, 1); // explicit: -1 cannot be inferred from 0 elements
    const a2 = reshape(a, [rows, k]);
    const flat = matmul2(a2, b, transA, transB, options);
    return reshape(flat, [...a.shape.slice(0, -1), flat.shape[1]!]);
  }
  return matmul2(a, b, transA, transB, options);
}

function matmul2(a: Tensor, b: Tensor, transA: boolean, transB: boolean, options: MatmulOptions): Tensor {
  const out = M.matmul(a, b, options);
  if (!needsGrad(a, b)) return out;
  const needA = a.requiresGrad, needB = b.requiresGrad;
  // dA reads only b, dB reads only a: a frozen weight keeps no copy of the input alive
  return record('matmul', out, [a, b], [needB ? a : null, needA ? b : null], (g, saved) => {
    const sa = needB ? saved[0]! : null;
    const sb = needA ? saved[needB ? 1 : 0]! : null;
    let da: Tensor | null = null, db: Tensor | null = null;
    if (needA) {
      if (!transA && !transB) da = M.matmul(g, sb!, { transB: true });
      else if (transA && !transB) da = M.matmul(sb!, g, { transB: true });
      else if (!transA && transB) da = M.matmul(g, sb!);
      else da = M.matmul(sb!, g, { transA: true, transB: true });
      da = sumToShape(da, a.shape);
    }
    if (needB) {
      if (!transA && !transB) db = M.matmul(sa!, g, { transA: true });
      else if (transA && !transB) db = M.matmul(sa!, g);
      else if (!transA && transB) db = M.matmul(g, sa!, { transA: true });
      else db = M.matmul(g, sa!, { transA: true, transB: true });
      db = sumToShape(db, b.shape);
    }
    return [da, db];
  });
}
