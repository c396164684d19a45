import type { WebGPUBackend } from '../engine/webgpu/backend.js';
import type { Tensor } from '../engine/tensor.js';

/**
 * The bandwidth baseline of the kernel benchmarks: a device-to-device `copyBufferToBuffer` of
 * `bytes` from `src` to `dst`, submitted and awaited.
 */
export function deviceCopy(backend: WebGPUBackend, src: Tensor, dst: Tensor, bytes: number): () => Promise<void> {
  const from = backend.gpuBuffer(src.storage), to = backend.gpuBuffer(dst.storage);
  return async () => {
    const enc = backend.device.createCommandEncoder();
    enc.copyBufferToBuffer(from, 0, to, 0, bytes);
    backend.flush(); // keep queue order with anything the backend has recorded
    backend.device.queue.submit([enc.finish()]);
    await backend.sync();
  };
}
