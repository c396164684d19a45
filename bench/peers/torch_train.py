"""The PyTorch peer of `npm run bench:train`: one LLaMA training step (forward, backward, AdamW with
gradient clipping at 1.0), float32 on the CPU, with Hugging Face LlamaForCausalLM semantics written
out (as test/fixtures/make_llama_fixture.py does; no transformers package), on the same config,
batch and token ids as the TypeScript bench.

    /usr/bin/python3 bench/peers/torch_train.py '<json>'

The argument: {"config": {...LlamaConfig...}, "batch": B, "seq": T, "ids": [...], "targets": [...],
"min_seconds": S, "min_steps": N}. Prints one JSON line: tokens/s (mean over the timed steps after
one warm-up step), threads, the BLAS library loaded into the process, torch version. Threads: all the machine's cores, so that the
comparison is against PyTorch as a user would run it."""
import json
import math
import os
import re
import sys
import time

import torch
import torch.nn.functional as F

args = json.loads(sys.argv[1])
cfg, B, T = args["config"], args["batch"], args["seq"]
threads = os.cpu_count() or 1
torch.set_num_threads(threads)
torch.manual_seed(1)

V, H, I, L = cfg["vocab_size"], cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
NH = cfg["num_attention_heads"]
NKV = cfg.get("num_key_value_heads", NH)
D, EPS, THETA = H // NH, cfg.get("rms_norm_eps", 1e-6), cfg.get("rope_theta", 10000.0)
STD = cfg.get("initializer_range", 0.02)


def weight(*shape, ones=False):
    t = torch.ones(*shape) if ones else torch.randn(*shape) * STD
    return torch.nn.Parameter(t)


W = {"embed": weight(V, H), "norm": weight(H, ones=True), "head": weight(V, H)}
for i in range(L):
    W.update({f"{i}.in": weight(H, ones=True), f"{i}.q": weight(NH * D, H), f"{i}.k": weight(NKV * D, H),
              f"{i}.v": weight(NKV * D, H), f"{i}.o": weight(H, NH * D), f"{i}.post": weight(H, ones=True),
              f"{i}.gate": weight(I, H), f"{i}.up": weight(I, H), f"{i}.down": weight(H, I)})

inv_freq = 1.0 / (THETA ** (torch.arange(0, D, 2).float() / D))
freqs = torch.arange(T).float()[:, None] * inv_freq[None, :]
emb = torch.cat((freqs, freqs), dim=-1)
COS, SIN = emb.cos(), emb.sin()
MASK = torch.full((T, T), float("-inf")).triu(1)


def rms_norm(x, w):
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + EPS))


def rotate_half(x):
    x1, x2 = x[..., : D // 2], x[..., D // 2:]
    return torch.cat((-x2, x1), dim=-1)


def loss_of(ids, targets):
    h = W["embed"][ids]
    for i in range(L):
        x = rms_norm(h, W[f"{i}.in"])
        q = (x @ W[f"{i}.q"].T).view(B, T, NH, D).transpose(1, 2)
        k = (x @ W[f"{i}.k"].T).view(B, T, NKV, D).transpose(1, 2)
        v = (x @ W[f"{i}.v"].T).view(B, T, NKV, D).transpose(1, 2)
        q, k = q * COS + rotate_half(q) * SIN, k * COS + rotate_half(k) * SIN
        if NKV != NH:
            k, v = k.repeat_interleave(NH // NKV, dim=1), v.repeat_interleave(NH // NKV, dim=1)
        probs = torch.softmax(q @ k.transpose(2, 3) / math.sqrt(D) + MASK, dim=-1)
        h = h + (probs @ v).transpose(1, 2).reshape(B, T, NH * D) @ W[f"{i}.o"].T
        x = rms_norm(h, W[f"{i}.post"])
        h = h + (F.silu(x @ W[f"{i}.gate"].T) * (x @ W[f"{i}.up"].T)) @ W[f"{i}.down"].T
    logits = rms_norm(h, W["norm"]) @ W["head"].T
    return F.cross_entropy(logits.view(B * T, V), targets.view(B * T))


ids = torch.tensor(args["ids"], dtype=torch.long).view(B, T)
targets = torch.tensor(args["targets"], dtype=torch.long).view(B, T)
opt = torch.optim.AdamW(list(W.values()), lr=1e-3, weight_decay=0.0)


def step():
    loss = loss_of(ids, targets)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(list(W.values()), 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)


step()  # warm-up: allocates the optimizer state
times = []
while len(times) < args.get("min_steps", 3) or sum(times) < args.get("min_seconds", 6):
    t0 = time.perf_counter()
    step()
    times.append(time.perf_counter() - t0)



def loaded_blas():
    # Debian's torch says BLAS_INFO=generic: the library really used is whichever libblas the
    # alternatives system points at, so name the one mapped into this process
    with open("/proc/self/maps") as maps:
        libs = sorted({os.path.basename(line.split()[-1]) for line in maps if re.search(r"blas|mkl", line)})
    named = [lib for lib in libs if re.search(r"openblas|mkl|blis", lib)]
    return ", ".join(named or libs) or "unknown"


print(json.dumps({"tokens_per_second": B * T / (sum(times) / len(times)), "steps": len(times), "threads": threads,
                  "blas": loaded_blas(), "torch": torch.__version__}))
