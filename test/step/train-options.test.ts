/**
 * `step train` options: every numeric flag refuses bad values before anything is created, flags
 * the method would ignore are refused, names are plain, --set cannot replace the vocabulary, and
 * the resume contract (what --resume may change, --overwrite, the set of flags given).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StepError } from '../../engine/errors.js';
import { parseTrainArgs, RESUME_OVERRIDABLE, TRAIN_USAGE } from '../../step/train/options.js';
import type { TrainOptions } from '../../step/train/options.js';
import { MAX_VOCAB_SIZE, NUMBER_RULES, OPTION_FLAG } from '../../step/train/validate-options.js';

const CLI = new URL('../../step/cli.js', import.meta.url).pathname;

/** Asserts that the arguments are refused with one line that names `flag`. */
function refused(args: string[], flag: string, re?: RegExp): void {
  assert.throws(() => parseTrainArgs(args), (e: unknown) => {
    assert.ok(e instanceof StepError, `${args.join(' ')}: ${String(e)}`);
    const first = e.message.split('\n')[0]!;
    assert.ok(first.startsWith('step train: ') && first.includes(flag), `${args.join(' ')}: "${first}" should name ${flag}`);
    if (re) assert.match(e.message, re);
    return true;
  }, args.join(' '));
}

/** Bad values of every numeric flag (with the method that uses the flag, where one is needed). */
const BAD_VALUES: Record<string, { values: string[]; with?: string[] }> = {
  '--vocab-size': { values: ['259', '300.5', '-1', String(MAX_VOCAB_SIZE + 1), '1e9'] },
  '--seq-len': { values: ['0', '-1', '1.5', '100000'] },
  '--batch-size': { values: ['0', '-4', '2.5'] },
  '--grad-accum': { values: ['0', '1.5'] },
  '--steps': { values: ['0', '-1', '2.5'] },
  '--lr': { values: ['0', '-1e-3'] },
  '--min-lr-ratio': { values: ['-0.1', '1.5'] },
  '--warmup': { values: ['-1', '1.5', '600'] },
  '--weight-decay': { values: ['-5', '-0.01'] },
  '--beta1': { values: ['-0.1', '1', '1.5'] },
  '--beta2': { values: ['1', '-1'] },
  '--eps': { values: ['0', '-1'] },
  '--clip': { values: ['-1'] },
  '--eval-every': { values: ['-1', '0.5'] },
  '--eval-batches': { values: ['0', '-2'] },
  '--checkpoint-every': { values: ['-1', '2.5'] },
  '--log-every': { values: ['0'] },
  '--seed': { values: ['-1', '1.5', String(2 ** 40)] },
  '--stages': { values: ['0', '-2', '5'], with: ['--method', 'step'] },
  '--lora-rank': { values: ['0', '-8', '2.5', '65'], with: ['--method', 'step'] },
  '--lora-alpha': { values: ['-16', '0'], with: ['--method', 'step'] },
  '--lora-dropout': { values: ['-0.1', '1'], with: ['--method', 'step'] },
  '--stage-relora-every': { values: ['-1', '0.5'], with: ['--method', 'step'] },
  '--stage-warmup': { values: ['-1'], with: ['--method', 'step'] },
  '--relora-every': { values: ['0', '-10'], with: ['--method', 'relora'] },
  '--relora-warm-start': { values: ['-1', '600'], with: ['--method', 'relora'] },
  '--stop-after': { values: ['0', '-1'] },
  '--galore-rank': { values: ['0', '-1', '1.5', '65'], with: ['--method', 'galore'] },
  '--galore-update-gap': { values: ['0', '-3', '2.5'], with: ['--method', 'galore'] },
  '--galore-scale': { values: ['0', '-0.25'], with: ['--method', 'galore'] },
  '--split': { values: ['0,4', '2,x', '3,3', ',', '2,,2'], with: ['--method', 'step'] },
  '--stage-tokens': { values: ['0', '-5,5', 'a'], with: ['--method', 'step'] },
};

test('train options: every numeric flag refuses bad values, naming the flag (table over all flags)', () => {
  const numeric = [...Object.keys(NUMBER_RULES).map((k) => OPTION_FLAG[k as keyof TrainOptions]), '--split', '--stage-tokens'];
  assert.deepEqual(numeric.filter((f) => !(f in BAD_VALUES)), [], 'every numeric flag has bad values in the table');
  for (const [flag, { values, with: extra = [] }] of Object.entries(BAD_VALUES)) {
    for (const v of [...values, 'NaN', 'Infinity', 'ten']) {
      refused([...extra, flag, v], flag);
      refused([...extra, `${flag}=${v}`], flag);
    }
  }
  // the cases, with the reason in the message
  refused(['--eps', '0'], '--eps', /--eps must be a number > 0, got "0"/);
  refused(['--method', 'step', '--lora-alpha', '-16'], '--lora-alpha', /must be a number > 0, got "-16"/);
  refused(['--weight-decay', '-5'], '--weight-decay', /must be a number >= 0/);
  refused(['--clip', '-1'], '--clip', /0 turns gradient clipping off/);
});

test('train options: good values pass, and --flag=value equals --flag value', () => {
  const a = parseTrainArgs(['--method', 'step', '--steps', '50', '--warmup', '5', '--eps', '1e-6', '--lora-alpha', '4', '--clip', '0', '--set', 'num_hidden_layers=2']);
  const b = parseTrainArgs(['--method=step', '--steps=50', '--warmup=5', '--eps=1e-6', '--lora-alpha=4', '--clip=0', '--set=num_hidden_layers=2']);
  assert.deepEqual(a, b);
  assert.equal(a.options.eps, 1e-6);
  assert.deepEqual(a.options.configOverrides, { num_hidden_layers: 2 });
});

test('train options: the sequence length must fit the model context, after --set', () => {
  refused(['--seq-len', '100000'], '--seq-len', /max_position_embeddings is 128 \(preset tiny\); use a shorter --seq-len or --set max_position_embeddings=100000/);
  refused(['--seq-len', '256', '--set', 'max_position_embeddings=200'], '--seq-len', /max_position_embeddings is 200 \(preset tiny with --set\)/);
  assert.equal(parseTrainArgs(['--seq-len', '256', '--set', 'max_position_embeddings=256']).options.seqLen, 256);
  refused(['--vocab-size', '1e9'], '--vocab-size', /at most 1,048,576/);
});

test('train options: flags the method would ignore are refused, naming them', () => {
  for (const f of ['--stages 3', '--split 2,2', '--stage-tokens 1024,1024', '--stage-warmup 5', '--stage-relora-every 10', '--lora-rank 4', '--lora-alpha 8', '--lora-dropout 0.1', '--relora-every 10', '--relora-warm-start 5']) {
    const [flag, v] = f.split(' ') as [string, string];
    refused([flag, v], flag, /no effect with --method vanilla/);
    refused(['--method', 'vanilla', `${flag}=${v}`], flag, /no effect with --method vanilla/);
  }
  refused(['--lora-rank', '4', '--stages', '3'], '--stages, --lora-rank', /have no effect/);
  for (const f of ['--stages 2', '--split 2,2', '--stage-tokens 1024,1024', '--stage-relora-every 10']) {
    const [flag, v] = f.split(' ') as [string, string];
    refused(['--method', 'relora', flag, v], flag, /STEP's and has no effect with --method relora/);
  }
  for (const f of ['--relora-every 10', '--relora-warm-start 5']) {
    const [flag, v] = f.split(' ') as [string, string];
    refused(['--method', 'step', flag, v], flag, /ReLoRA's and has no effect with --method step/);
  }
  // what each method does use is accepted
  parseTrainArgs(['--method', 'relora', '--lora-rank', '4', '--lora-alpha', '8', '--stage-warmup', '5', '--relora-every', '50']);
  parseTrainArgs(['--method', 'step', '--stages', '2', '--lora-rank', '4', '--stage-relora-every', '10']);
  // --stages and --split must agree; --split alone sets the stages
  refused(['--method', 'step', '--stages', '3', '--split', '2,2'], '--stages 3', /--split 2,2 has 2 stages; give one of them/);
  assert.equal(parseTrainArgs(['--method', 'step', '--stages', '2', '--split', '1,3']).options.stages, 2);
  assert.equal(parseTrainArgs(['--method', 'step', '--split', '1,1,2']).options.stages, 3);
  refused(['--method', 'step', '--stages', '3', '--stage-tokens', '1024,1024'], '--stages 3');
  refused(['--method', 'step', '--steps', '10', '--stage-tokens', '1024,1024'], '--steps 10', /--stage-tokens makes the run 2 steps/);
});

test('train options: --set takes LlamaConfig keys only, and never vocab_size', () => {
  refused(['--set', 'vocab_size=5000'], '--set vocab_size', /the vocabulary comes from the tokenizer; use --vocab-size N/);
  refused(['--set', 'hiden_size=64'], '--set hiden_size', /unknown LlamaConfig key \(did you mean hidden_size\?\)/);
  refused(['--set', 'architectures=x'], '--set architectures');
  refused(['--set', 'banana=1'], '--set banana', /keys: hidden_size/);
  refused(['--set', 'hidden_size=abc'], '--set', /hidden_size/);
  refused(['--set', 'hidden_size'], '--set', /expects KEY=VALUE/);
  refused(['--set', 'num_hidden_layers=2', '--set', 'num_hidden_layers=3'], '--set num_hidden_layers', /given twice/);
});

test('train options: --name and --resume are plain folder names', () => {
  for (const bad of ['.', '..', 'a/b', '../x', 'a\\b', '/abs', '.hidden', '-x', 'a b', 'x'.repeat(129)]) {
    refused(['--name', bad], '--name');
    refused([`--name=${bad}`], '--name');
    refused(['--resume', bad], '--resume');
  }
  refused(['--name='], '--name', /needs a value/);
  refused(['--resume='], '--resume', /needs a value/);
  for (const good of ['run-1', 'a.b_c', 'X9']) assert.equal(parseTrainArgs(['--name', good]).options.name, good);
});

test('train options: the resume contract (given, --overwrite, what --resume may change)', () => {
  const fresh = parseTrainArgs(['--name', 'r', '--steps=50', '--warmup', '5', '--set', 'num_hidden_layers=2', '--overwrite']);
  assert.equal(fresh.overwrite, true);
  assert.equal(fresh.resume, null);
  assert.deepEqual([...fresh.given].sort(), ['configOverrides', 'name', 'steps', 'warmupSteps']);
  assert.deepEqual([...parseTrainArgs([]).given], []);
  assert.equal(parseTrainArgs([]).overwrite, false);

  const resumed = parseTrainArgs(['--resume', 'r', '--steps', '2000', '--lr', '1e-3', '--device', 'cpu', '--runs-dir', 'elsewhere']);
  assert.equal(resumed.resume, 'r');
  assert.deepEqual([...resumed.given].sort(), ['device', 'lr', 'runsDir', 'steps']);
  assert.equal(resumed.options.steps, 2000);
  // checked against the saved run by the trainer, not against the defaults (600 steps)
  assert.equal(parseTrainArgs(['--resume', 'r', '--warmup', '700']).options.warmupSteps, 700);
  refused(['--resume', 'r', '--clip', '-1'], '--clip');

  assert.deepEqual([...RESUME_OVERRIDABLE].map((k) => OPTION_FLAG[k]).sort(),
    ['--checkpoint-activations', '--checkpoint-every', '--clip', '--device', '--eval-batches', '--eval-every', '--log-every', '--lr', '--min-lr-ratio', '--steps', '--stop-after', '--warmup', '--weight-decay']);
  for (const k of RESUME_OVERRIDABLE) assert.ok(TRAIN_USAGE.includes(OPTION_FLAG[k]), `TRAIN_USAGE names ${OPTION_FLAG[k]}`);
  for (const args of [['--method', 'step'], ['--preset', 'small'], ['--set', 'num_hidden_layers=2'], ['--name', 'x'], ['--batch-size', '8'], ['--seq-len', '32'], ['--data', 'brown'], ['--seed', '3'], ['--vocab-size', '512']]) {
    refused(['--resume', 'r', ...args], args[0]!, /cannot be changed with --resume .*flags allowed with --resume: --steps, --lr/);
  }
  refused(['--resume', 'r', '--overwrite'], '--overwrite', /--resume continues the run, --overwrite starts it afresh/);
});

test('train options: --help is not an error', () => {
  assert.equal(parseTrainArgs(['--help']).help, true);
  assert.equal(parseTrainArgs(['--steps', '5', '-h']).help, true);
});

test('step train: a bad option is refused before the run folder is created', () => {
  const dir = mkdtempSync(join(tmpdir(), 'step-opts-'));
  try {
    for (const bad of [['--eps', '-1'], ['--weight-decay', '-5'], ['--beta2', '1'], ['--method', 'step', '--lora-alpha', '-16']]) {
      const runs = join(dir, 'runs');
      const r = spawnSync(process.execPath, [CLI, 'train', '--runs-dir', runs, '--name', 'r', '--data', join(dir, 'missing-corpus'), '--device', 'cpu', ...bad], { encoding: 'utf8' });
      assert.notEqual(r.status, 0, bad.join(' '));
      assert.match(r.stderr, new RegExp(`^step train: ${bad.at(-2)} must be`), bad.join(' '));
      assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
      assert.ok(!existsSync(runs), `${bad.join(' ')}: nothing created`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
