/**
 * The models a comparison takes from a `step experiment` folder: OUT/runs/KIND-seedS/final, the
 * plain model each finished run hands over (adapters merged). Every problem is found before any
 * work starts and named with the folder and what to do: a missing experiment folder, a kind with no
 * run, a seed missing for a kind, a run without its final model.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { StepError } from '../../engine/errors.js';
import { FINAL_MARKER, finalModelDir } from '../train/final-model.js';

export interface ComparedModel {
  kind: string;
  seed: number;
  /** The run folder's name, KIND-seedS (also the name of its tuning run). */
  name: string;
  runDir: string;
  /** RUN/final: the model evaluated zero-shot and tuned. */
  finalDir: string;
  /** The training step final/ was written at (a rerun checks its cached results against it). */
  step: number;
}

/** The seeds of the KIND-seedS folders in `runsDir` (equal-tokens runs only: KIND-eqflops-seedS is another budget). */
export function seedsOfKind(runsDir: string, kind: string): number[] {
  const pattern = new RegExp(`^${kind.replace(/[-.]/g, '\\$&')}-seed(\\d+)$`);
  return readdirSync(runsDir).flatMap((entry) => {
    const m = pattern.exec(entry);
    return m ? [Number(m[1])] : [];
  }).sort((a, b) => a - b);
}

/** The models to compare, kind by kind and seed by seed (see the file's comment for the checks). */
export function findModels(experiment: string, kinds: readonly string[], seeds: readonly number[] | null): ComparedModel[] {
  const cmd = 'step experiment-tasks';
  if (!existsSync(experiment) || !statSync(experiment).isDirectory()) throw new StepError(`${cmd}: experiment folder ${experiment} does not exist; pass the folder step experiment --out wrote`);
  const runsDir = join(experiment, 'runs');
  if (!existsSync(runsDir)) throw new StepError(`${cmd}: ${experiment} has no runs/ folder; is it a folder step experiment --out wrote?`);
  const found = new Map(kinds.map((k) => [k, seedsOfKind(runsDir, k)]));
  for (const [kind, s] of found) {
    if (s.length === 0) throw new StepError(`${cmd}: ${runsDir} holds no run of kind ${kind} (folders ${kind}-seedS); train it with step experiment --out ${experiment} --runs vanilla,${kind}, or leave it out of --kinds`);
  }
  const chosen = seeds ?? finishedSeeds(runsDir, kinds[0]!, found.get(kinds[0]!)!);
  if (chosen.length === 0) throw new StepError(`${cmd}: no run of kind ${kinds[0]} in ${runsDir} has finished (none has final/); finish them with step experiment --out ${experiment}`);
  const models: ComparedModel[] = [];
  for (const kind of kinds) {
    for (const seed of chosen) {
      const name = `${kind}-seed${seed}`, runDir = join(runsDir, name);
      if (!found.get(kind)!.includes(seed)) throw new StepError(`${cmd}: ${runDir} does not exist (kind ${kind} has seeds ${found.get(kind)!.join(', ')}); give --seeds that every kind has`);
      const finalDir = finalModelDir(runDir);
      if (!finalDir) throw new StepError(`${cmd}: ${runDir} has no final model (final/ of its latest step): the run is unfinished; finish it with step experiment --out ${experiment} (it resumes), or leave seed ${seed} out of --seeds`);
      const step = (JSON.parse(readFileSync(join(finalDir, FINAL_MARKER), 'utf8')) as { step: number }).step;
      models.push({ kind, seed, name, runDir, finalDir, step });
    }
  }
  return models;
}

function finishedSeeds(runsDir: string, kind: string, seeds: readonly number[]): number[] {
  return seeds.filter((s) => finalModelDir(join(runsDir, `${kind}-seed${s}`)) !== null);
}
