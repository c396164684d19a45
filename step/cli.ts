#!/usr/bin/env node
import { describeFailure } from './cli-errors.js';
import { evalCommand } from './commands/eval.js';
import { evalTasksCommand } from './commands/eval-tasks.js';
import { experiment } from './commands/experiment.js';
import { experimentTasks } from './commands/experiment-tasks.js';
import { generateCommand } from './commands/generate.js';
import { gradsCommand } from './commands/grads.js';
import { info } from './commands/info.js';
import { memoryCommand } from './commands/memory.js';
import { plan } from './commands/plan.js';
import { presets } from './commands/presets.js';
import { report } from './commands/report.js';
import { sftCommand } from './commands/sft.js';
import { train } from './commands/train.js';

const COMMANDS: Record<string, { run: (args: string[]) => Promise<number>; help: string }> = {
  info: { run: info, help: 'print the WebGPU adapter, its limits and features' },
  plan: { run: plan, help: 'STEP stage sizes and model-state bytes per stage (the integer programme)' },
  memory: { run: memoryCommand, help: 'measured peak memory per category of real training steps through every STEP stage and transition, beside the planner' },
  presets: { run: presets, help: 'list the model presets with their parameter counts' },
  eval: { run: evalCommand, help: 'validation loss and perplexity of a checkpoint (and the unigram baseline); --json' },
  'eval-tasks': { run: evalTasksCommand, help: 'downstream tasks: multiple choice, cloze, instruction (greedy); accuracy with stderr; --write-sft' },
  grads: { run: gradsCommand, help: 'loss and every parameter gradient for a token batch, as safetensors with HF names' },
  generate: { run: generateCommand, help: 'continue a prompt with a checkpoint (greedy or sampled: temperature, top-k, top-p, seed)' },
  report: { run: report, help: 'one HTML page comparing runs: loss curves, memory per stage, STEP planner table, configs' },
  experiment: { run: experiment, help: 'vanilla vs STEP (2 and 3 stages) vs ReLoRA vs GaLore at equal tokens on Brown, then the report (~15 min)' },
  'experiment-tasks': { run: experimentTasks, help: 'the experiment\'s vanilla and STEP models on downstream tasks, zero-shot and after identical instruction tuning' },
  sft: { run: sftCommand, help: 'instruction tuning of a checkpoint on Alpaca records (full or --lora-rank R), response-only loss' },
  train: { run: train, help: 'train a model (default: the tiny preset on the Brown corpus); --method vanilla|step|relora|galore' },
};

function usage(): string {
  return ['usage: step <command> [options]      (step <command> --help: the command\'s options)', '', 'commands:',
    ...Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(10)} ${c.help}`),
    '', 'options take --flag value or --flag=value',
    'environment: STEP_DEVICE=webgpu|cpu|auto selects the device (default auto)'].join('\n');
}

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (!cmd || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    // `step help train` is `step train --help`
    if (cmd === 'help' && rest[0] && COMMANDS[rest[0]]) return COMMANDS[rest[0]]!.run(['--help']);
    process.stdout.write(usage() + '\n');
    return cmd ? 0 : 2;
  }
  const command = Object.prototype.hasOwnProperty.call(COMMANDS, cmd) ? COMMANDS[cmd] : undefined;
  if (!command) {
    process.stderr.write(`step: unknown command "${cmd}"\n\n${usage()}\n`);
    return 2;
  }
  return command.run(rest);
}

main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (e: unknown) => {
    const failure = describeFailure(e);
    process.stderr.write(failure.text);
    process.exitCode = failure.exitCode;
  },
);
