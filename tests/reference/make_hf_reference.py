#!/usr/bin/env python3
"""The Hugging Face GPT-2 reference: a tiny random GPT2LMHeadModel made by transformers, and what
transformers computes with it.

Writes (from the repository root):
  tests/fixtures/hf_tiny/               the model as save_pretrained writes it (config.json,
                                        model.safetensors, generation_config.json), about 50 KiB
  tests/fixtures/hf_gpt2_reference.bin  a batch, transformers' logits and loss on it, and the
                                        gradient of the loss for every parameter (format below)

How to regenerate (needs only PyPI; the H100 node has both packages):

    python3 -m venv .venv && .venv/bin/pip install torch transformers safetensors numpy
    .venv/bin/python tests/reference/make_hf_reference.py

Both outputs are committed, so CI needs neither torch nor transformers: tests/test_interop.cpp
imports hf_tiny/ with our reader (models/gpt_interop.*), runs our CPU forward and backward on the
batch, and compares logits (relative error < 1e-5) and every gradient (< 1e-4).

The other direction, `--check-export`: loads a directory written by `gpt-export --format hf` with
transformers' GPT2LMHeadModel.from_pretrained and checks that its logits on the fixture's batch equal
our engine's logits for the weights it was exported from (computed by tests/reference/interop_tool,
relative error < 1e-5). tests/cli/interop.sh runs it; it exits 77 (skipped) without torch/transformers.

    .venv/bin/python tests/reference/make_hf_reference.py --check-export EXPORTED_DIR \
        --weights CHECKPOINT --tool build/tests/interop_tool

The model: 2 layers, 2 heads, n_embd 16, n_positions 8, vocab 257 (the byte tokenizer's size, so
the model also trains with `gpt-pretrain --init` on gpt-prepare's byte shards; our engine pads it to
384 rows). Every parameter is drawn at random (std 0.2 for weights and biases, LayerNorm weights
around 1), then rounded to float32; the reference runs in float64 (model.double()) on those float32
values, with the eager attention. The batch is B=3, T=7 < n_positions, with 5 of 21 targets set to
-1 (ignored), leaving 16 so that the engine's float 1/16 loss scale is exact; the last token id
(256) appears as input and target. The loss is the mean cross-entropy over the unmasked targets
(explicit targets, not transformers' shifted labels).

Format of hf_gpt2_reference.bin (version 1, little-endian):
  header      16 x int32: magic 0x46524648 ("HFRF"), version 1, header bytes (64), n_layer, n_head,
              n_embd, n_positions, vocab_size V, B, T, n_unmasked, number of gradient records,
              4 reserved zeros
  tokens      B*T int32
  targets     B*T int32, -1 = ignored
  logits      B*T*V float64
  loss        float64
  gradients   one record per parameter of model.named_parameters() (transformers' names, e.g.
              "transformer.h.0.attn.c_attn.weight", HF shapes: Conv1D weights are (in, out)):
              int32 name length, the name (UTF-8), int32 ndim, ndim x int32 dims, float64 values
"""

import argparse
import os
import struct
import subprocess
import sys
import tempfile

MAGIC = 0x46524648  # the bytes "HFRF" in a little-endian file
VERSION = 1
HEADER_INTS = 16
HEADER_BYTES = 4 * HEADER_INTS

N_LAYER, N_HEAD, N_EMBD, N_POSITIONS, VOCAB = 2, 2, 16, 8, 257
B, T = 3, 7
N_MASKED = 5
SEED = 20240611

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(ROOT, "tests", "fixtures")


def need_torch_and_transformers():
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as e:
        print(f"SKIP: {e.name} is not installed (pip install torch transformers)")
        sys.exit(77)


def batch(generator):
    import torch

    tokens = torch.randint(0, VOCAB, (B, T), generator=generator, dtype=torch.int64)
    targets = torch.randint(0, VOCAB, (B, T), generator=generator, dtype=torch.int64)
    tokens[0, 0] = VOCAB - 1
    targets[1, 2] = VOCAB - 1
    tokens[2, 3] = tokens[1, 4]  # a repeated token: its wte gradient accumulates
    masked = torch.randperm(B * T, generator=generator)[:N_MASKED]
    targets.view(-1)[masked] = -1
    return tokens, targets


def generate():
    import torch
    import torch.nn.functional as F
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(SEED)
    g = torch.Generator().manual_seed(SEED)
    config = GPT2Config(
        vocab_size=VOCAB, n_positions=N_POSITIONS, n_embd=N_EMBD, n_layer=N_LAYER, n_head=N_HEAD,
        activation_function="gelu_new", layer_norm_epsilon=1e-5, resid_pdrop=0.0, embd_pdrop=0.0,
        attn_pdrop=0.0, bos_token_id=VOCAB - 1, eos_token_id=VOCAB - 1, tie_word_embeddings=True)
    model = GPT2LMHeadModel(config).float().eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("ln_1.weight", "ln_2.weight", "ln_f.weight")):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.2 * torch.randn(p.shape, generator=g))
    hf_dir = os.path.join(FIXTURES, "hf_tiny")
    model.save_pretrained(hf_dir, safe_serialization=True)

    tokens, targets = batch(g)
    ref = GPT2LMHeadModel.from_pretrained(hf_dir, attn_implementation="eager").double().eval()
    logits = ref(tokens).logits  # (B, T, V)
    loss = F.cross_entropy(logits.reshape(-1, VOCAB), targets.reshape(-1), ignore_index=-1)
    loss.backward()
    n_unmasked = int((targets != -1).sum())
    assert n_unmasked == B * T - N_MASKED

    params = list(ref.named_parameters())
    out = bytearray()
    header = [MAGIC, VERSION, HEADER_BYTES, N_LAYER, N_HEAD, N_EMBD, N_POSITIONS, VOCAB, B, T,
              n_unmasked, len(params), 0, 0, 0, 0]
    out += struct.pack("<16i", *header)
    out += tokens.numpy().astype("<i4").tobytes()
    out += targets.numpy().astype("<i4").tobytes()
    out += logits.detach().numpy().astype("<f8").tobytes()
    out += struct.pack("<d", float(loss.detach()))
    for name, p in params:
        encoded = name.encode()
        out += struct.pack("<i", len(encoded)) + encoded
        out += struct.pack("<i", p.dim()) + struct.pack(f"<{p.dim()}i", *p.shape)
        out += p.grad.numpy().astype("<f8").tobytes()
    path = os.path.join(FIXTURES, "hf_gpt2_reference.bin")
    with open(path, "wb") as f:
        f.write(out)

    # transformers' own float32 error against its float64 result: the yardstick for ours.
    f32 = GPT2LMHeadModel.from_pretrained(hf_dir, attn_implementation="eager").float().eval()
    l32 = f32(tokens).logits.double()
    rel = float((l32 - logits).norm() / logits.norm())
    sizes = sum(os.path.getsize(os.path.join(hf_dir, f)) for f in os.listdir(hf_dir))
    print(f"wrote {path} ({len(out)} bytes) and {hf_dir} ({sizes} bytes); loss {float(loss):.6f}; "
          f"transformers fp32 logits vs fp64: relative error {rel:.2e}")


def read_fixture_batch():
    path = os.path.join(FIXTURES, "hf_gpt2_reference.bin")
    with open(path, "rb") as f:
        data = f.read()
    h = struct.unpack_from("<16i", data, 0)
    if h[0] != MAGIC or h[1] != VERSION:
        sys.exit(f"{path}: bad magic or version")
    b, t, v = h[8], h[9], h[7]
    off = HEADER_BYTES
    import numpy as np

    tokens = np.frombuffer(data, dtype="<i4", count=b * t, offset=off).reshape(b, t)
    off += 2 * b * t * 4
    logits = np.frombuffer(data, dtype="<f8", count=b * t * v, offset=off).reshape(b, t, v)
    return tokens, logits


def check_export(exported, weights, tool):
    """transformers loads our export and computes the same logits as our engine."""
    import numpy as np
    import torch
    from transformers import GPT2LMHeadModel

    tokens, _ = read_fixture_batch()
    model = GPT2LMHeadModel.from_pretrained(exported, attn_implementation="eager").float().eval()
    with torch.no_grad():
        theirs = model(torch.from_numpy(tokens.astype(np.int64))).logits.double().numpy()
    with tempfile.TemporaryDirectory() as tmp:
        tok_path, out_path = os.path.join(tmp, "tokens.bin"), os.path.join(tmp, "logits.bin")
        tokens.astype("<i4").tofile(tok_path)
        b, t = tokens.shape
        subprocess.run([tool, "logits", weights, tok_path, str(b), str(t), out_path], check=True)
        ours = np.fromfile(out_path, dtype="<f4").astype(np.float64)
    v = model.config.vocab_size
    if ours.size != b * t * v:
        sys.exit(f"FAIL: our logits have {ours.size} values, expected {b * t * v}")
    ours = ours.reshape(b, t, v)
    rel = float(np.linalg.norm(ours - theirs) / np.linalg.norm(theirs))
    ok = np.isfinite(rel) and rel < 1e-5
    print(f"{'ok  ' if ok else 'FAIL'} transformers on {exported} vs our engine on {weights}: "
          f"logits relative error {rel:.2e} (bound 1e-5)")
    return 0 if ok else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check-export", metavar="DIR", help="check a gpt-export --format hf directory")
    ap.add_argument("--weights", help="with --check-export: what DIR was exported from")
    ap.add_argument("--tool", help="with --check-export: the interop_tool binary")
    args = ap.parse_args()
    need_torch_and_transformers()
    if args.check_export:
        if not args.weights or not args.tool:
            ap.error("--check-export needs --weights and --tool")
        sys.exit(check_export(args.check_export, args.weights, args.tool))
    generate()


if __name__ == "__main__":
    main()
