/** Small, fast training runs for the run-folder, resume and checkpoint tests. */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_TRAIN_OPTIONS } from '../../step/train/options.js';
import type { TrainOptions } from '../../step/train/options.js';
import { tinyCorpus } from '../helpers/corpus.js';

export const CLI = new URL('../../step/cli.js', import.meta.url).pathname;
export const DATA = tinyCorpus();

/** A two-layer model of hidden size 32 on the tiny corpus, on the cpu: a step takes milliseconds. */
export function runOptions(over: Partial<TrainOptions> = {}): TrainOptions {
  return {
    ...DEFAULT_TRAIN_OPTIONS, runsDir: mkdtempSync(join(tmpdir(), 'step-runs-')), data: DATA, vocabSize: 300, seqLen: 16, batchSize: 4,
    steps: 12, warmupSteps: 2, evalEvery: 0, evalBatches: 2, checkpointEvery: 4, device: 'cpu', name: 'r',
    configOverrides: { hidden_size: 32, intermediate_size: 48, num_hidden_layers: 2, num_attention_heads: 2, num_key_value_heads: 2, max_position_embeddings: 64 },
    ...over,
  };
}

/** The same run as command-line arguments of `step train`. */
export function cliArgs(o: TrainOptions): string[] {
  return ['train', '--name', o.name, '--runs-dir', o.runsDir, '--data', o.data, '--vocab-size', String(o.vocabSize), '--seq-len', String(o.seqLen),
    '--batch-size', String(o.batchSize), '--steps', String(o.steps), '--warmup', String(o.warmupSteps), '--eval-every', String(o.evalEvery),
    '--eval-batches', String(o.evalBatches), '--checkpoint-every', String(o.checkpointEvery), '--device', o.device,
    ...Object.entries(o.configOverrides).flatMap(([k, v]) => ['--set', `${k}=${String(v)}`])];
}

export type LogEvent = Record<string, unknown> & { event: string };

export function events(runDir: string, kind?: string): LogEvent[] {
  const all = readFileSync(join(runDir, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as LogEvent);
  return kind ? all.filter((e) => e.event === kind) : all;
}

/** Runs `fn` with process.stdout captured; returns its result and what it printed. */
export async function captureStdout<T>(fn: () => Promise<T>): Promise<{ value: T; out: string }> {
  const write = process.stdout.write.bind(process.stdout);
  let out = '';
  process.stdout.write = ((chunk: string | Uint8Array) => { out += chunk.toString(); return true; }) as typeof process.stdout.write;
  try {
    return { value: await fn(), out };
  } finally {
    process.stdout.write = write;
  }
}

/** A child process running the CLI, with its output so far and a promise of its end. */
export interface CliChild {
  pid: number;
  output: () => string;
  waitFor: (re: RegExp, timeoutMs?: number) => Promise<void>;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  kill: (signal: NodeJS.Signals) => void;
}

export function spawnCli(args: string[]): CliChild {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr.on('data', (d: Buffer) => { out += d.toString(); });
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  let ended = false;
  void exit.then(() => { ended = true; });
  return {
    pid: child.pid!, output: () => out, exit, kill: (s) => child.kill(s),
    waitFor: async (re, timeoutMs = 60_000) => {
      const t0 = Date.now();
      while (!re.test(out)) {
        if (ended) throw new Error(`the child ended before printing ${re}: ${out}`);
        if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${re}: ${out}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
  };
}
