/**
 * What backward keeps: views of tensors that the graph owns (never a scope), and promises of op
 * outputs that backward recomputes instead of keeping them.
 */
import type { Storage } from '../engine/backend.js';
import type { Category } from '../engine/memory.js';
import { keep } from '../engine/scope.js';
import { Tensor, viewOf } from '../engine/tensor.js';
import { noGrad } from './grad-mode.js';

/**
 * Storages that saved views retagged as `activation`: how many saved views hold each, and the
 * category to give back when the last one is released (an input batch is `temporary` again
 * once backward no longer needs it).
 */
const retagged = new WeakMap<Storage, { views: number; previous: Category }>();

/** A tensor to keep, by storage: a scope may dispose a tensor whose storage a saved view keeps alive. */
interface Source { storage: Storage; shape: readonly number[]; label: string; isParameterLeaf: boolean }

/** What a node (or a promise) keeps of one tensor: a graph-owned view, or a promise viewed once read. */
export type SavedSlot = Tensor | { from: Recomputable; shape: readonly number[]; view: Tensor | null };

function sourceOf(t: Tensor): Source {
  // a parameter (a leaf that wants a gradient) or a frozen weight keeps its own category
  return { storage: t.storage, shape: t.shape, label: t.label, isParameterLeaf: t.requiresGrad && t.gradNode === null };
}

/** A promise when the storage holds a recomputable output, else a view; null when the storage is already freed. */
function holdSource(s: Source, keepCategory = false): SavedSlot | null {
  const promise = recomputables.get(s.storage);
  if (promise?.hold()) return { from: promise, shape: s.shape, view: null };
  if (s.storage.refs === 0) return null;
  s.storage.refs++; // a view of a live storage, as viewOf makes
  const view = keep(new Tensor(s.storage, s.shape, s.label)); // owned by the graph, never by a scope
  const entry = retagged.get(s.storage);
  if (entry) entry.views++;
  else if (view.category === 'temporary' && !s.isParameterLeaf && !keepCategory) {
    retagged.set(s.storage, { views: 1, previous: 'temporary' });
    view.setCategory('activation');
  }
  return view;
}

/**
 * Keeps `t` for backward: a promise when it is recomputable, else a view that counts as `activation`
 * while held (`keepCategory`: as whatever it is, e.g. gradients a rule computed ahead as temporaries).
 */
export function holdSaved(t: Tensor, keepCategory = false): SavedSlot {
  return holdSource(sourceOf(t), keepCategory)!; // t is live, so its storage is
}

/** The tensor a slot stands for (a promise is rebuilt on first read, then shared). */
export function readSaved(slot: SavedSlot): Tensor {
  if (slot instanceof Tensor) return slot;
  slot.view ??= keep(viewOf(slot.from.get(), slot.shape)); // owned by the slot, like a saved view
  return slot.view;
}

/** Frees a slot; a storage that saved views alone kept as `activation` gets its category back. */
export function releaseSaved(slot: SavedSlot): void {
  if (!(slot instanceof Tensor)) {
    slot.view?.dispose();
    slot.from.letGo();
    return;
  }
  const storage = slot.storage;
  const entry = retagged.get(storage);
  if (entry && --entry.views === 0) {
    retagged.delete(storage);
    if (storage.refs > 1) slot.setCategory(entry.previous); // someone else still holds it
  }
  slot.dispose();
}

/**
 * An op output that backward rebuilds instead of keeping (an RMSNorm's output from its input,
 * SwiGLU's product from gate and up). An op that would save it (the linears after a norm, the
 * down projection) holds this promise instead, so the output's storage dies with the forward's
 * scope. The promise keeps its sources as a node would (views, or promises in turn), and they
 * are what the producing op saves anyway: no bytes of their own. The first consumer whose
 * backward reads it rebuilds it once, with the same kernels on the same inputs, so the values
 * are bit-identical; that copy (`temporary`) lives until the last consumer is done.
 */
export class Recomputable {
  private users = 0;
  private held: SavedSlot[] | null = null;
  private value: Tensor | null = null;
  private readonly sources: Source[];

  constructor(sources: readonly Tensor[], private readonly rebuild: (sources: readonly Tensor[]) => Tensor) {
    this.sources = sources.map(sourceOf);
  }

  /** Adds a consumer; false when a source is already freed (the consumer then keeps the output itself). */
  hold(): boolean {
    if (!this.held) {
      const held = this.sources.map((s) => holdSource(s));
      if (held.some((h) => h === null)) {
        for (const h of held) if (h) releaseSaved(h);
        return false;
      }
      this.held = held as SavedSlot[];
    }
    this.users++;
    return true;
  }

  /** The rebuilt output, one copy shared by every consumer. */
  get(): Tensor {
    this.value ??= keep(noGrad(() => this.rebuild(this.held!.map(readSaved))));
    return this.value;
  }

  letGo(): void {
    if (--this.users > 0) return;
    this.value?.dispose();
    this.value = null;
    for (const h of this.held!) releaseSaved(h);
    this.held = null;
  }
}

/** Promises by the output's storage (consumers often save a reshaped view of it). */
const recomputables = new WeakMap<Storage, Recomputable>();

/**
 * Marks `output` as rebuildable by `rebuild(sources)`: ops that consume it then save nothing for
 * it. `rebuild` must give the very values of `output` (the same kernels on the same inputs), and
 * should cost little next to the bytes saved. Returns `output`.
 */
export function markRecomputable(output: Tensor, sources: readonly Tensor[], rebuild: (sources: readonly Tensor[]) => Tensor): Tensor {
  recomputables.set(output.storage, new Recomputable(sources, rebuild));
  return output;
}
