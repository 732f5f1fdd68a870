#!/usr/bin/env python3
"""PyTorch reference for bench_train: GPT-2 training steps, nanoGPT style, on random tokens.

The same model and step as `bench_train --device cuda` (pre-LN GPT-2, tied embeddings, tanh GELU,
AdamW with weight decay on 2-D weights, gradient clipping at 1.0), written the way a strong PyTorch
baseline is: bf16 autocast, torch.compile, scaled_dot_product_attention (FlashAttention on
Hopper), fused AdamW, TF32 allowed for the fp32 leftovers. Like nanoGPT, the vocabulary is padded
to a multiple of 128 (50304) and the loss runs over the padded classes.

    python3 bench/torch_gpt2_train.py --batch 16 --seq 1024 --steps 10 --peak-tflops 989

With --device cpu it is the CPU baseline of bench/cpu_vs_torch.sh: fp32 (no autocast), eager unless
--compile 1, AdamW's fused CPU implementation where this torch has one, torch.set_num_threads from
--threads (default: OMP_NUM_THREADS, else all cores).

Prints progress to stderr and, last, one JSON line: median step time, tokens/s, MFU.
"""
import argparse
import json
import math
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class CausalSelfAttention(nn.Module):
    def __init__(self, n_embd, n_head):
        super().__init__()
        self.n_head = n_head
        self.c_attn = nn.Linear(n_embd, 3 * n_embd)
        self.c_proj = nn.Linear(n_embd, n_embd)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))


class Block(nn.Module):
    def __init__(self, n_embd, n_head):
        super().__init__()
        self.ln_1 = nn.LayerNorm(n_embd)
        self.attn = CausalSelfAttention(n_embd, n_head)
        self.ln_2 = nn.LayerNorm(n_embd)
        self.c_fc = nn.Linear(n_embd, 4 * n_embd)
        self.c_proj = nn.Linear(4 * n_embd, n_embd)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.c_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(self, n_layer, n_embd, n_head, vocab, max_seq):
        super().__init__()
        self.wte = nn.Embedding(vocab, n_embd)
        self.wpe = nn.Embedding(max_seq, n_embd)
        self.blocks = nn.ModuleList(Block(n_embd, n_head) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(n_embd)
        self.lm_head = nn.Linear(n_embd, vocab, bias=False)
        self.lm_head.weight = self.wte.weight  # tied
        for name, p in self.named_parameters():
            if p.dim() == 2:
                std = 0.02 / math.sqrt(2 * n_layer) if name.endswith("c_proj.weight") else 0.02
                nn.init.normal_(p, mean=0.0, std=std)
            elif name.endswith("bias"):
                nn.init.zeros_(p)

    def forward(self, idx, targets):
        T = idx.shape[1]
        x = self.wte(idx) + self.wpe(torch.arange(T, device=idx.device))
        for block in self.blocks:
            x = block(x)
        logits = self.lm_head(self.ln_f(x))
        return F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.view(-1), ignore_index=-1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-layer", type=int, default=12)
    ap.add_argument("--n-embd", type=int, default=768)
    ap.add_argument("--n-head", type=int, default=12)
    ap.add_argument("--vocab", type=int, default=50257, help="padded up to a multiple of 128")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=10, help="timed steps")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps first (compilation)")
    ap.add_argument("--compile", type=int, default=1, help="1: torch.compile the model")
    ap.add_argument("--peak-tflops", type=float, default=0.0, help="device peak for MFU (0: not reported)")
    ap.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    ap.add_argument("--threads", type=int, default=0, help="cpu: torch threads (0: OMP_NUM_THREADS or all)")
    ap.add_argument("--label", default="pytorch", help="name printed with the result")
    args = ap.parse_args()

    device = args.device
    if device == "cuda" and not torch.cuda.is_available():
        print("torch_gpt2_train.py: no CUDA device", file=sys.stderr)
        sys.exit(2)
    torch.manual_seed(0)
    if device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    else:
        threads = args.threads or int(os.environ.get("OMP_NUM_THREADS", "0") or 0)
        if threads > 0:
            torch.set_num_threads(threads)
    vocab_padded = (args.vocab + 127) // 128 * 128
    model = GPT(args.n_layer, args.n_embd, args.n_head, vocab_padded, max(args.seq, 1024)).to(device)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}]
    try:
        opt = torch.optim.AdamW(groups, lr=1e-4, betas=(0.9, 0.95), eps=1e-8, fused=True)
    except (RuntimeError, ValueError):  # an older torch without the fused CPU AdamW
        opt = torch.optim.AdamW(groups, lr=1e-4, betas=(0.9, 0.95), eps=1e-8, foreach=True)
    step_model = torch.compile(model) if args.compile else model

    gen = torch.Generator(device=device).manual_seed(3)
    idx = torch.randint(0, args.vocab, (args.batch, args.seq), device=device, generator=gen)
    targets = torch.randint(0, args.vocab, (args.batch, args.seq), device=device, generator=gen)

    def step():
        opt.zero_grad(set_to_none=True)
        if device == "cuda":
            with torch.autocast(device_type="cuda", dtype=torch.bfloat16):
                loss = step_model(idx, targets)
        else:
            loss = step_model(idx, targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss

    def sync():
        if device == "cuda":
            torch.cuda.synchronize()

    t0 = time.time()
    for i in range(args.warmup):
        loss = step()
        sync()
        print(f"warmup step {i}: loss {loss.item():.4f} ({time.time() - t0:.1f}s)", file=sys.stderr, flush=True)
    times = []
    for i in range(args.steps):
        start = time.perf_counter()
        step()
        sync()
        times.append((time.perf_counter() - start) * 1e3)
    times.sort()
    median = times[len(times) // 2]
    tokens = args.batch * args.seq
    tok_s = tokens / (median / 1e3)
    # Same FLOP accounting as GptConfig::flops_per_token: 6·(12·L·C² + V·C) + 6·L·T·C.
    L, C, T, V = args.n_layer, args.n_embd, args.seq, args.vocab
    flops_per_token = 6.0 * (12.0 * L * C * C + V * C) + 6.0 * L * T * C
    result = {
        "label": args.label,
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name() if device == "cuda" else f"cpu, {torch.get_num_threads()} threads",
        "compile": bool(args.compile),
        "shape": {"n_layer": L, "n_embd": C, "n_head": args.n_head, "vocab": args.vocab,
                  "vocab_padded": vocab_padded, "batch": args.batch, "seq": args.seq},
        "median_step_ms": median,
        "min_step_ms": times[0],
        "tokens_per_s": tok_s,
        "gflops_per_s": tok_s * flops_per_token / 1e9,
    }
    if args.peak_tflops > 0:
        result["mfu"] = tok_s * flops_per_token / (args.peak_tflops * 1e12)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
