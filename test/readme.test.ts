import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { freshWebGPU } from './helpers/backends.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const readme = readFileSync(`${root}README.md`, 'utf8');

function blockAfter(marker: string, lang: string): string {
  const at = readme.indexOf(marker);
  assert.ok(at >= 0, `README has "${marker}"`);
  const start = readme.indexOf('```' + lang + '\n', at) + lang.length + 4;
  return readme.slice(start, readme.indexOf('```', start));
}

const expected = blockAfter('prints (on WebGPU', '');

for (const device of ['cpu', 'webgpu'] as const) {
  test(`README example: the code is examples/memory-basics.mjs and prints the stated bytes [${device}]`, async (t) => {
    assert.equal(blockAfter('## Example', 'js'), readFileSync(`${root}examples/memory-basics.mjs`, 'utf8'));
    if (device === 'webgpu') {
      const b = await freshWebGPU(t);
      if (!b) return;
      b.destroy();
    }
    const r = spawnSync(process.execPath, ['examples/memory-basics.mjs'], { cwd: root, encoding: 'utf8', env: { ...process.env, STEP_DEVICE: device } });
    assert.equal(r.status, 0, r.stderr);
    const out = device === 'webgpu' ? r.stdout.replaceAll(',"staging":65536', '') : r.stdout;
    assert.equal(out, expected);
  });
}
