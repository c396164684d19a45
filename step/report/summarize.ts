/**
 * Turns loaded runs into what the report shows: final validation numbers, memory bars per stage
 * (the planner's prediction, the measured model state, the tracker's peak), the STEP planner
 * table recomputed from the run's options, and the measured peak of model-state bytes.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { LlamaConfig } from '../../models/config.js';
import { presetConfig } from '../../models/config-presets.js';
import { BpeTokenizer } from '../../models/tokenizer/bpe.js';
import type { Plan } from '../planner/plan.js';
import { planStages } from '../planner/plan.js';
import { engineCostModel } from '../planner/costs.js';
import type { PeakLog, RunData, StateCategory } from './load-run.js';
import { STATE_KEYS } from './load-run.js';

export interface MemoryBar {
  run: string;
  label: string;
  predicted: Record<StateCategory, number> | null;
  measured: Record<StateCategory, number>;
  /** The run's peak so far (all categories) when the stage's memory event was logged. */
  peak: Record<string, number> | null;
  peakTotal: number | null;
  match: boolean | null;
  /** Where the measured bytes come from. */
  source: string;
}

export interface RunSummary {
  name: string;
  method: string;
  description: string;
  target: LlamaConfig | null;
  /** Why `target` (and so the planner's numbers) is missing. */
  targetError: string | null;
  vocabSource: string;
  finalStep: number;
  tokens: number;
  finished: boolean;
  valLoss: number | null;
  valPerplexity: number | null;
  unigramPerplexity: number | null;
  /**
   * The run's whole-life peak of model state (parameter + frozen + gradient + optimizer live at
   * once, stage transitions included) as the tracker logged it; for logs without it, the largest
   * sum live after any logged step (`peakModelStateSource` says which).
   */
  peakModelState: number | null;
  peakModelStateBreakdown: Record<StateCategory, number> | null;
  peakModelStateSource: 'whole-run tracker peak' | 'live after logged steps' | null;
  /** The run's whole-life tracker peak (all categories), with its split by category. */
  peakTotal: number | null;
  peakBreakdown: Record<string, number> | null;
  meanTokensPerSecond: number | null;
  wallSeconds: number | null;
  bars: MemoryBar[];
  /** STEP runs: the engine-mode plan (the bytes our engine allocates) and the paper-mode one. */
  plan: Plan | null;
  paperPlan: Plan | null;
  stageSteps: number[];
}

export const sumState = (b: Partial<Record<string, number>>): number => STATE_KEYS.reduce((s, k) => s + (b[k] ?? 0), 0);

/** The tokenizer's vocabulary (what the model used), from the latest checkpoint or the run's tokenizer. */
async function vocabOf(run: RunData): Promise<{ vocab: number; source: string }> {
  try {
    const latest = JSON.parse(readFileSync(join(run.dir, 'latest.json'), 'utf8')) as { checkpoint?: string };
    const cfg = JSON.parse(readFileSync(join(run.dir, 'checkpoints', String(latest.checkpoint), 'config.json'), 'utf8')) as { vocab_size?: number };
    if (typeof cfg.vocab_size === 'number') return { vocab: cfg.vocab_size, source: `checkpoint ${latest.checkpoint}` };
  } catch { /* no checkpoint yet: try the tokenizer */ }
  const tok = join(run.dir, 'tokenizer.json');
  if (existsSync(tok)) {
    try { return { vocab: (await BpeTokenizer.load(tok)).vocabSize, source: 'tokenizer.json' }; } catch { /* fall through */ }
  }
  return { vocab: run.options.vocabSize, source: 'train-config.json vocabSize (no checkpoint or tokenizer found)' };
}

function describe(run: RunData, plan: Plan | null): string {
  const o = run.options;
  if (o.method === 'step') return `STEP, ${plan ? `split ${plan.split.join('+')}` : `${o.stages} stages`}, LoRA rank ${o.loraRank}`;
  if (o.method === 'relora') return `ReLoRA, warm start ${o.reloraWarmStart}, restart every ${o.reloraEvery}, rank ${o.loraRank}`;
  if (o.method === 'galore') return `GaLore, rank ${o.galoreRank}, projector refreshed every ${o.galoreUpdateGap} steps, scale ${o.galoreScale}`;
  return 'vanilla';
}

function stateOf(memory: Record<string, number>): Record<StateCategory, number> {
  return Object.fromEntries(STATE_KEYS.map((k) => [k, memory[k] ?? 0])) as Record<StateCategory, number>;
}

export async function summarizeRun(run: RunData): Promise<RunSummary> {
  const o = run.options;
  const { vocab, source: vocabSource } = await vocabOf(run);
  let target: LlamaConfig | null = null, targetError: string | null = null;
  try {
    target = presetConfig(o.preset, { ...(o.configOverrides ?? {}), vocab_size: vocab } as Partial<LlamaConfig>);
  } catch (e) {
    targetError = (e as Error).message;
  }
  let plan: Plan | null = null, paperPlan: Plan | null = null;
  if (target && o.method === 'step') {
    // Exactly the call the trainer makes (step/train/methods.ts), so the stages are the run's own.
    const how = o.split ? { split: o.split } : { stages: o.stages };
    try {
      plan = planStages({ config: target, ...how, rank: o.loraRank, mode: 'engine', precision: o.precision });
      paperPlan = planStages({ config: target, split: plan.split, rank: o.loraRank, mode: 'paper' });
    } catch (e) {
      targetError = `planner: ${(e as Error).message}`;
    }
  }
  const bars: MemoryBar[] = [];
  const stageName = (s: number) => (o.method === 'step' ? `stage ${s + 1}` : o.method === 'relora' ? 'full-rank warm start' : 'all layers');
  for (const m of run.memory) {
    let predicted = m.predicted;
    if (!predicted && target && o.method !== 'step') {
      // Vanilla (and ReLoRA's full-rank warm start) train every tensor of the target: the planner's vanilla bytes.
      const v = engineCostModel(target, 1, o.precision).vanilla; // rank is unused when nothing is frozen
      predicted = { parameter: v.parameter, frozen: v.frozen, gradient: v.gradient, optimizer: v.optimizer };
    }
    const match = m.match ?? (predicted ? STATE_KEYS.every((k) => predicted![k] === m.measured[k]) : null);
    bars.push({ run: run.name, label: stageName(m.stage), predicted, measured: m.measured, peak: m.peak?.breakdown ?? null,
      peakTotal: m.peak?.total ?? null, match, source: `memory event after step ${m.step}` });
  }
  const reloraStart = run.markers.find((x) => x.event === 'relora-start');
  if (reloraStart) {
    // ReLoRA logs no memory event after it freezes the layers: take the live bytes after its first LoRA step.
    const p = run.train.find((t) => t.step > reloraStart.step);
    if (p) bars.push({ run: run.name, label: 'LoRA phase', predicted: null, measured: stateOf(p.memory), peak: null, peakTotal: null, match: null, source: `live bytes after step ${p.step}` });
  }
  let peakModelState: number | null = null, peakModelStateBreakdown: Record<StateCategory, number> | null = null;
  let peakModelStateSource: RunSummary['peakModelStateSource'] = null;
  for (const p of run.peaks) {
    if (p.modelState && (peakModelState === null || p.modelState.total > peakModelState)) {
      peakModelState = p.modelState.total;
      peakModelStateBreakdown = stateOf(p.modelState.breakdown);
      peakModelStateSource = 'whole-run tracker peak';
    }
  }
  if (peakModelState === null) {
    // an older log: only what was live after the logged steps (misses transitions and in-step moments)
    const sampled = [...run.train.map((t) => t.memory), ...run.memory.map((m) => m.measured as Record<string, number>)];
    for (const b of sampled) {
      const sum = sumState(b);
      if (peakModelState === null || sum > peakModelState) { peakModelState = sum; peakModelStateBreakdown = stateOf(b); peakModelStateSource = 'live after logged steps'; }
    }
  }
  const top = run.peaks.reduce<PeakLog | null>((a, p) => (a === null || p.total > a.total ? p : a), null);
  const lastEval = run.evals.at(-1) ?? null;
  const end = run.end;
  const endLoss = typeof end?.valLoss === 'number' ? end.valLoss : null;
  const tps = run.train.map((t) => t.tokensPerSecond).filter((x) => x > 0);
  const lastTrain = run.train.at(-1);
  return {
    name: run.name, method: o.method, description: describe(run, plan), target, targetError, vocabSource,
    finalStep: lastTrain?.step ?? 0, tokens: lastTrain?.tokens ?? 0, finished: end !== null,
    valLoss: endLoss ?? lastEval?.loss ?? null,
    valPerplexity: (typeof end?.valPerplexity === 'number' ? end.valPerplexity : null) ?? lastEval?.perplexity ?? null,
    unigramPerplexity: run.unigramPerplexity, peakModelState, peakModelStateBreakdown, peakModelStateSource,
    peakTotal: top?.total ?? null, peakBreakdown: top?.breakdown ?? null,
    meanTokensPerSecond: tps.length ? tps.reduce((a, b) => a + b, 0) / tps.length : null,
    wallSeconds: run.wallSeconds, bars, plan, paperPlan,
    stageSteps: [...new Set(run.markers.filter((x) => x.event === 'stage').map((x) => x.step))],
  };
}
