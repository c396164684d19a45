"""The PyTorch peer of `npm run bench:matmul`: the same matmul shapes, float32 on the CPU with all cores
(Debian's PyTorch and its BLAS, OpenBLAS here), so the project's GFLOP/s can be read against the BLAS
of the same machine in the same run (on a shared machine absolute figures move with other tenants).

    /usr/bin/python3 bench/peers/torch_matmul.py '<json>'

The argument: {"shapes": [{"M", "K", "N", "transA", "transB", "batch"}...], "min_seconds": S}. Operands
are stored as the project stores them (A [K, M] when transA, B [N, K] when transB) and multiplied
through transposed views, which BLAS reads without a copy. Prints one JSON line: ms per product
(median of 5 samples of about S/5 seconds each) per shape, threads, BLAS, torch version."""
import json
import os
import re
import sys
import time

import torch

args = json.loads(sys.argv[1])
threads = os.cpu_count() or 1
torch.set_num_threads(threads)
torch.manual_seed(1)


def blas():
    with open("/proc/self/maps") as f:
        libs = sorted({m.group(1) for m in re.finditer(r"/(lib(?:openblas|blas|mkl|blis)[^/\s]*)", f.read())})
    return ", ".join(libs) or "unknown"


out = []
for s in args["shapes"]:
    M, K, N, b = s["M"], s["K"], s["N"], s.get("batch", 1)
    lead = [b] if b > 1 else []
    a = torch.rand(*lead, *([K, M] if s.get("transA") else [M, K])) * 2 - 1
    w = torch.rand(*lead, *([N, K] if s.get("transB") else [K, N])) * 2 - 1
    x = a.transpose(-1, -2) if s.get("transA") else a
    y = w.transpose(-1, -2) if s.get("transB") else w
    for _ in range(2):
        torch.matmul(x, y)
    t0 = time.perf_counter()
    torch.matmul(x, y)
    one = max(time.perf_counter() - t0, 1e-6)
    n = max(1, int(args["min_seconds"] / 5 / one))
    samples = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(n):
            torch.matmul(x, y)
        samples.append((time.perf_counter() - t0) / n * 1e3)
    out.append(sorted(samples)[2])
print(json.dumps({"ms": out, "threads": threads, "blas": blas(), "torch": torch.__version__}))
