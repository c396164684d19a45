/**
 * The prompt templates of instruction tuning (`step sft`) and of instruction tasks
 * (`step eval-tasks`): one place, so that a model is evaluated with exactly the text it was tuned on.
 *
 * 'alpaca' is Stanford Alpaca's template, word for word (the paper tunes on Alpaca). 'compact'
 * drops Alpaca's one-sentence preamble (about 30 tokens), which matters for models whose context
 * is 64-256 tokens; the section markers are the same. The response is followed by the
 * end-of-text token, which the model learns to emit (it ends greedy generation).
 */

export type TemplateName = 'alpaca' | 'compact';
export const TEMPLATE_NAMES: readonly TemplateName[] = ['alpaca', 'compact'];

/** One Alpaca record: `input` is optional context ("" or absent when there is none). */
export interface InstructionRecord {
  instruction: string;
  input?: string;
  output: string;
}

const ALPACA_WITH_INPUT = 'Below is an instruction that describes a task, paired with an input that provides further context. Write a response that appropriately completes the request.\n\n';
const ALPACA_NO_INPUT = 'Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n';

/**
 * The prompt text: everything before the response (ends with "### Response:\n"). The loss of
 * `step sft` counts only the tokens after it (the response and its end-of-text token).
 */
export function renderPrompt(record: Pick<InstructionRecord, 'instruction' | 'input'>, template: TemplateName = 'alpaca'): string {
  const hasInput = record.input !== undefined && record.input !== '';
  const preamble = template === 'alpaca' ? (hasInput ? ALPACA_WITH_INPUT : ALPACA_NO_INPUT) : '';
  const input = hasInput ? `### Input:\n${record.input}\n\n` : '';
  return `${preamble}### Instruction:\n${record.instruction}\n\n${input}### Response:\n`;
}
