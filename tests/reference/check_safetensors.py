#!/usr/bin/env python3
"""Our safetensors reader and writer (engine/safetensors.*) against the Python `safetensors` package,
both ways, and our SHA-256 (engine/checkpoint.*) against hashlib.

1. Python writes a file (every dtype numpy has a safetensors name for, a scalar, a zero-size tensor,
   metadata); our reader dumps what it sees (names, dtypes, shapes, SHA-256 of each tensor's bytes),
   which must match; our writer copies it, and Python reads the copy back bit for bit.
2. Our writer writes tensors with known values; Python reads them and checks every value. BF16 is
   checked only when torch is installed (numpy has no bfloat16).
3. interop_tool sha256 agrees with hashlib.sha256 on the files above.

Run by ctest (safetensors_vs_python) as
    python check_safetensors.py --tool build/tests/interop_tool --work DIR
Exits 77 (skipped) when numpy or safetensors is missing: scripts/python_deps.sh installs both.
"""

import argparse
import hashlib
import json
import os
import subprocess
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tool", required=True, help="the interop_tool binary")
    ap.add_argument("--work", required=True, help="a scratch directory")
    args = ap.parse_args()
    try:
        import numpy as np
        from safetensors import safe_open
        from safetensors.numpy import load_file, save_file
    except ImportError as e:
        print(f"SKIP: {e.name} is not installed (scripts/python_deps.sh installs it)")
        return 77
    os.makedirs(args.work, exist_ok=True)
    failures = []

    def check(ok, what):
        print(("ok   " if ok else "FAIL ") + what)
        if not ok:
            failures.append(what)

    def tool(*a):
        return subprocess.run([args.tool, *a], check=True, capture_output=True, text=True).stdout

    # ---- 1. Python writes, we read and rewrite, Python reads back -------------------------------------
    rng = np.random.default_rng(7)
    tensors = {
        "f32": rng.standard_normal((3, 5)).astype(np.float32),
        "f64": rng.standard_normal((2, 3, 4)).astype(np.float64),
        "f16": rng.standard_normal((6,)).astype(np.float16),
        "i64": np.array([-(1 << 40), 0, 1 << 50], dtype=np.int64),
        "i32": np.arange(-5, 5, dtype=np.int32).reshape(2, 5),
        "i16": np.array([-300, 7], dtype=np.int16),
        "i8": np.array([-128, 127, 0], dtype=np.int8),
        "u8": np.array([0, 255, 17], dtype=np.uint8),
        "bool": np.array([True, False, True]),
        "scalar": np.array(2.5, dtype=np.float32),
        "empty": np.zeros((0, 4), dtype=np.float32),
        "transformer.h.0.attn.c_attn.weight": rng.standard_normal((4, 12)).astype(np.float32),
    }
    metadata = {"format": "pt", "note": "written by python safetensors", "unicode": "\u2713"}
    theirs = os.path.join(args.work, "theirs.safetensors")
    save_file(tensors, theirs, metadata=metadata)

    seen = json.loads(tool("st-dump", theirs))
    check(seen["metadata"] == metadata, "our reader sees Python's metadata")
    dtype_names = {np.float32: "F32", np.float64: "F64", np.float16: "F16", np.int64: "I64", np.int32: "I32",
                   np.int16: "I16", np.int8: "I8", np.uint8: "U8", np.bool_: "BOOL"}
    for name, t in tensors.items():
        s = seen["tensors"].get(name)
        ok = (s is not None and s["dtype"] == dtype_names[t.dtype.type] and s["shape"] == list(t.shape)
              and s["sha256"] == hashlib.sha256(np.ascontiguousarray(t).tobytes()).hexdigest())
        check(ok, f"our reader: Python's tensor '{name}' ({t.dtype}, {list(t.shape)}) bit for bit")
    check(set(seen["tensors"]) == set(tensors), "our reader sees exactly Python's tensors")

    copy = os.path.join(args.work, "copy.safetensors")
    tool("st-copy", theirs, copy)
    back = load_file(copy)
    with safe_open(copy, framework="numpy") as f:
        check(f.metadata() == metadata, "Python reads the metadata our writer wrote")
    for name, t in tensors.items():
        b = back.get(name)
        ok = b is not None and b.dtype == t.dtype and b.shape == t.shape and b.tobytes() == t.tobytes()
        check(ok, f"Python reads our copy of '{name}' bit for bit")

    # ---- 2. we write, Python reads ---------------------------------------------------------------------
    tool("st-write", args.work)
    ours = os.path.join(args.work, "ours.safetensors")
    got = load_file(ours)
    expected = {
        "f32": (np.arange(15, dtype=np.float32) * np.float32(0.25) - np.float32(1)).reshape(3, 5),
        "f64": (np.arange(8, dtype=np.float64) / 3.0).reshape(2, 2, 2),
        "i32": (np.arange(7, dtype=np.int32) ** 2 - 10).astype(np.int32),
        "i64": np.array([-(1 << 40), 0, 1 << 50], dtype=np.int64),
        "u8": np.array([0, 60, 120, 255], dtype=np.uint8),
        "f16": np.array([1, -2, 65504], dtype=np.float16),
        "scalar": np.array(3.5, dtype=np.float32),
        "empty": np.zeros((0, 4), dtype=np.float32),
    }
    for name, e in expected.items():
        g = got.get(name)
        ok = g is not None and g.dtype == e.dtype and g.shape == e.shape and g.tobytes() == e.tobytes()
        check(ok, f"Python reads our '{name}' ({e.dtype}, {list(e.shape)}) with the expected values")
    check(set(got) == set(expected), "Python sees exactly our tensors")
    with safe_open(ours, framework="numpy") as f:
        check(f.metadata() == {"source": "gpt-engine", "note": "unicode \u2713"}, "Python reads our metadata")
    try:
        import torch
        from safetensors.torch import load_file as load_torch

        b = load_torch(os.path.join(args.work, "ours_bf16.safetensors"))["bf16"]
        ok = b.dtype == torch.bfloat16 and b.float().tolist() == [[1.0, 2.0], [-3.0, 0.0]]
        check(ok, "Python (torch) reads our BF16 tensor")
    except ImportError:
        print("skip BF16 (torch is not installed)")

    # ---- 3. SHA-256 ------------------------------------------------------------------------------------
    for path in (theirs, copy, ours):
        with open(path, "rb") as fh:
            want = hashlib.sha256(fh.read()).hexdigest()
        check(tool("sha256", path).strip() == want, f"our SHA-256 of {os.path.basename(path)} equals hashlib's")

    print(f"{len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
