/**
 * Explicit bind group layouts and a bind group cache for the WebGPU backend.
 *
 * Why: on lavapipe every live bind group holds a descriptor set that the driver maps into the
 * process (one memory-map entry each), and Dawn frees it only when V8 collects the JS wrapper,
 * which it does lazily because the wrapper looks tiny. A bind group per dispatch therefore piles
 * up maps until the process hits `vm.max_map_count` (65530) and dies with SIGSEGV. Uniforms bound
 * with a dynamic offset let one bind group serve every dispatch over the same buffers, so a
 * training loop (whose pool hands back the same buffers every step) stops creating them; a full
 * garbage collection after every `GC_EVERY` new bind groups bounds what one-off graphs leave.
 */
import { readFileSync } from 'node:fs';
import { runInNewContext } from 'node:vm';
import { setFlagsFromString } from 'node:v8';
import { DeviceError } from '../errors.js';

/** How a kernel's WGSL declares binding i of group 0 (textures: 2-D f32 only, sampled or rgba32float write-only storage). */
export type BindingKind = 'storage' | 'read-only-storage' | 'uniform' | 'texture' | 'write-texture';

const BINDING = /@group\(0\)\s*@binding\((\d+)\)\s*var<(storage|uniform)(?:\s*,\s*(read_write|read))?>/g;
const TEXTURE = /@group\(0\)\s*@binding\((\d+)\)\s*var\s+\w+\s*:\s*(texture_2d<f32>|texture_storage_2d<rgba32float,\s*write>)/g;

/** The bindings a kernel declares, indexed by binding number (storage defaults to read, as in WGSL). */
export function parseBindings(source: string): BindingKind[] {
  const kinds: BindingKind[] = [];
  for (const m of source.matchAll(BINDING)) {
    kinds[Number(m[1])] = m[2] === 'uniform' ? 'uniform' : m[3] === 'read_write' ? 'storage' : 'read-only-storage';
  }
  for (const m of source.matchAll(TEXTURE)) kinds[Number(m[1])] = m[2]!.startsWith('texture_2d') ? 'texture' : 'write-texture';
  return kinds;
}

/** One bound resource: a buffer range, or a texture view. */
export type BoundResource = { buffer: GPUBuffer; offset: number; size: number } | { view: GPUTextureView };

/** The explicit layout of a kernel's group 0: its uniform block (if any) takes a dynamic offset. */
export function layoutEntries(kinds: readonly BindingKind[], label: string): GPUBindGroupLayoutEntry[] {
  return kinds.map((kind, binding) => {
    if (kind === undefined) throw new Error(`${label}: binding ${binding} of group 0 is not declared in its WGSL`);
    const visibility = GPUShaderStage.COMPUTE;
    if (kind === 'texture') return { binding, visibility, texture: { sampleType: 'unfilterable-float', viewDimension: '2d' } };
    if (kind === 'write-texture') return { binding, visibility, storageTexture: { access: 'write-only', format: 'rgba32float', viewDimension: '2d' } };
    return { binding, visibility, buffer: kind === 'uniform' ? { type: 'uniform', hasDynamicOffset: true } : { type: kind } };
  });
}

/** New bind groups between two forced collections. */
export const GC_EVERY = 4096;
/** Cached bind groups at most (least recently used ones are dropped first). */
export const BIND_GROUP_CACHE_SIZE = 8192;

/**
 * New bind groups allowed between two waits on the device. Dawn releases dropped ones only while
 * it ticks (during a read or `sync()`), so a program that records tens of thousands of ops without
 * ever waiting would exhaust the process's memory maps; it gets this clear error instead.
 */
export function bindGroupsPerWaitLimit(): number {
  let maxMaps = 65530;
  try {
    maxMaps = Number(readFileSync('/proc/sys/vm/max_map_count', 'utf8').trim()) || maxMaps;
  } catch { /* not Linux: keep the common default */ }
  return Math.max(BIND_GROUP_CACHE_SIZE, maxMaps - 16384);
}

let forcedGc: (() => void) | null | undefined;

/** V8's collector, reached without --expose-gc (null if this runtime refuses). */
function collector(): (() => void) | null {
  if (forcedGc !== undefined) return forcedGc;
  try {
    setFlagsFromString('--expose-gc');
    forcedGc = runInNewContext('gc') as () => void;
  } catch {
    forcedGc = null;
  }
  return forcedGc;
}

/** Bind groups keyed by layout and bound buffer ranges, least recently used dropped first. */
export class BindGroupCache {
  private readonly cache = new Map<string, GPUBindGroup>();
  private readonly bufferIds = new WeakMap<GPUBuffer | GPUTextureView, number>();
  private nextBufferId = 1;
  private createdSinceGc = 0;
  private createdSinceWait = 0;
  created = 0;

  constructor(private readonly device: GPUDevice, private readonly perWaitLimit = bindGroupsPerWaitLimit()) {}

  /** The device was waited on (a read or sync): Dawn has had the chance to release dropped bind groups. */
  noteWait(): void {
    this.createdSinceWait = 0;
  }

  private idOf(buffer: GPUBuffer | GPUTextureView): number {
    let id = this.bufferIds.get(buffer);
    if (id === undefined) {
      id = this.nextBufferId++;
      this.bufferIds.set(buffer, id);
    }
    return id;
  }

  /** The bind group of `layout` over these ranges, created on first use. */
  get(layoutId: number, layout: GPUBindGroupLayout, ranges: readonly BoundResource[]): GPUBindGroup {
    let key = String(layoutId);
    for (const r of ranges) key += 'view' in r ? `|t${this.idOf(r.view)}` : `|${this.idOf(r.buffer)}:${r.offset}:${r.size}`;
    const hit = this.cache.get(key);
    if (hit) {
      this.cache.delete(key); // re-insert: Map order is the recency order
      this.cache.set(key, hit);
      return hit;
    }
    if (this.createdSinceWait >= this.perWaitLimit) {
      throw new DeviceError(`webgpu: ${this.createdSinceWait} kernel dispatches over new buffers were recorded without waiting for the device once; ` +
        'the driver cannot release their bindings until it is waited on, and the process would run out of memory maps. ' +
        'Await a value (`await t.item()`, `t.toArray()`) or `await device.sync()` every few thousand ops, and dispose tensors you no longer need (scope()).');
    }
    const group = this.device.createBindGroup({
      layout,
      entries: ranges.map((r, binding) => ({ binding, resource: 'view' in r ? r.view : { buffer: r.buffer, offset: r.offset, size: r.size } })),
    });
    this.cache.set(key, group);
    if (this.cache.size > BIND_GROUP_CACHE_SIZE) this.cache.delete(this.cache.keys().next().value!);
    this.created++;
    this.createdSinceGc++;
    this.createdSinceWait++;
    return group;
  }

  /** Drops every cached bind group (when buffers are destroyed: theirs can never be hit again). */
  clear(): void {
    this.cache.clear();
  }

  /** After a submit: collect dropped bind groups once enough were created, so their maps are reused. */
  collectIfDue(): void {
    if (this.createdSinceGc < GC_EVERY) return;
    this.createdSinceGc = 0;
    collector()?.();
  }
}
