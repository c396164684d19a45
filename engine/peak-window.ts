/**
 * The peaks of one measurement window: of all allocated bytes, of tensor bytes (all but
 * `staging`), of model state (MODEL_STATE_CATEGORIES live together), and of each category on its
 * own, each with the per-category split at its moment. The tracker keeps one for its own peak
 * (resetPeak starts it again) and hands out more on request (`MemoryTracker.openPeakWindow`): a
 * command that measures each stage of a run opens a window per stage without ever resetting the
 * run's whole-life peak.
 */
import type { ByCategory, Category } from './memory.js';
import { MODEL_STATE_CATEGORIES, zeroByCategory } from './memory.js';

export interface PeakWindowReport {
  /** Peak of all allocated bytes in the window, with the split at that moment. */
  peak: { total: number; breakdown: ByCategory };
  /** Peak of tensor bytes (all but `staging`), with the split at that moment (`staging` 0). */
  peakTensors: { total: number; breakdown: ByCategory };
  /** Peak of model-state bytes live together, with its split (other categories 0). */
  peakModelState: { total: number; breakdown: ByCategory };
  /** Each category's own maximum in the window (need not be simultaneous). */
  peakByCategory: ByCategory;
}

function modelState(live: ByCategory): { total: number; split: ByCategory } {
  const split = zeroByCategory();
  let total = 0;
  for (const c of MODEL_STATE_CATEGORIES) { split[c] = live[c]; total += live[c]; }
  return { total, split };
}

export class PeakWindow {
  private peakTotal = 0;
  private peakBreakdown = zeroByCategory();
  private tensorTotal = 0;
  private tensorBreakdown = zeroByCategory();
  private stateTotal = 0;
  private stateBreakdown = zeroByCategory();
  private readonly byCategory = zeroByCategory();

  /** A window whose peaks start at the bytes live now; `onClose` runs once, at close(). */
  constructor(live: ByCategory, private onClose: (() => void) | null = null) {
    this.restart(live);
  }

  /** Starts the window again at the bytes live now. */
  restart(live: ByCategory): void {
    const total = liveTotal(live);
    this.peakTotal = total;
    this.peakBreakdown = { ...live };
    this.tensorTotal = total - live.staging;
    this.tensorBreakdown = { ...live, staging: 0 };
    const state = modelState(live);
    this.stateTotal = state.total;
    this.stateBreakdown = state.split;
    Object.assign(this.byCategory, live);
  }

  /**
   * Takes in the bytes live after an allocation, or after a retag (`retagged`): a retag keeps the
   * total but moves bytes between categories, so a peak it ties takes the new split.
   */
  observe(live: ByCategory, allocated: number, changed: Category, retagged = false): void {
    if (live[changed] > this.byCategory[changed]) this.byCategory[changed] = live[changed];
    if (allocated > this.peakTotal || (retagged && allocated === this.peakTotal)) {
      this.peakTotal = allocated;
      this.peakBreakdown = { ...live };
    }
    const tensors = allocated - live.staging;
    if (tensors > this.tensorTotal || (retagged && tensors === this.tensorTotal)) {
      this.tensorTotal = tensors;
      this.tensorBreakdown = { ...live, staging: 0 };
    }
    const state = modelState(live);
    if (state.total > this.stateTotal) {
      this.stateTotal = state.total;
      this.stateBreakdown = state.split;
    }
  }

  report(): PeakWindowReport {
    return {
      peak: { total: this.peakTotal, breakdown: { ...this.peakBreakdown } },
      peakTensors: { total: this.tensorTotal, breakdown: { ...this.tensorBreakdown } },
      peakModelState: { total: this.stateTotal, breakdown: { ...this.stateBreakdown } },
      peakByCategory: { ...this.byCategory },
    };
  }

  /** Stops observing (the report stays readable). */
  close(): void {
    this.onClose?.();
    this.onClose = null;
  }
}

function liveTotal(live: ByCategory): number {
  return Object.values(live).reduce((a, b) => a + b, 0);
}
