import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StepError } from '../../index.js';
import { cacheDirFor, cpuHasAvx512, parseVectorWidth, planVectorWidth } from '../../engine/webgpu/vector-width.js';
import { freshWebGPU } from '../helpers/backends.js';

const ENGINE = new URL('../../engine/index.js', import.meta.url).href;

test('llvmpipe vector width: 512 with its own shader cache unless the user chose, opted out, or the CPU lacks AVX-512', () => {
  const env = { XDG_CACHE_HOME: '/c' };
  assert.deepEqual(planVectorWidth(env, undefined, true), {
    decision: { width: 512, reason: 'step', cacheDir: '/c/step-webgpu/mesa-lp512' },
    set: { LP_NATIVE_VECTOR_WIDTH: '512', MESA_SHADER_CACHE_DIR: '/c/step-webgpu/mesa-lp512' },
  });
  // The user's own width wins, and nothing is touched.
  assert.deepEqual(planVectorWidth({ ...env, LP_NATIVE_VECTOR_WIDTH: '256' }, 512, true), { decision: { width: 256, reason: 'user' }, set: {} });
  // The user's own cache folder is kept.
  assert.deepEqual(planVectorWidth({ MESA_SHADER_CACHE_DIR: '/mine' }, undefined, true).set, { LP_NATIVE_VECTOR_WIDTH: '512' });
  // Opt-outs: the environment variable or the option; the option wins over the variable.
  assert.deepEqual(planVectorWidth({ ...env, STEP_LP_VECTOR_WIDTH: 'default' }, undefined, true), { decision: { width: null, reason: 'opt-out' }, set: {} });
  assert.deepEqual(planVectorWidth(env, 'default', true).set, {});
  assert.equal(planVectorWidth({ ...env, STEP_LP_VECTOR_WIDTH: 'default' }, 256, true).set.LP_NATIVE_VECTOR_WIDTH, '256');
  assert.equal(planVectorWidth({ ...env, STEP_LP_VECTOR_WIDTH: '128' }, undefined, false).set.MESA_SHADER_CACHE_DIR, '/c/step-webgpu/mesa-lp128');
  // Without AVX-512 the default leaves Mesa alone.
  assert.deepEqual(planVectorWidth(env, undefined, false), { decision: { width: null, reason: 'no-avx512' }, set: {} });
  assert.throws(() => planVectorWidth({ STEP_LP_VECTOR_WIDTH: '1024' }, undefined, true),
    (e: unknown) => e instanceof StepError && /STEP_LP_VECTOR_WIDTH: unknown llvmpipe vector width "1024"; valid: default, 128, 256, 512/.test((e as Error).message));
  assert.equal(parseVectorWidth(undefined, 'x'), undefined);
  assert.equal(parseVectorWidth('DEFAULT', 'x'), 'default');
  assert.equal(cacheDirFor(256, {}).endsWith(join('.cache', 'step-webgpu', 'mesa-lp256')), true);
  assert.equal(cpuHasAvx512('processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512bw\n'), true);
  assert.equal(cpuHasAvx512('processor\t: 0\nflags\t\t: fpu sse avx2\nbugs\t\t: avx512f\n'), false);
});

/** A child process opening two backends (the second asks for Mesa's default) and printing what each got. */
function probe(env: Record<string, string>, option: string): { first: number; second: number; decision: unknown; lp?: string; cache?: string } {
  const code = `import { createWebGPUBackend } from '${ENGINE}';
const a = await createWebGPUBackend(${option});
const b = await createWebGPUBackend({ lpVectorWidth: 'default', dawnFlags: ['enable-dawn-features=allow_unsafe_apis'] });
console.log(JSON.stringify({ first: a.adapter.subgroupMinSize, second: b.adapter.subgroupMinSize, decision: a.adapter.lpVectorWidth,
  lp: process.env.LP_NATIVE_VECTOR_WIDTH, cache: process.env.MESA_SHADER_CACHE_DIR }));
a.destroy(); b.destroy();`;
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !['LP_NATIVE_VECTOR_WIDTH', 'MESA_SHADER_CACHE_DIR', 'STEP_LP_VECTOR_WIDTH'].includes(k)));
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], { env: { ...clean, ...env } as NodeJS.ProcessEnv, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!);
}

test('llvmpipe vector width: set before the driver loads, followed by the subgroup size, a no-op once loaded', async (t) => {
  const gpu = await freshWebGPU(t);
  if (!gpu) return;
  const llvmpipe = /llvmpipe/i.test(gpu.adapter.description);
  gpu.destroy();
  if (!llvmpipe) return t.skip(`not llvmpipe (${gpu.adapter.description}): the width does not apply`);
  const cache = mkdtempSync(join(tmpdir(), 'lp-cache-'));
  try {
    const env = { XDG_CACHE_HOME: cache };
    const def = probe(env, '');
    if (cpuHasAvx512()) {
      assert.deepEqual(def, { first: 16, second: 16, decision: { width: 512, reason: 'step', cacheDir: join(cache, 'step-webgpu', 'mesa-lp512') }, lp: '512', cache: join(cache, 'step-webgpu', 'mesa-lp512') },
        'subgroup 16 at 512 bits; the second backend asked for the default but the driver had loaded');
    }
    const optOut = probe({ ...env, STEP_LP_VECTOR_WIDTH: 'default' }, '');
    assert.deepEqual(optOut, { first: 8, second: 8, decision: { width: null, reason: cpuHasAvx512() ? 'opt-out' : 'no-avx512' } }, "Mesa's default: subgroup 8");
    const option = probe(env, "{ lpVectorWidth: 256 }");
    assert.equal(option.first, 8);
    assert.equal(option.cache, join(cache, 'step-webgpu', 'mesa-lp256'), 'each width its own shader cache');
  } finally {
    rmSync(cache, { recursive: true, force: true });
  }
});
