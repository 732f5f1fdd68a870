#!/usr/bin/env python3
"""PyTorch's causal scaled_dot_product_attention on the shapes of bench/bench_attention.cu.

Times forward, backward and forward+backward of torch.nn.functional.scaled_dot_product_attention
(bf16, is_causal=True) with each SDPA backend forced through torch.nn.attention.sdpa_kernel:
FLASH_ATTENTION (FlashAttention-2) and, where this PyTorch has it, CUDNN_ATTENTION. Same FLOP
count as bench_attention (forward 4*B*NH*T^2*HS/2, backward 2.5x), same shapes (B*T = --tokens,
NH = --channels / HS), CUDA events, L2 flushed before every timed call, median of --repeats.

With --ours PATH (the bench_attention binary) it runs ours in the same process tree on the same
card and prints one table: TFLOP/s of every implementation and ours / FlashAttention-2.
q, k, v are separate contiguous (B, NH, T, HS) tensors, the layout SDPA's kernels like best; our
kernels read the packed (B, T, 3C) qkv of the model, as the engine uses them.

Usage: python3 bench/bench_attention_torch.py --ours build/bench/bench_attention [--json]
"""
import argparse
import json
import statistics
import subprocess
import sys


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tokens", type=int, default=16384, help="B*T of every configuration")
    p.add_argument("--channels", type=int, default=768, help="C = NH*HS")
    p.add_argument("--lengths", default="512,1024,2048,4096", help="sequence lengths T")
    p.add_argument("--head-sizes", default="64,128", help="head sizes HS")
    p.add_argument("--repeats", type=int, default=20, help="timed runs per measurement (median)")
    p.add_argument("--ours", default=None, help="path of the bench_attention binary to run alongside")
    p.add_argument("--json", action="store_true", help="print JSON lines instead of the table")
    return p.parse_args()


def time_ms(torch, fn, repeats, flush):
    for _ in range(3):
        fn()
    times = []
    for i in range(repeats):
        flush.fill_(i & 0xFF)
        start = torch.cuda.Event(enable_timing=True)
        stop = torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop))
    return statistics.median(times)


def bench_torch(torch, backend, B, T, NH, HS, repeats, flush):
    from torch.nn.attention import sdpa_kernel
    import torch.nn.functional as F

    shape = (B, NH, T, HS)
    q, k, v = (torch.empty(shape, device="cuda", dtype=torch.bfloat16).uniform_(-1, 1).requires_grad_()
               for _ in range(3))
    dout = torch.empty(shape, device="cuda", dtype=torch.bfloat16).uniform_(-1, 1)
    with sdpa_kernel([backend]):
        def forward():
            return F.scaled_dot_product_attention(q, k, v, is_causal=True)

        out = forward()  # raises if the backend cannot run this shape

        def backward():
            torch.autograd.grad(out, (q, k, v), dout, retain_graph=True)

        def both():
            o = forward()
            torch.autograd.grad(o, (q, k, v), dout)

        return (time_ms(torch, forward, repeats, flush), time_ms(torch, backward, repeats, flush),
                time_ms(torch, both, repeats, flush))


def run_ours(args):
    cmd = [args.ours, "--json", "--tokens", str(args.tokens), "--channels", str(args.channels),
           "--lengths", args.lengths, "--head-sizes", args.head_sizes, "--repeats", str(args.repeats)]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"{args.ours} failed ({result.returncode}): {result.stderr.strip()}")
    rows = {}
    ceiling = None
    for line in result.stdout.splitlines():
        if not line.startswith("{"):
            continue
        r = json.loads(line)
        if r["impl"] == "gemm_ceiling":
            ceiling = r["tflops"]
        else:
            rows[(r["T"], r["HS"])] = r
    return rows, ceiling


def main():
    args = parse_args()
    import torch

    if not torch.cuda.is_available():
        sys.exit("bench_attention_torch: no CUDA device")
    from torch.nn.attention import SDPBackend

    backends = [("flash2", SDPBackend.FLASH_ATTENTION)]
    if hasattr(SDPBackend, "CUDNN_ATTENTION"):
        backends.append(("cudnn", SDPBackend.CUDNN_ATTENTION))
    lengths = [int(x) for x in args.lengths.split(",")]
    head_sizes = [int(x) for x in args.head_sizes.split(",")]
    device = torch.cuda.get_device_name()
    flush = torch.empty(256 * 1024 * 1024, dtype=torch.uint8, device="cuda")

    ours, ceiling = run_ours(args) if args.ours else ({}, None)
    results = []
    for HS in head_sizes:
        for T in lengths:
            B, NH = max(1, args.tokens // T), args.channels // HS
            fwd_flops = 4.0 * B * NH * T * T * HS / 2.0
            row = {"T": T, "HS": HS, "B": B, "NH": NH}
            for name, backend in backends:
                try:
                    f, b, fb = bench_torch(torch, backend, B, T, NH, HS, args.repeats, flush)
                    row[name] = (fwd_flops / f / 1e9, 2.5 * fwd_flops / b / 1e9, 3.5 * fwd_flops / fb / 1e9)
                except RuntimeError as e:  # backend unavailable for this shape or build
                    row[name] = None
                    print(f"# {name} T={T} HS={HS}: {str(e).splitlines()[0]}", file=sys.stderr)
                torch.cuda.empty_cache()
            o = ours.get((T, HS))
            row["ours"] = (o["fwd_tflops"], o["bwd_tflops"], o["fwdbwd_tflops"]) if o else None
            results.append(row)
            if args.json:
                print(json.dumps({"device": device, "torch": torch.__version__, **row}), flush=True)

    if args.json:
        return
    names = ["ours"] + [n for n, _ in backends]
    print(f"causal attention, bf16, {device}, torch {torch.__version__}; TFLOP/s as fwd / bwd / fwd+bwd"
          + (f"; cuBLAS GEMM ceiling {ceiling:.0f} TFLOP/s" if ceiling else ""))
    header = f"{'T':>5} {'HS':>4} {'B':>3} {'NH':>3} | " + " | ".join(f"{n:^20}" for n in names)
    header += " | ours/flash2 (f, b, f+b)"
    print(header)
    print("-" * len(header))

    def cell(v):
        return f"{v[0]:6.1f} {v[1]:6.1f} {v[2]:6.1f}" if v else f"{'n/a':^20}"

    for r in results:
        line = f"{r['T']:>5} {r['HS']:>4} {r['B']:>3} {r['NH']:>3} | " + " | ".join(cell(r[n]) for n in names)
        if r["ours"] and r.get("flash2"):
            line += " | " + " ".join(f"{a / b:5.2f}x" for a, b in zip(r["ours"], r["flash2"]))
        print(line)
    goal = next((r for r in results if r["T"] == 1024 and r["HS"] == 64), None)
    if goal and goal["ours"] and goal.get("flash2"):
        ratio = goal["ours"][2] / goal["flash2"][2]
        print(f"goal (T=1024, HS=64, fwd+bwd >= 1.0x FlashAttention-2): {ratio:.2f}x "
              f"{'met' if ratio >= 1.0 else 'NOT met'}")


if __name__ == "__main__":
    main()
