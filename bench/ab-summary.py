"""Median of per-round tok/s ratios against a base variant, from bench/ab-train.sh's output (the cpu
backend's figures, when present, as SHAPE/cpu).
Usage: python3 bench/ab-summary.py OUTPUT BASE"""
import re, statistics, sys

rounds: dict = {}
current = None
for line in open(sys.argv[1]):
    m = re.match(r'== round (\d+) (\S+)', line)
    if m:
        current = (int(m.group(1)), m.group(2))
        continue
    m = re.match(r'(\S+?)[ :]', line)
    if m and current:
        # each backend's tok/s on the line (webgpu, and cpu when bench:train ran it) counts as its own shape
        for backend, tps in re.findall(r'\b(webgpu|cpu) (\d+) tok/s', line):
            shape = m.group(1) if backend == 'webgpu' else f'{m.group(1)}/cpu'
            rounds.setdefault(current[0], {})[(current[1], shape)] = int(tps)
base = sys.argv[2]
keys = sorted({k for d in rounds.values() for k in d})
for variant, shape in keys:
    values = [d[(variant, shape)] for d in rounds.values() if (variant, shape) in d]
    line = f'{shape:>10} {variant:>10}: median {statistics.median(values):.0f} tok/s over {len(values)} rounds'
    if variant != base:
        ratios = [d[(variant, shape)] / d[(base, shape)] for d in rounds.values() if (variant, shape) in d and (base, shape) in d]
        line += f'; vs {base}: median ratio {statistics.median(ratios):.3f} (min {min(ratios):.2f}, max {max(ratios):.2f})'
    print(line)
