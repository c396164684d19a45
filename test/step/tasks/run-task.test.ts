/**
 * Metrics and task runs on fake scorers and generators: a scorer that puts all mass on the gold
 * choice scores 100%, one that prefers a wrong choice 0%; length normalisation as the harness's
 * acc_norm; the harness's stderr; exact match and per-token accuracy on hand-made outputs.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { renderPrompt } from '../../../step/instruct/template.js';
import type { LogLikelihood, LogLikelihoodRequest } from '../../../step/tasks/loglikelihood.js';
import { choiceCorrect, generationScores, meanWithStderr } from '../../../step/tasks/metrics.js';
import { encodeInstructionPrompt, encodePair, runTask, type GreedyGenerator, type TaskTokenizer } from '../../../step/tasks/run-task.js';
import type { Task } from '../../../step/tasks/task.js';

/** A character-level tokenizer: id = char code + 1; 0 is end-of-text. */
const TOK: TaskTokenizer = {
  encode: (t) => [...t].map((c) => c.charCodeAt(0) + 1),
  decode: (ids) => ids.map((i) => String.fromCharCode(i - 1)).join(''),
  eot: 0,
};
const text = (ids: readonly number[]) => TOK.decode(ids);
const noGenerator: GreedyGenerator = async () => { throw new Error('not used'); };

/** A fake model: log-likelihood 0 (probability 1) for continuations `favours` accepts, -50 per character otherwise. */
function fakeScorer(favours: (context: string, continuation: string) => boolean) {
  const seen: LogLikelihoodRequest[] = [];
  const scorer = async (requests: readonly LogLikelihoodRequest[]): Promise<LogLikelihood[]> => {
    seen.push(...requests);
    return requests.map((r) => {
      const ok = favours(text(r.context.slice(1)), text(r.continuation));
      return { logLikelihood: ok ? 0 : -50 * r.continuation.length, isGreedy: ok };
    });
  };
  return { scorer, seen };
}

const CHOICE: Task = {
  name: 'mc', kind: 'choice', examples: [
    { context: 'The sky is', choices: ['blue', 'green', 'loud'], gold: 0 },
    { context: 'Two and two make', choices: ['five', 'four'], gold: 1 },
    { context: 'Paris is in', choices: ['Spain', 'Italy', 'France'], gold: 2, delimiter: ': ' },
  ],
};
const GOLD = new Map(CHOICE.examples.map((e) => [e.context, (e.delimiter ?? ' ') + e.choices[e.gold]!]));

test('a scorer that puts all mass on the gold choice scores 100%; one that prefers another choice 0%', async () => {
  const gold = fakeScorer((c, x) => GOLD.get(c) === x);
  const r = await runTask(CHOICE, { tokenizer: TOK, scorer: gold.scorer, generator: noGenerator, maxContext: 64, template: 'alpaca' });
  assert.deepEqual(r.rows.map((x) => [x.metric, x.value, x.n]), [['acc', 1, 3], ['acc_norm', 1, 3]]);
  assert.equal(r.rows[0]!.stderr, 0);
  assert.equal(gold.seen.length, 8, 'one request per choice');
  assert.equal(text(gold.seen[7]!.continuation), ': France', 'the delimiter starts the continuation');
  assert.equal(gold.seen[0]!.context[0], TOK.eot, 'contexts start with end-of-text');
  const wrong = fakeScorer((c, x) => GOLD.has(c) && GOLD.get(c) !== x);
  const w = await runTask(CHOICE, { tokenizer: TOK, scorer: wrong.scorer, generator: noGenerator, maxContext: 64, template: 'alpaca', limit: 2 });
  assert.deepEqual(w.rows.map((x) => [x.metric, x.value, x.n]), [['acc', 0, 2], ['acc_norm', 0, 2]]);
});

test('acc_norm divides by the choice length in characters: a long likely choice beats a short one only after normalising', () => {
  // sums: "a" -3, "abcdefgh" -8 -> acc picks "a"; per character: -3 vs -1 -> acc_norm picks the long one
  assert.deepEqual(choiceCorrect([-3, -8], ['a', 'abcdefgh'], 1), { acc: 0, accNorm: 1 });
  assert.deepEqual(choiceCorrect([-3, -8], ['a', 'abcdefgh'], 0), { acc: 1, accNorm: 0 });
});

test('stderr is the harness\'s: sqrt(p(1-p)/(n-1)) for an accuracy, sample sd / sqrt(n) in general', () => {
  const acc = [1, 1, 1, 0, 0, 1, 0, 1, 1, 1];
  const p = 0.7;
  const { mean, stderr } = meanWithStderr(acc);
  assert.equal(mean, p);
  assert.ok(Math.abs(stderr - Math.sqrt(p * (1 - p) / 9)) < 1e-15);
  const x = [0.5, 0.25, 1];
  const sd = Math.sqrt(((0.5 - 7 / 12) ** 2 + (0.25 - 7 / 12) ** 2 + (1 - 7 / 12) ** 2) / 2);
  assert.ok(Math.abs(meanWithStderr(x).stderr - sd / Math.sqrt(3)) < 1e-15);
  assert.ok(Number.isNaN(meanWithStderr([1]).stderr));
});

test('encodePair moves the context\'s trailing whitespace into the continuation, as the harness does', () => {
  const r = encodePair(TOK, 'Question: 2+2=  ', ' 4');
  assert.equal(text(r.context.slice(1)), 'Question: 2+2=');
  assert.equal(text(r.continuation), '   4');
});

test('cloze: acc counts greedy targets, perplexity is exp(-mean log-likelihood)', async () => {
  const task: Task = { name: 'cloze', kind: 'cloze', examples: [{ context: 'a b', target: 'c' }, { context: 'x y', target: 'zz' }] };
  const { scorer } = fakeScorer((c) => c === 'a b');
  const r = await runTask(task, { tokenizer: TOK, scorer, generator: noGenerator, maxContext: 64, template: 'alpaca' });
  assert.deepEqual(r.rows[0], { task: 'cloze', metric: 'acc', value: 0.5, stderr: Math.sqrt(0.5 * 0.5 / (2 - 1)), n: 2 });
  // log-likelihoods 0 and -150 (" zz" is 3 characters): perplexity exp(75)
  assert.equal(r.rows[1]!.metric, 'perplexity');
  assert.ok(Math.abs(Math.log(r.rows[1]!.value) - 75) < 1e-9);
});

test('generation scores: exact match and per-token accuracy on hand-made outputs', () => {
  assert.deepEqual(generationScores('at nn vbd .', 'at nn vbd .'), { exactMatch: 1, itemAccuracy: 1 });
  assert.deepEqual(generationScores('  at  nn vbd . ', 'at nn vbd .'), { exactMatch: 1, itemAccuracy: 1 }, 'whitespace is normalised');
  assert.deepEqual(generationScores('at jj vbd .', 'at nn vbd .'), { exactMatch: 0, itemAccuracy: 0.75 });
  assert.deepEqual(generationScores('at nn', 'at nn vbd .'), { exactMatch: 0, itemAccuracy: 0.5 }, 'missing tokens are wrong');
  assert.deepEqual(generationScores('at nn vbd . . .', 'at nn vbd .'), { exactMatch: 0, itemAccuracy: 4 / 6 }, 'extra tokens count against');
  assert.deepEqual(generationScores('', 'nn'), { exactMatch: 0, itemAccuracy: 0 });
});

test('generation task: the prompt is the template\'s text; outputs stop at end-of-text; too-long examples are skipped and counted', async () => {
  const task: Task = {
    name: 'gen', kind: 'generation', examples: [
      { instruction: 'Tag it', input: 'the dog', output: 'at nn' },
      { instruction: 'Tag it', input: 'a cat', output: 'at nn' },
      { instruction: 'Tag it', input: 'x'.repeat(200), output: 'nn' },
    ],
  };
  const prompts: string[] = [];
  const answers = new Map([['the dog', 'at nn'], ['a cat', 'at jj']]);
  const generator: GreedyGenerator = async (requests) => requests.map(({ prompt, maxNewTokens }) => {
    prompts.push(text(prompt));
    const input = /### Input:\n(.*)\n/.exec(text(prompt))![1]!;
    const out = [...TOK.encode(answers.get(input)!), TOK.eot, ...TOK.encode(' junk')];
    return out.slice(0, maxNewTokens);
  });
  const { scorer } = fakeScorer(() => true);
  const r = await runTask(task, { tokenizer: TOK, scorer, generator, maxContext: 120, template: 'compact' });
  assert.deepEqual(prompts[0], renderPrompt({ instruction: 'Tag it', input: 'the dog' }, 'compact'));
  assert.deepEqual(encodeInstructionPrompt(TOK, task.examples[0]!, 'compact'), TOK.encode(prompts[0]!), 'no end-of-text before the prompt, as step sft');
  assert.deepEqual(r.rows.map((x) => [x.metric, x.value, x.n]), [['exact_match', 0.5, 2], ['token_acc', 0.75, 2]]);
  assert.match(r.notes[0]!, /gen: skipped 1 examples whose prompt and answer exceed the model's context of 120 tokens/);
});

test('an example whose choice or target alone is longer than the context is skipped and counted, not cut', async () => {
  const { scorer, seen } = fakeScorer((c, x) => GOLD.get(c) === x);
  // the longest choices: " green" 6 tokens (fits), ": France" 8 (does not)
  const r = await runTask(CHOICE, { tokenizer: TOK, scorer, generator: noGenerator, maxContext: 6, template: 'alpaca' });
  assert.deepEqual(r.rows.map((x) => [x.metric, x.value, x.n]), [['acc', 1, 2], ['acc_norm', 1, 2]]);
  assert.deepEqual(r.notes, ['mc: skipped 1 examples where a choice alone is longer than the model\'s context of 6 tokens']);
  assert.equal(seen.length, 5);
  const cloze: Task = { name: 'cz', kind: 'cloze', examples: [{ context: 'a', target: 'bbbbbbbbbb' }, { context: 'a', target: 'b' }] };
  const c = await runTask(cloze, { tokenizer: TOK, scorer, generator: noGenerator, maxContext: 6, template: 'alpaca' });
  assert.equal(c.rows[0]!.n, 1);
  assert.match(c.notes[0]!, /cz: skipped 1 examples where the target alone is longer/);
});
