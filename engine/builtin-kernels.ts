/**
 * The kernels the engine itself runs: `fill`, `arange` and `random` (creation), `copy` (clone)
 * and the optimizer kernels (AdamW / SGD updates, clipping, loss scaling, state resets; matmul and
 * the QR of GaLore's subspace). Importing
 * this registers them, so 'step-webgpu/engine' works on its own. The kernel files it names import
 * only from engine/, kernels/wgsl.ts and their own helpers (matmul-*.ts, optim.ts), never from
 * kernels/index.ts, autograd or models.
 */
import '../kernels/fill.js';
import '../kernels/arange.js';
import '../kernels/copy.js';
import '../kernels/random.js';
import '../kernels/optim.js';
import '../kernels/optim-multi.js';
import '../kernels/matmul.js';
import '../kernels/galore.js';
