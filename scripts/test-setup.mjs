// Loaded into every test process (NODE_OPTIONS from run-tests.mjs): property tests draw their cases
// from one fixed seed, so `npm test` is reproducible and CI never meets a new case by chance;
// STEP_FUZZ_SEED explores others (e.g. `STEP_FUZZ_SEED=$RANDOM npm test`).
import fc from 'fast-check';

const raw = process.env.STEP_FUZZ_SEED;
const seed = raw === undefined ? 20261130 : Number(raw);
if (!Number.isSafeInteger(seed)) throw new Error(`STEP_FUZZ_SEED must be an integer, got ${JSON.stringify(raw)}`);
fc.configureGlobal({ seed });
