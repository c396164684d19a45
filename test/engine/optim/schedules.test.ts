import assert from 'node:assert/strict';
import { test } from 'node:test';
import { constantSchedule, jaggedCosineSchedule, warmupCosineSchedule } from '../../../engine/optim/index.js';

const close = (a: number, b: number, what: string) => assert.ok(Math.abs(a - b) < 1e-12, `${what}: ${a} vs ${b}`);

test('constant schedule', () => {
  const s = constantSchedule();
  assert.deepEqual([0, 1, 1000].map(s), [1, 1, 1]);
  assert.throws(() => s(-1), /step must be an integer >= 0, got -1/);
});

test('warm-up + cosine to a floor: hand-computed values', () => {
  const s = warmupCosineSchedule({ warmupSteps: 4, totalSteps: 14, minRatio: 0.1 });
  // Warm-up: step / 4.
  assert.deepEqual([0, 1, 2, 3].map(s), [0, 0.25, 0.5, 0.75]);
  // Cosine over steps 4..14: progress (step - 4) / 10; value 0.1 + 0.9 * (1 + cos(pi p)) / 2.
  close(s(4), 1, 'start of decay');
  close(s(9), 0.55, 'half way: 0.1 + 0.9 * 0.5');
  close(s(6), 0.1 + 0.45 * (1 + Math.cos(Math.PI / 5)), 'p = 0.2');
  close(s(14), 0.1, 'end');
  close(s(1000), 0.1, 'after the end: the floor');
  const noFloor = warmupCosineSchedule({ warmupSteps: 0, totalSteps: 2 });
  assert.deepEqual([0, 1, 2].map(noFloor).map((x) => Math.round(x * 1e12) / 1e12), [1, 0.5, 0]);
  assert.throws(() => warmupCosineSchedule({ warmupSteps: 5, totalSteps: 5 }), /totalSteps must be an integer >= 6, got 5/);
  assert.throws(() => warmupCosineSchedule({ warmupSteps: 1, totalSteps: 5, minRatio: 2 }), /minRatio must be in \[0, 1\], got 2/);
  assert.throws(() => s(1.5), /step must be an integer >= 0, got 1.5/);
});

test('ReLoRA jagged cosine: first warm-up, restart warm-ups back to the cosine, floor', () => {
  // W1 = 2, R = 10, Wr = 4, T = 42, m = 0.2. Cosine c(s) = 0.2 + 0.8 * (1 + cos(pi (s - 2) / 40)) / 2.
  const s = jaggedCosineSchedule({ firstWarmupSteps: 2, restartEvery: 10, restartWarmupSteps: 4, totalSteps: 42, minRatio: 0.2 });
  const c = (x: number) => 0.2 + 0.4 * (1 + Math.cos((Math.PI * (x - 2)) / 40));
  assert.deepEqual([0, 1].map(s), [0, 0.5], 'first warm-up');
  for (const step of [2, 5, 9]) close(s(step), c(step), `step ${step} on the cosine`);
  // Restart at 10: (step - 10) / 4 times the cosine at the end of the warm-up (step 14).
  close(s(10), 0, 'restart');
  close(s(11), 0.25 * c(14), 'restart warm-up 1/4');
  close(s(13), 0.75 * c(14), 'restart warm-up 3/4');
  close(s(14), c(14), 'back on the cosine');
  close(s(22), 0.5 * c(24), 'second restart, half way');
  close(s(22), 0.5 * (0.2 + 0.4 * (1 + Math.cos((Math.PI * 22) / 40))), 'the same by hand');
  close(s(40), 0, 'the restart at 40 warms up from 0');
  close(s(42), 0.5 * 0.2, 'toward the floor: the cosine has reached it by step 44');
  close(s(45), 0.2, 'past T: the floor');
  close(s(46), 0.2, 'past T: the floor');
  // c(22) by hand: 0.2 + 0.4 * (1 + cos(pi / 2)) = 0.6
  close(s(22 + 4), c(26), 'after the second warm-up');
  close(c(22), 0.6, 'c(22)');
  assert.throws(() => jaggedCosineSchedule({ firstWarmupSteps: 2, restartEvery: 3, restartWarmupSteps: 4, totalSteps: 42, minRatio: 0.1 }), /restartWarmupSteps \(4\) must not exceed restartEvery \(3\)/);
  assert.throws(() => jaggedCosineSchedule({ firstWarmupSteps: 2, restartEvery: 0, restartWarmupSteps: 0, totalSteps: 42, minRatio: 0.1 }), /restartEvery must be an integer >= 1, got 0/);
});
