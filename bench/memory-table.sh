#!/usr/bin/env bash
# The README's `step memory` table: vanilla vs STEP K = 2, 3, 4 (rank 8), mixed precision, batch
# 2 x 256, with and without activation checkpointing, one run at a time (each needs several GB).
# Usage: bench/memory-table.sh [PRESET...]   (default 350m); writes bench/results/memory/*.json
# A run is skipped (and said so) when free memory is below 1.5x its predicted model state + 1 GB.
set -u
cd "$(dirname "$0")/.."
out=bench/results/memory
mkdir -p "$out"
for preset in "${@:-350m}"; do
  for ckpt in on off; do
    for k in 1 3 2 4; do  # the issue's comparison (vanilla vs K = 3) first
      name="$preset-k$k-ckpt-$ckpt"
      [ -s "$out/$name.json" ] && { echo "$name: done before, kept"; continue; }
      args=(--preset "$preset" --precision mixed --batch 2 --seq 256 --json)
      if [ "$k" = 1 ]; then plan=(--split 24); else args+=(--method step --stages "$k" --rank 8); plan=(--stages "$k" --rank 8); fi
      [ "$ckpt" = on ] && args+=(--checkpoint-activations)
      need=$(node dist/step/cli.js plan --preset "$preset" --mode engine --precision mixed "${plan[@]}" --json | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(Math.ceil((JSON.parse(s).plan.peak*1.5+1e9)/1e9)))')
      free=$(free -g | awk '/^Mem:/ {print $7}')
      if [ "$free" -lt "$need" ]; then echo "$name: skipped, $free GB available < $need GB needed"; continue; fi
      echo "$name: started $(date -u +%H:%M:%S) ($free GB available, $need GB needed)"
      start=$(date +%s)
      nice -n 10 node dist/step/cli.js memory "${args[@]}" > "$out/$name.json.tmp" 2> "$out/$name.log"
      rc=$?
      if [ -s "$out/$name.json.tmp" ]; then mv "$out/$name.json.tmp" "$out/$name.json"; else rm -f "$out/$name.json.tmp"; fi
      echo "$name: exit $rc after $(( $(date +%s) - start )) s"
    done
  done
done
