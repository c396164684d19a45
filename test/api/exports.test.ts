import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const pinned = JSON.parse(readFileSync(`${root}test/api/exports.json`, 'utf8')) as Record<string, string[]>;
const pkg = JSON.parse(readFileSync(`${root}package.json`, 'utf8')) as { name: string; exports: Record<string, unknown> };
/** Imports an entry point by its package name, as a user does (a variable: tsc must not resolve it to dist/). */
const load = (name: string) => import(name) as Promise<Record<string, unknown>>;
const entryPoints = Object.keys(pkg.exports).filter((k) => k !== './package.json').map((k) => (k === '.' ? pkg.name : `${pkg.name}/${k.slice(2)}`));

test('every package.json entry point has a pinned export list, and nothing else is pinned', () => {
  assert.deepEqual([...entryPoints].sort(), Object.keys(pinned).sort());
});

for (const name of entryPoints) {
  test(`${name} exports exactly the pinned names (test/api/exports.json)`, async () => {
    const actual = Object.keys(await load(name)).sort();
    const expected = pinned[name] ?? [];
    const added = actual.filter((n) => !expected.includes(n));
    const removed = expected.filter((n) => !actual.includes(n));
    assert.ok(added.length === 0 && removed.length === 0,
      `${name}: the public surface changed.\n  new exports:     ${added.join(', ') || '-'}\n  missing exports: ${removed.join(', ') || '-'}\n` +
      'If intended, run `npm run build && node scripts/api-docs.mjs --pin && npm run docs:api` and commit test/api/exports.json and docs/api/.');
  });
}

test('the root exports no raw kernel and no engine internal', async () => {
  const rootNames = new Set(Object.keys(await load(pkg.name)));
  for (const internal of ['accessOf', 'wgslType', 'packUniforms', 'grid1D', 'runKernel', 'registerKernel', 'adoptByOutermostScope', 'sumToShape',
    'softmaxBackward', 'rmsNormBackward', 'ropeBackward', 'swigluBackward', 'crossEntropyBackward', 'scatterAddRows', 'addScaledInPlace', 'kernels']) {
    assert.ok(!rootNames.has(internal), `step-webgpu exports ${internal}`);
  }
});

test('the raw kernels and the root ops are different functions: the root\'s record gradients', async () => {
  const rootOps = await load(pkg.name);
  const kernels = await load(`${pkg.name}/kernels`);
  for (const op of rootOps.DIFFERENTIABLE_OPS as string[]) {
    if (op in kernels) assert.notEqual(rootOps[op], kernels[op], `${op}: the root exports the raw kernel`);
  }
});
