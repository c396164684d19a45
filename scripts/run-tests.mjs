// Runs every compiled test file under dist/test with node's test runner (TAP-like summary at the end).
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';

function find(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...find(p));
    else if (name.endsWith('.test.js')) out.push(p);
  }
  return out.sort();
}

const filter = process.argv.slice(2);
const files = find('dist/test').filter((f) => filter.length === 0 || filter.some((x) => f.includes(x)));
if (files.length === 0) {
  console.error('run-tests: no test files found under dist/test (did the build run?)');
  process.exit(1);
}
// Dawn warns when XDG_RUNTIME_DIR is unset; give it a private temp dir.
const env = { ...process.env, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? mkdtempSync(join(tmpdir(), 'xdg-')) };
// every test process seeds fast-check once (scripts/test-setup.mjs)
const setup = new URL('./test-setup.mjs', import.meta.url).href;
env.NODE_OPTIONS = `${process.env.NODE_OPTIONS ?? ''} --import=${setup}`.trim();
const r = spawnSync(process.execPath, ['--test', `--test-reporter=${process.stdout.isTTY ? 'spec' : 'tap'}`, '--test-concurrency=1', ...files], { stdio: 'inherit', env });
process.exit(r.status ?? 1);
