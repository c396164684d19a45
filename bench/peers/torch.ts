/**
 * The PyTorch peers: bench:train's runs bench/peers/torch_train.py (Debian's PyTorch, float32 on
 * the CPU, all cores) on the same config, batch and token ids, and returns its tokens/s; bench:matmul's
 * runs bench/peers/torch_matmul.py on the same shapes. Null when
 * PyTorch is not importable or STEP_BENCH_TORCH=0, so the bench still runs without it.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { LlamaConfig } from '../../models/config.js';

export interface TorchResult { tokens_per_second: number; steps: number; threads: number; blas: string; torch: string }

const PYTHON = process.env.STEP_BENCH_PYTHON ?? '/usr/bin/python3';
// the scripts sit beside this file's source (dist/bench/peers -> bench/peers)
const SCRIPT = fileURLToPath(new URL('../../../bench/peers/torch_train.py', import.meta.url));
const MATMUL_SCRIPT = fileURLToPath(new URL('../../../bench/peers/torch_matmul.py', import.meta.url));

export function torchAvailable(): boolean {
  if (process.env.STEP_BENCH_TORCH === '0') return false;
  return spawnSync(PYTHON, ['-c', 'import torch'], { stdio: 'ignore' }).status === 0;
}

export function torchTrainStep(config: LlamaConfig, batch: number, seq: number, ids: number[], targets: number[], minSeconds: number): TorchResult {
  const arg = JSON.stringify({ config, batch, seq, ids, targets, min_seconds: minSeconds, min_steps: 3 });
  const r = spawnSync(PYTHON, [SCRIPT, arg], { encoding: 'utf8', maxBuffer: 1 << 20 });
  if (r.status !== 0) throw new Error(`bench: the PyTorch peer failed (${PYTHON} ${SCRIPT}): ${r.stderr || r.error}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as TorchResult;
}

export interface TorchMatmulShape { M: number; K: number; N: number; transA?: boolean; transB?: boolean; batch?: number }
export interface TorchMatmulResult { ms: number[]; threads: number; blas: string; torch: string }

/** bench:matmul's peer: ms per product of each shape (bench/peers/torch_matmul.py), float32 on the CPU, all cores. */
export function torchMatmul(shapes: readonly TorchMatmulShape[], minSeconds: number): TorchMatmulResult {
  const arg = JSON.stringify({ shapes: shapes.map(({ M, K, N, transA, transB, batch }) => ({ M, K, N, transA: !!transA, transB: !!transB, batch: batch ?? 1 })), min_seconds: minSeconds });
  const r = spawnSync(PYTHON, [MATMUL_SCRIPT, arg], { encoding: 'utf8', maxBuffer: 1 << 20 });
  if (r.status !== 0) throw new Error(`bench: the PyTorch matmul peer failed (${PYTHON} ${MATMUL_SCRIPT}): ${r.stderr || r.error}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as TorchMatmulResult;
}
