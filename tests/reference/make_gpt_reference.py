#!/usr/bin/env python3
"""Writes tests/fixtures/gpt_reference.bin: an independent PyTorch reference for the GPT model.

How to regenerate (from the repository root; needs only PyPI):

    python3 -m venv .venv && .venv/bin/pip install torch numpy
    .venv/bin/python tests/reference/make_gpt_reference.py

The fixture is committed, so CI never needs torch: tests/test_reference.cpp loads it into the C++
model and compares logits, loss, every parameter gradient and a few AdamW steps.

This file shares no code with the engine. It is a small nanoGPT-style GPT-2 written with torch.nn,
evaluated in float64 (model.double()) so that the reference itself carries no rounding worth
mentioning; the C++ float32 run is then compared at fp32 tolerances and the C++ float64 run at ~1e-10.

What it mirrors (see models/gpt.h and docs/testing.md):
  * pre-LN blocks, learned positions, tied wte / lm head, GELU (tanh approximation), LayerNorm eps 1e-5,
    causal attention with scale 1/sqrt(head_size) over packed [q | k | v] projections;
  * the vocabulary padded to a multiple of 128: wte has Vp rows, logits have Vp columns, and the loss
    only sees the first V of them. The padded rows of wte are filled with random values here (the
    engine keeps them at zero) so that the test proves they cannot leak into the loss: their gradient
    must be exactly zero;
  * loss = mean cross-entropy over the targets that are not -1 (ignore_index);
  * AdamW as torch.optim.AdamW (decoupled weight decay, bias correction), with weight decay only on the
    2-D weight matrices wte, qkv_w, attproj_w, fc_w, fcproj_w (not wpe, biases or LayerNorm), after
    clipping the gradients by their global L2 norm: scale = clip / norm when norm > clip. That is
    torch.nn.utils.clip_grad_norm_ without its "+ 1e-6" in the denominator (written out below), the
    rule llm.c and our engine use; the difference would be a ~1e-6 relative change of the scale.

All hyperparameters are stored as float32 in the fixture (the engine takes them as float), and the
reference uses exactly those float32 values promoted to float64, so no difference comes from there.
The number of unmasked targets is a power of two (16) so that the engine's float dloss = 1/16 is
exact as well.
"""

import math
import os
import struct
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

# ---- fixture format (keep in sync with tests/test_reference.cpp and docs/testing.md) ----------------
MAGIC = 0x46455247  # the bytes "GREF" in a little-endian file
VERSION = 1
HEADER_INTS = 16  # int32 slots
HEADER_FLOATS = 8  # float32 slots
HEADER_BYTES = 4 * (HEADER_INTS + HEADER_FLOATS)

PARAM_NAMES = [
    "wte", "wpe", "ln1_w", "ln1_b", "qkv_w", "qkv_b", "attproj_w", "attproj_b",
    "ln2_w", "ln2_b", "fc_w", "fc_b", "fcproj_w", "fcproj_b", "lnf_w", "lnf_b",
]
DECAYED = {"wte", "qkv_w", "attproj_w", "fc_w", "fcproj_w"}

# ---- the tiny model and batch ------------------------------------------------------------------------
N_LAYER, N_HEAD, N_EMBD, MAX_SEQ, VOCAB = 2, 2, 16, 8, 67
PADDED_VOCAB = (VOCAB + 127) // 128 * 128  # 128
B, T = 3, 7  # T < MAX_SEQ: the last wpe row must get a zero gradient
N_MASKED = 5  # B*T - N_MASKED = 16 unmasked targets
N_STEPS = 5
SEED = 20240607


def f32(x):
    """The float32 value nearest to x, as a Python float (exact in float64)."""
    return float(np.float32(x))


LR = f32(1e-2)
WEIGHT_DECAY = f32(0.1)
GRAD_CLIP = f32(2.2)  # the first two steps clip, the later ones do not
BETA1 = f32(0.9)
BETA2 = f32(0.95)
ADAM_EPS = f32(1e-8)
LN_EPS = 1e-5


class CausalSelfAttention(nn.Module):
    def __init__(self, n_embd, n_head):
        super().__init__()
        self.n_head = n_head
        self.c_attn = nn.Linear(n_embd, 3 * n_embd)
        self.c_proj = nn.Linear(n_embd, n_embd)

    def forward(self, x):
        b, t, c = x.shape
        hs = c // self.n_head
        q, k, v = self.c_attn(x).split(c, dim=2)
        # (b, t, c) -> (b, nh, t, hs): head h owns channels [h*hs, (h+1)*hs) of q, k and v.
        q = q.view(b, t, self.n_head, hs).transpose(1, 2)
        k = k.view(b, t, self.n_head, hs).transpose(1, 2)
        v = v.view(b, t, self.n_head, hs).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(hs)
        causal = torch.tril(torch.ones(t, t, dtype=torch.bool))
        att = att.masked_fill(~causal, float("-inf"))
        att = torch.softmax(att, dim=-1)
        y = (att @ v).transpose(1, 2).contiguous().view(b, t, c)
        return self.c_proj(y)


class MLP(nn.Module):
    def __init__(self, n_embd):
        super().__init__()
        self.c_fc = nn.Linear(n_embd, 4 * n_embd)
        self.c_proj = nn.Linear(4 * n_embd, n_embd)

    def forward(self, x):
        return self.c_proj(F.gelu(self.c_fc(x), approximate="tanh"))


class Block(nn.Module):
    def __init__(self, n_embd, n_head):
        super().__init__()
        self.ln_1 = nn.LayerNorm(n_embd, eps=LN_EPS)
        self.attn = CausalSelfAttention(n_embd, n_head)
        self.ln_2 = nn.LayerNorm(n_embd, eps=LN_EPS)
        self.mlp = MLP(n_embd)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        x = x + self.mlp(self.ln_2(x))
        return x


class GPT(nn.Module):
    def __init__(self):
        super().__init__()
        self.wte = nn.Embedding(PADDED_VOCAB, N_EMBD)
        self.wpe = nn.Embedding(MAX_SEQ, N_EMBD)
        self.h = nn.ModuleList([Block(N_EMBD, N_HEAD) for _ in range(N_LAYER)])
        self.ln_f = nn.LayerNorm(N_EMBD, eps=LN_EPS)

    def forward(self, idx, targets):
        t = idx.shape[1]
        x = self.wte(idx) + self.wpe(torch.arange(t))
        for block in self.h:
            x = block(x)
        logits = self.ln_f(x) @ self.wte.weight.t()  # tied weights: (b, t, Vp)
        # Only the first VOCAB columns are real tokens; the padding never enters the softmax.
        loss = F.cross_entropy(logits[..., :VOCAB].reshape(-1, VOCAB), targets.reshape(-1),
                               ignore_index=-1)
        return logits, loss

    # The engine's parameter tensors, in its order, as views of this module's parameters (per-layer
    # tensors are stacked over layers).
    def engine_tensors(self, source):
        layer = lambda f: torch.stack([source(f(blk)) for blk in self.h])
        return {
            "wte": source(self.wte.weight),
            "wpe": source(self.wpe.weight),
            "ln1_w": layer(lambda b: b.ln_1.weight),
            "ln1_b": layer(lambda b: b.ln_1.bias),
            "qkv_w": layer(lambda b: b.attn.c_attn.weight),
            "qkv_b": layer(lambda b: b.attn.c_attn.bias),
            "attproj_w": layer(lambda b: b.attn.c_proj.weight),
            "attproj_b": layer(lambda b: b.attn.c_proj.bias),
            "ln2_w": layer(lambda b: b.ln_2.weight),
            "ln2_b": layer(lambda b: b.ln_2.bias),
            "fc_w": layer(lambda b: b.mlp.c_fc.weight),
            "fc_b": layer(lambda b: b.mlp.c_fc.bias),
            "fcproj_w": layer(lambda b: b.mlp.c_proj.weight),
            "fcproj_b": layer(lambda b: b.mlp.c_proj.bias),
            "lnf_w": source(self.ln_f.weight),
            "lnf_b": source(self.ln_f.bias),
        }


def init_random(model, gen):
    """Random weights with a visible signal (std 0.1-0.3), rounded to float32 so that the C++ model
    holds exactly the same values. LayerNorm weights around 1, everything else around 0."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "ln" in name and name.endswith("weight"):
                vals = 1.0 + 0.1 * torch.randn(p.shape, generator=gen, dtype=torch.float64)
            elif name.endswith("bias"):
                vals = 0.1 * torch.randn(p.shape, generator=gen, dtype=torch.float64)
            elif name.startswith("wte") or name.startswith("wpe"):
                vals = 0.3 * torch.randn(p.shape, generator=gen, dtype=torch.float64)
            else:
                fan_in = p.shape[1]
                vals = (1.0 / math.sqrt(fan_in)) * torch.randn(p.shape, generator=gen,
                                                               dtype=torch.float64)
            p.copy_(vals.to(torch.float32).to(torch.float64))


def make_batch(gen):
    tokens = torch.randint(0, VOCAB, (B, T), generator=gen)
    targets = torch.randint(0, VOCAB, (B, T), generator=gen)
    # Edge cases on purpose: the last real token id as input and as target, a token repeated
    # (its wte gradient row accumulates several contributions).
    tokens[0, 0] = VOCAB - 1
    targets[1, 2] = VOCAB - 1
    tokens[2, 5] = tokens[0, 3]
    masked = torch.randperm(B * T, generator=gen)[:N_MASKED]
    targets.view(-1)[masked] = -1
    assert int((targets != -1).sum()) == B * T - N_MASKED
    return tokens.to(torch.int32), targets.to(torch.int32)


def adamw_steps(model, tokens, targets):
    """N_STEPS AdamW steps on the same batch; returns the losses before each step, the gradient
    norms before clipping and the parameters after the last step."""
    decay = [p for n, p in model.named_parameters() if p.dim() == 2 and not n.startswith("wpe")]
    no_decay = [p for n, p in model.named_parameters() if not (p.dim() == 2 and not n.startswith("wpe"))]
    assert len(decay) == 1 + 4 * N_LAYER  # wte + qkv, attproj, fc, fcproj per layer
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": WEIGHT_DECAY},
         {"params": no_decay, "weight_decay": 0.0}],
        lr=LR, betas=(BETA1, BETA2), eps=ADAM_EPS, foreach=False)
    losses, norms = [], []
    for _ in range(N_STEPS):
        opt.zero_grad(set_to_none=False)
        _, loss = model(tokens.long(), targets.long())
        loss.backward()
        norm = math.sqrt(sum(float((p.grad ** 2).sum()) for p in model.parameters()))
        if norm > GRAD_CLIP:
            for p in model.parameters():
                p.grad.mul_(GRAD_CLIP / norm)
        opt.step()
        losses.append(loss.item())
        norms.append(norm)
    return losses, norms


def run_reference(dtype):
    """Everything the fixture holds, computed with torch in `dtype`."""
    gen = torch.Generator().manual_seed(SEED)
    model = GPT().to(dtype)
    init_random(model, gen)
    tokens, targets = make_batch(gen)

    r = {"tokens": tokens, "targets": targets}
    r["params"] = model.engine_tensors(lambda p: p.detach().clone())
    logits, loss = model(tokens.long(), targets.long())
    loss.backward()
    r["logits"] = logits.detach()
    r["loss"] = loss.item()
    r["grads"] = model.engine_tensors(lambda p: p.grad.detach().clone())
    r["step_losses"], r["step_norms"] = adamw_steps(model, tokens, targets)
    r["final"] = model.engine_tensors(lambda p: p.detach().clone())
    return r


def rel_error(a, ref):
    a, ref = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(ref, dtype=torch.float64)
    return float((a - ref).norm() / ref.norm())


def main():
    torch.manual_seed(0)  # nothing should draw from the global generator, but be safe
    ref = run_reference(torch.float64)
    grads, loss = ref["grads"], ref["loss"]
    assert float(grads["wte"][VOCAB:].abs().max()) == 0.0, "padded rows must get no gradient"
    assert float(grads["wpe"][T:].abs().max()) == 0.0
    assert abs(ref["step_losses"][0] - loss) <= 1e-12 * abs(loss)
    clipped = [n > GRAD_CLIP for n in ref["step_norms"]]
    assert any(clipped) and not all(clipped), f"want clipped and unclipped steps: {ref['step_norms']}"

    out = bytearray()
    ints = [MAGIC, VERSION, HEADER_BYTES, N_LAYER, N_HEAD, N_EMBD, MAX_SEQ, VOCAB, PADDED_VOCAB,
            B, T, N_STEPS, B * T - N_MASKED, 0, 0, 0]
    floats = [LR, WEIGHT_DECAY, GRAD_CLIP, BETA1, BETA2, ADAM_EPS, LN_EPS, 0.0]
    assert len(ints) == HEADER_INTS and len(floats) == HEADER_FLOATS
    out += struct.pack(f"<{HEADER_INTS}i{HEADER_FLOATS}f", *ints, *floats)

    def put(array, dtype):
        out.extend(np.ascontiguousarray(array, dtype=np.dtype(dtype).newbyteorder("<")).tobytes())

    put(ref["tokens"].numpy(), np.int32)
    put(ref["targets"].numpy(), np.int32)
    for n in PARAM_NAMES:
        put(ref["params"][n].numpy(), np.float32)  # exact: init_random rounded them to float32
    put(ref["logits"].numpy(), np.float64)
    put([loss], np.float64)
    for n in PARAM_NAMES:
        put(grads[n].numpy(), np.float64)
    put(ref["step_losses"], np.float64)
    put(ref["step_norms"], np.float64)
    for n in PARAM_NAMES:
        put(ref["final"][n].numpy(), np.float64)

    path = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                                         "fixtures", "gpt_reference.bin"))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "wb") as f:
        f.write(out)
    os.replace(path + ".tmp", path)

    # torch's own float32 run against the float64 reference: the scale of fp32 rounding that the
    # C++ tolerances (docs/testing.md) must leave room for.
    r32 = run_reference(torch.float32)
    print(f"torch {torch.__version__}: wrote {path} ({len(out)} bytes)")
    print(f"loss {loss:.12f} (ln V = {math.log(VOCAB):.4f}); torch fp32 rel err "
          f"{abs(r32['loss'] - loss) / loss:.2e}, logits {rel_error(r32['logits'], ref['logits']):.2e}")
    print("AdamW losses", " ".join(f"{x:.10f}" for x in ref["step_losses"]),
          f"(fp32 rel err {rel_error(r32['step_losses'], ref['step_losses']):.2e})")
    print("grad norms  ", " ".join(f"{x:.6f}" for x in ref["step_norms"]), f"(clip {GRAD_CLIP})")
    print(f"  {'tensor':10s} {'shape':16s} {'|grad|':>9s}  fp32 rel err: grad, after {N_STEPS} steps")
    for n in PARAM_NAMES:
        print(f"  {n:10s} {str(tuple(ref['params'][n].shape)):16s} {float(grads[n].norm()):9.3e}"
              f"  {rel_error(r32['grads'][n], grads[n]):.2e}  {rel_error(r32['final'][n], ref['final'][n]):.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
