/**
 * Scratch `rgba32float` textures for kernels that read an operand through the texture path (on
 * llvmpipe a texel load costs ~2 instructions per float against ~8-10 for a storage-buffer load).
 * Like the buffer pool: a released texture is cached by its exact size and handed out again;
 * queue order makes reuse safe (every later use is recorded after the use that released it).
 * The tracker counts a texture as `staging` while it is held and as reserved while cached.
 */
import type { MemoryTracker } from '../memory.js';

/** A held texture: bind `view` (sampled or as a write-only storage texture), then `release()`. */
export interface ScratchTexture {
  readonly texture: GPUTexture;
  readonly view: GPUTextureView;
  readonly width: number;
  readonly height: number;
  release(): void;
}

const BYTES_PER_TEXEL = 16;

export class TexturePool {
  private readonly free = new Map<string, { texture: GPUTexture; view: GPUTextureView }[]>();

  constructor(
    private readonly device: GPUDevice,
    private readonly tracker: MemoryTracker,
    /** Submits open work that may still use a texture before it is destroyed. */
    private readonly beforeDestroy: () => void,
  ) {}

  acquire(width: number, height: number, label: string): ScratchTexture {
    const key = `${width}x${height}`;
    const bytes = width * height * BYTES_PER_TEXEL;
    let entry = this.free.get(key)?.pop();
    if (!entry) {
      this.tracker.checkLimit(bytes, `${label} (staging texture ${width}x${height} rgba32float)`);
      const texture = this.device.createTexture({
        size: [width, height], format: 'rgba32float', label,
        usage: GPUTextureUsage.TEXTURE_BINDING | GPUTextureUsage.STORAGE_BINDING | GPUTextureUsage.COPY_DST,
      });
      entry = { texture, view: texture.createView() };
      this.tracker.onReserve(bytes);
    }
    const id = this.tracker.onAlloc(bytes, 'staging', label);
    const held = entry;
    let released = false;
    return {
      ...held, width, height,
      release: () => {
        if (released) return;
        released = true;
        this.tracker.onFree(id);
        const list = this.free.get(key) ?? [];
        list.push(held);
        this.free.set(key, list);
      },
    };
  }

  /** Destroys every cached texture. */
  trim(): void {
    if (this.free.size === 0) return;
    this.beforeDestroy();
    for (const [key, list] of this.free) {
      const [w, h] = key.split('x').map(Number) as [number, number];
      for (const t of list) {
        t.texture.destroy();
        this.tracker.onReserve(-w * h * BYTES_PER_TEXEL);
      }
    }
    this.free.clear();
  }
}
