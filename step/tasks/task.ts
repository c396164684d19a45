/**
 * The three kinds of task `step eval-tasks` runs, as lm-evaluation-harness names their output types:
 * multiple choice (log-likelihood of each choice), cloze (log-likelihood and greediness of one target),
 * and instruction tasks answered by greedy generation. Built-in tasks record the document each
 * example comes from (`source`), so a test can prove it is held out from training.
 */

/** Pick the right continuation of `context` among `choices`. */
export interface ChoiceExample {
  context: string;
  choices: string[];
  /** Index of the right choice. */
  gold: number;
  /** Text between the context and each choice (default " ", the harness's target_delimiter). */
  delimiter?: string;
  source?: string;
}

/** Predict `target` after `context` (LAMBADA-style: accuracy = target is the greedy continuation). */
export interface ClozeExample {
  context: string;
  target: string;
  /** Text between the context and the target (default " "). */
  delimiter?: string;
  source?: string;
}

/** An instruction with a real answer, rendered with the prompt template of `step sft`. */
export interface GenerationExample {
  instruction: string;
  input?: string;
  output: string;
  source?: string;
}

export type Task =
  | { name: string; kind: 'choice'; examples: ChoiceExample[]; note?: string }
  | { name: string; kind: 'cloze'; examples: ClozeExample[]; note?: string }
  | { name: string; kind: 'generation'; examples: GenerationExample[]; note?: string };

export type TaskKind = Task['kind'];
export type GenerationTask = Extract<Task, { kind: 'generation' }>;

export const DEFAULT_DELIMITER = ' ';
