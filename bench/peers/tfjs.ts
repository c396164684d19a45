/**
 * The tfjs peer: `@tensorflow/tfjs-backend-webgpu` on the same Dawn adapter (the `webgpu`
 * package's `create()` provides `navigator.gpu`, which Node lacks). Its waits go through the
 * engine's `awaitDevice` in the same mode as ours, so Dawn's busy-poll costs both sides alike.
 */
import { create, globals } from 'webgpu';
import type { WaitMode } from '../../engine/webgpu/device-wait.js';
import { awaitDevice } from '../../engine/webgpu/device-wait.js';

type Tf = typeof import('@tensorflow/tfjs-core');

/** The parts of tfjs-backend-webgpu's backend object this peer uses (not in its public types). */
interface TfWebGPUBackend {
  device: GPUDevice;
  /** Null when tfjs has already submitted everything (it flushes on its own every few dispatches). */
  commandEncoder: GPUCommandEncoder | null;
  adapterInfo?: { description?: string; vendor?: string; architecture?: string };
  endComputePassEncoder(): void;
  submitQueue(): void;
}

export interface MatmulShape {
  M: number;
  K: number;
  N: number;
  transA?: boolean;
  transB?: boolean;
  /** Matrices in the batch of both operands (default 1: plain 2-D operands). */
  batch?: number;
}

export interface TfjsPeer {
  /** 'tfjs-core x.y.z + tfjs-backend-webgpu on <adapter>' */
  description: string;
  /** Inputs for one shape and a function running `count` matmuls then waiting for the device. */
  prepare(shape: MatmulShape): { run(count: number): Promise<void>; dispose(): void };
}

/** Opens tfjs on WebGPU, or returns why it cannot run here. */
export async function openTfjs(waitMode: WaitMode): Promise<TfjsPeer | string> {
  try {
    Object.assign(globalThis, globals);
    const gpu = create([]);
    const nav = ((globalThis as { navigator?: object }).navigator ??= {});
    Object.defineProperty(nav, 'gpu', { value: gpu, configurable: true });
    const tf: Tf = await import('@tensorflow/tfjs-core');
    await import('@tensorflow/tfjs-backend-webgpu');
    if (!(await tf.setBackend('webgpu'))) return 'tf.setBackend("webgpu") returned false (no adapter?)';
    await tf.ready();
    const backend = tf.backend() as unknown as TfWebGPUBackend;
    const info = backend.adapterInfo;
    const adapter = [info?.vendor, info?.architecture, info?.description].filter(Boolean).join(' ') || 'unknown adapter';
    return {
      description: `tfjs-core ${tf.version_core} + tfjs-backend-webgpu on ${adapter}`,
      prepare(s) {
        const lead = s.batch && s.batch > 1 ? [s.batch] : [];
        const a = tf.randomUniform([...lead, ...(s.transA ? [s.K, s.M] : [s.M, s.K])], -1, 1);
        const b = tf.randomUniform([...lead, ...(s.transB ? [s.N, s.K] : [s.K, s.N])], -1, 1);
        return {
          async run(count) {
            for (let i = 0; i < count; i++) tf.matMul(a, b, s.transA, s.transB).dispose();
            backend.endComputePassEncoder();
            if (backend.commandEncoder) backend.submitQueue();
            await awaitDevice(backend.device.queue.onSubmittedWorkDone(), waitMode);
          },
          dispose() { a.dispose(); b.dispose(); },
        };
      },
    };
  } catch (e) {
    return `tfjs-backend-webgpu failed under Node: ${(e as Error).message}`;
  }
}
