#!/usr/bin/env bash
# The README's `step memory` table: vanilla vs STEP K = 2, 3, 4 (rank 8), GaLore (rank hidden/4, GaLore's
# setting: 256 at 350m) and ReLoRA (LoRA rank 128, the ReLoRA reference's --lora_r), mixed precision,
# batch 2 x 256, with and without activation checkpointing, one run at a time (each needs several GB).
# Usage: [RUNS="k2 k4"] [CKPTS=off] bench/memory-table.sh [PRESET...]   (default 350m; RUNS default
# "k1 k3 k2 k4 galore relora", CKPTS default "on off": pick rows, e.g. the missing ones first); writes bench/results/memory/*.json
# (PRESET-kK-ckpt-on|off.json, PRESET-galore-ckpt-on|off.json, PRESET-relora-ckpt-on|off.json).
# A run is skipped (and said so) when free memory is below 1.5x its predicted model state + 1 GB.
set -u
cd "$(dirname "$0")/.."
out=bench/results/memory
mkdir -p "$out"
for preset in "${@:-350m}"; do
  for ckpt in ${CKPTS:-on off}; do
    for run in ${RUNS:-k1 k3 k2 k4 galore relora}; do  # the issue's comparison (vanilla vs K = 3) first
      name="$preset-$run-ckpt-$ckpt"
      [ -s "$out/$name.json" ] && { echo "$name: done before, kept"; continue; }
      args=(--preset "$preset" --precision mixed --batch 2 --seq 256 --json)
      # plan: the `step plan` flags whose JSON holds the run's predicted model-state peak (pick: where)
      case "$run" in
        k1) plan=(--split 24); pick='j.plan.peak' ;;
        galore) args+=(--method galore); plan=(--stages 2); pick='j.galore.bytes.total' ;;
        relora) args+=(--method relora --rank 128); plan=(--stages 2 --relora-rank 128); pick='j.relora.peak' ;;
        *) k=${run#k}; args+=(--method step --stages "$k" --rank 8); plan=(--stages "$k" --rank 8); pick='j.plan.peak' ;;
      esac
      [ "$ckpt" = on ] && args+=(--checkpoint-activations)
      need=$(node dist/step/cli.js plan --preset "$preset" --mode engine --precision mixed "${plan[@]}" --json | PICK="$pick" node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const j=JSON.parse(s);console.log(Math.ceil((eval(process.env.PICK)*1.5+1e9)/1e9))})')
      [ -n "$need" ] || { echo "$name: skipped, step plan ${plan[*]} gave no prediction (build first: npm run build)"; continue; }
      free=$(free -g | awk '/^Mem:/ {print $7}')
      if [ "$free" -lt "$need" ]; then echo "$name: skipped, $free GB available < $need GB needed"; continue; fi
      # one invocation per row at a time: a lock naming the owner (two queues once truncated each other's output)
      lock="$out/$name.lock"
      if ! ( set -o noclobber; echo $$ > "$lock" ) 2>/dev/null; then
        if kill -0 "$(cat "$lock" 2>/dev/null)" 2>/dev/null; then echo "$name: skipped, measured now by process $(cat "$lock")"; continue; fi
        echo $$ > "$lock"  # a stale lock: its owner is gone
      fi
      [ -s "$out/$name.json" ] && { rm -f "$lock"; echo "$name: done meanwhile, kept"; continue; }
      echo "$name: started $(date -u +%H:%M:%S) ($free GB available, $need GB needed)"
      start=$(date +%s)
      tmp="$out/$name.json.tmp.$$"
      nice -n 10 node dist/step/cli.js memory "${args[@]}" > "$tmp" 2> "$out/$name.log"
      rc=$?
      if [ -s "$tmp" ]; then mv "$tmp" "$out/$name.json"; else rm -f "$tmp"; fi
      rm -f "$lock"
      echo "$name: exit $rc after $(( $(date +%s) - start )) s"
    done
  done
done
