#!/usr/bin/env bash
# Interleaved A/B of bench:train between builds: each round runs every variant once, in turn, so a noisy
# shared machine slows them alike; compare the median of the per-round ratios, not single runs.
# Usage: bench/ab-train.sh ROUNDS NAME=DIR[:ENV=VALUE] ...   (each DIR a built checkout: npm run build)
#   e.g. bench/ab-train.sh 8 base=/tmp/first-wave this=. this-w=.:STEP_LP_VECTOR_WIDTH=default
# Shapes: STEP_BENCH_PRESETS (default tiny,small); WebGPU only unless STEP_BENCH_CPU=1 (then the cpu backend
# too, at bench:train's 8 x 64 shapes). Prints "== round R NAME" then bench:train's lines; summarise with
# bench/ab-summary.py OUTPUT BASENAME.
set -u
rounds=$1; shift
export STEP_BENCH_PRESETS=${STEP_BENCH_PRESETS:-tiny,small} STEP_BENCH_TORCH=0 STEP_BENCH_CPU=${STEP_BENCH_CPU:-0}
for r in $(seq 1 "$rounds"); do
  for v in "$@"; do
    name=${v%%=*} rest=${v#*=}
    dir=${rest%%:*} env=; [ "$rest" != "$dir" ] && env=${rest#*:}
    echo "== round $r $name"
    (cd "$dir" && env $env node dist/bench/train.bench.js 2>&1 | grep -E "tok/s")
  done
done
