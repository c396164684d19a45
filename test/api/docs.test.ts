import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const repo = fileURLToPath(new URL('../../../', import.meta.url));
const load = (script: string) => import(pathToFileURL(join(repo, 'scripts', script)).href);

test('docs/api is what `npm run docs:api` generates from the current sources', async () => {
  const { stalePages } = await load('api-docs.mjs') as { stalePages: () => string[] };
  assert.deepEqual(stalePages(), [], 'docs/api is stale: run `npm run docs:api` and commit docs/api/');
});

test('every relative link in README.md and docs/**/*.md resolves to a file and heading', async () => {
  const { brokenLinks } = await load('check-links.mjs') as { brokenLinks: () => { file: string; line: number; link: string; why: string }[] };
  const broken = brokenLinks().map((b) => `${b.file}:${b.line}: ${b.link} (${b.why})`);
  assert.deepEqual(broken, []);
});

test('the link checker finds a missing file, a missing anchor, and accepts good links', async () => {
  const { anchorsOf } = await load('check-links.mjs') as { anchorsOf: (text: string) => Set<string> };
  const anchors = anchorsOf('# API reference\n\n## engine/creation.ts\n\n### zeros\n\n```\n# not a heading\n```\n### zeros\n');
  assert.deepEqual([...anchors].sort(), ['api-reference', 'enginecreationts', 'zeros', 'zeros-1']);
});

test('the README links the API reference', () => {
  assert.ok(/\]\(docs\/api\/README\.md\)/.test(readFileSync(join(repo, 'README.md'), 'utf8')), 'README.md has no link to docs/api/README.md');
});
