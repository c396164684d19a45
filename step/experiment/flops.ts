/**
 * Training FLOPs of a run, to compare methods at equal compute (the paper notes that STEP needs
 * more tokens than vanilla for the same FLOPs). Per token, with N_mm the matmul parameters the
 * forward touches (7 linears per layer, LoRA adapters A and B on frozen layers, the LM head) and
 * attention's 2 T h per layer (Kaplan et al.'s 2 n_layer n_ctx d_attn, causal masking not halved):
 *   forward  = 2 N_mm + 2 T h L_now
 *   backward = forward (gradients of the activations, all the way down: the embeddings, or the
 *              lowest layer, train in every method here) + 2 x (trainable matmul parameters)
 *              (weight gradients: new layers, adapters, and the head while it trains).
 * So vanilla costs 6 N_mm + 4 T h L per token, a frozen layer without adapters 4/6 of a trained
 * one. Norms, softmax, RoPE and the optimizer update are left out (the same order of small terms
 * for every method). A run's FLOPs add, stage by stage, steps x tokens per step x FLOPs per token.
 */
import { layerLinears } from '../../models/config-params.js';
import type { LlamaConfig } from '../../models/config.js';
import { runPlan } from '../train/run-plan.js';
import type { TrainOptions } from '../train/options.js';
import { stageSchedule } from '../train/stage-schedule.js';

export interface StageShape {
  /** Layers trained fully. */
  trainable: number;
  /** Layers frozen (with adapters unless `pet` is false). */
  frozen: number;
  pet: boolean;
  rank: number;
  /** Does the LM head (or the tied embedding) train? */
  headTrains: boolean;
}

/** Training FLOPs per token of a model in the given shape (see the file comment). */
export function flopsPerToken(c: LlamaConfig, seqLen: number, s: StageShape): number {
  const linears = layerLinears(c);
  const layer = linears.reduce((a, l) => a + l.in * l.out, 0);
  const adapter = linears.reduce((a, l) => a + s.rank * (l.in + l.out), 0);
  const head = c.vocab_size * c.hidden_size;
  const layers = s.trainable + s.frozen;
  const adapters = s.pet ? s.frozen * adapter : 0;
  const forward = 2 * (layers * layer + adapters + head) + 2 * seqLen * c.hidden_size * layers;
  const trainable = s.trainable * layer + adapters + (s.headTrains ? head : 0);
  return 2 * forward + 2 * trainable;
}

/** The training FLOPs of a whole run of `o` on `target` (vanilla, STEP by its plan and stage lengths, ReLoRA). */
export function runFlops(o: TrainOptions, target: LlamaConfig): number {
  const perStep = o.batchSize * o.seqLen * o.gradAccum;
  const L = target.num_hidden_layers;
  const full = flopsPerToken(target, o.seqLen, { trainable: L, frozen: 0, pet: true, rank: o.loraRank, headTrains: true });
  if (o.method === 'step') {
    const split = runPlan(o, target).split;
    const { steps } = stageSchedule(o, split.length);
    let prev = 0, total = 0;
    for (const [i, n] of split.entries()) {
      const shape = { trainable: n, frozen: prev, pet: !o.noPet, rank: o.loraRank, headTrains: i === 0 || !o.freezeEmbeddings };
      total += steps[i]! * perStep * flopsPerToken({ ...target, num_hidden_layers: prev + n }, o.seqLen, shape);
      prev += n;
    }
    return total;
  }
  if (o.method === 'relora') {
    const lora = flopsPerToken(target, o.seqLen, { trainable: 0, frozen: L, pet: true, rank: o.loraRank, headTrains: true });
    return perStep * (o.reloraWarmStart * full + (o.steps - o.reloraWarmStart) * lora);
  }
  return o.steps * perStep * full; // vanilla, and methods that train every weight (GaLore: full-rank gradients)
}

/**
 * The steps that give `make(steps)` the training FLOPs `budget` (the nearest whole number found by
 * a few fixed-point iterations; a run's FLOPs grow almost linearly in its steps).
 */
export function stepsForFlops(budget: number, make: (steps: number) => TrainOptions, target: LlamaConfig, start: number): number {
  let steps = start;
  for (let i = 0; i < 8; i++) {
    const next = Math.max(1, Math.round(steps * budget / runFlops(make(steps), target)));
    if (next === steps) break;
    steps = next;
  }
  return steps;
}
