/**
 * Time per kernel on the device, from timestamp queries: while a profile is on, the backend gives
 * every dispatch a compute pass of its own whose beginning and end write timestamps; each batch
 * resolves them into a buffer read back after its submit, and the times add up per dispatch label.
 * One pass per dispatch costs a little (a pass is cheap on Dawn), so wall time under a profile is
 * a bit above the unprofiled run; the per-kernel shares are what to read.
 * Dawn quantizes timestamps unless the backend was made with the Dawn flag
 * `disable-dawn-features=timestamp_quantization` (PROFILE_DAWN_FLAGS).
 */
import type { WaitMode } from './device-wait.js';
import { awaitDevice } from './device-wait.js';

/** Dawn flags for exact timestamps; pass as `createWebGPUBackend({ dawnFlags: PROFILE_DAWN_FLAGS })`. */
export const PROFILE_DAWN_FLAGS: readonly string[] = ['disable-dawn-features=timestamp_quantization'];

export interface KernelTime {
  /** The dispatch label (e.g. 'matmul', 'scatterAddRows sort histogram'). */
  label: string;
  dispatches: number;
  /** Device time between each dispatch's pass begin and end, summed, in milliseconds. */
  ms: number;
}

export interface ProfileReport {
  /** Per label, most time first. */
  kernels: KernelTime[];
  /** Sum of every dispatch's device time (ms). */
  deviceMs: number;
  /** Wall-clock time of the profiled function (ms). */
  wallMs: number;
  dispatches: number;
  submits: number;
  readbacks: number;
  uploads: number;
  /** Buffer-to-texture copies: on the device's timeline but not timed (timestamps cover compute passes only). */
  copies: number;
  pipelinesBuilt: number;
}

interface Batch { buffer: GPUBuffer; labels: string[] }

export class DispatchProfiler {
  private readonly querySet: GPUQuerySet;
  private readonly resolve: GPUBuffer;
  private labels: string[] = [];
  private submitted: Batch | null = null;
  private readonly pending: Promise<void>[] = [];
  private readonly totals = new Map<string, { dispatches: number; ns: number }>();

  /** `maxDispatches`: the most dispatches the backend records before it submits a batch. */
  constructor(private readonly device: GPUDevice, readonly maxDispatches: number) {
    this.querySet = device.createQuerySet({ type: 'timestamp', count: 2 * maxDispatches, label: 'profile timestamps' });
    this.resolve = device.createBuffer({ size: 16 * maxDispatches, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC, label: 'profile resolve' });
  }

  /** The timestamp writes of the next dispatch's pass; the dispatch is counted under `label`. */
  timestampWrites(label: string): GPUComputePassTimestampWrites {
    const k = this.labels.length;
    this.labels.push(label);
    return { querySet: this.querySet, beginningOfPassWriteIndex: 2 * k, endOfPassWriteIndex: 2 * k + 1 };
  }

  get full(): boolean {
    return this.labels.length >= this.maxDispatches;
  }

  /** Records the resolve of this batch's timestamps into `encoder` (before it is finished). */
  beforeFinish(encoder: GPUCommandEncoder): void {
    if (this.labels.length === 0) return;
    const bytes = 16 * this.labels.length;
    const buffer = this.device.createBuffer({ size: bytes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST, label: 'profile readback' });
    encoder.resolveQuerySet(this.querySet, 0, 2 * this.labels.length, this.resolve, 0);
    encoder.copyBufferToBuffer(this.resolve, 0, buffer, 0, bytes);
    this.submitted = { buffer, labels: this.labels };
    this.labels = [];
  }

  /** After the submit: reads the batch's timestamps back when the device is done with it. */
  afterSubmit(waitMode: WaitMode): void {
    const batch = this.submitted;
    if (!batch) return;
    this.submitted = null;
    this.pending.push(awaitDevice(batch.buffer.mapAsync(GPUMapMode.READ), waitMode).then(() => {
      const t = new BigUint64Array(batch.buffer.getMappedRange());
      batch.labels.forEach((label, k) => {
        const ns = t[2 * k + 1]! > t[2 * k]! ? Number(t[2 * k + 1]! - t[2 * k]!) : 0;
        const row = this.totals.get(label) ?? { dispatches: 0, ns: 0 };
        row.dispatches++;
        row.ns += ns;
        this.totals.set(label, row);
      });
      batch.buffer.unmap();
      batch.buffer.destroy();
    }));
  }

  /** Waits for every submitted batch's timestamps and returns the times per label, most first. */
  async finish(): Promise<{ kernels: KernelTime[]; deviceMs: number }> {
    await Promise.all(this.pending);
    this.querySet.destroy();
    this.resolve.destroy();
    const kernels = [...this.totals].map(([label, r]) => ({ label, dispatches: r.dispatches, ms: r.ns / 1e6 })).sort((a, b) => b.ms - a.ms);
    return { kernels, deviceMs: kernels.reduce((s, k) => s + k.ms, 0) };
  }
}
