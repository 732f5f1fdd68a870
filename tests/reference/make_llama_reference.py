#!/usr/bin/env python3
"""Writes tests/fixtures/llama_ref/: independent references for the Llama family (issue: Llama family).

How to regenerate (from the repository root; needs only PyPI, torch on the CPU and transformers):

    .venv/bin/pip install torch transformers safetensors numpy
    .venv/bin/python tests/reference/make_llama_reference.py

The outputs are committed, so CI never needs torch or transformers. Each case is a folder holding
what a user would hand the engine, a Hugging Face model directory (config.json and
model.safetensors as transformers writes them, float32 weights), and reference.safetensors with
what transformers computes from it:

  tokens, targets (int32, B x T; target -1 masks a position, 16 positions unmasked so that the
  engine's float dloss = 1/16 is exact), logits (B x T x V), loss (the mean cross-entropy over the
  unmasked targets, computed as the engine does: targets aligned with positions, no shift),
  grad.<name> for every parameter, step.<name> for every parameter after one AdamW step, and
  inv_freq (the rotary inverse frequencies transformers' rope initialisation returns).

The model runs in float64 from the float32 weights that are saved, so the reference carries no
rounding worth mentioning. The AdamW step is the engine's: gradients clipped by their global L2
norm (scale = clip / norm when norm > clip), then torch.optim.AdamW with weight decay on the 2-D
weight matrices only. Hyperparameters are in reference.safetensors' metadata.

The cases are small and awkward on purpose: GQA ratios 3 and 4 and multi-query attention, a head
size unlike width / heads, odd vocabularies, Llama 3's rope scaling, tied and untied heads, non-zero
q/k/v biases, QK-norm, norm weights away from one and weights large enough that the logits are far
from uniform.
"""

import json
import os
import sys

import torch
from safetensors.torch import save_file

import transformers
from transformers import (LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM,
                          Qwen3Config, Qwen3ForCausalLM)
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "llama_ref")
B, T = 2, 12
UNMASKED = 16
LR, BETA1, BETA2, EPS, WEIGHT_DECAY, CLIP = 1e-2, 0.9, 0.95, 1e-8, 0.1, 1.0

CASES = {
    # Llama 3 style: GQA 6:2 (ratio 3), tied head, llama3 rope scaling with a short original context
    # so that all three frequency bands occur at head_dim 8 (wavelengths 6.3, 63, 628, 6283
    # against 64 / 8 and 64 / 1).
    "llama_gqa3_llama3rope": (LlamaForCausalLM, LlamaConfig(
        vocab_size=97, hidden_size=48, intermediate_size=80, num_hidden_layers=2,
        num_attention_heads=6, num_key_value_heads=2, max_position_embeddings=128,
        rms_norm_eps=1e-5, tie_word_embeddings=True,
        rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                      "high_freq_factor": 8.0, "original_max_position_embeddings": 64},
        rope_theta=10000.0)),
    # Qwen2 style: multi-query attention (4:1), q/k/v biases, untied head, theta 1e5.
    "qwen2_mqa_bias_untied": (Qwen2ForCausalLM, Qwen2Config(
        vocab_size=61, hidden_size=32, intermediate_size=56, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=1, max_position_embeddings=64,
        rms_norm_eps=1e-6, tie_word_embeddings=False, rope_theta=100000.0)),
    # Qwen3 style: QK-norm, GQA 8:2 (ratio 4), head_dim 12 while width / heads is 4, untied.
    "qwen3_qknorm_headdim": (Qwen3ForCausalLM, Qwen3Config(
        vocab_size=83, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
        num_attention_heads=8, num_key_value_heads=2, head_dim=12, max_position_embeddings=64,
        rms_norm_eps=1e-6, tie_word_embeddings=False, rope_theta=1000000.0)),
}


def randomize(model, generator):
    """Weights well away from the default init: logits far from uniform, norms away from one."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.3 * torch.randn(p.shape, generator=generator))
            elif name.endswith("bias"):
                p.copy_(0.2 * torch.randn(p.shape, generator=generator))
            else:
                p.copy_(torch.randn(p.shape, generator=generator) / p.shape[-1] ** 0.5 * 1.5)


def batch(vocab, generator):
    tokens = torch.randint(0, vocab, (B, T), generator=generator)
    targets = torch.randint(0, vocab, (B, T), generator=generator)
    keep = torch.randperm(B * T, generator=generator)[:UNMASKED]
    mask = torch.full((B * T,), True)
    mask[keep] = False
    targets.view(-1)[mask] = -1
    return tokens, targets


def reference(model_class, config, name):
    generator = torch.Generator().manual_seed(sum(map(ord, name)))
    torch.manual_seed(0)
    model = model_class(config).float()
    randomize(model, generator)
    folder = os.path.join(OUT, name)
    os.makedirs(folder, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    for extra in ("generation_config.json",):
        path = os.path.join(folder, extra)
        if os.path.exists(path):
            os.remove(path)

    model = model.double()
    tokens, targets = batch(config.vocab_size, generator)
    logits = model(input_ids=tokens).logits
    loss = torch.nn.functional.cross_entropy(logits.view(-1, config.vocab_size), targets.view(-1),
                                             ignore_index=-1)
    loss.backward()
    named = dict(model.named_parameters())
    out = {
        "tokens": tokens.to(torch.int32),
        "targets": targets.to(torch.int32),
        "logits": logits.detach().float(),
        "loss": loss.detach().float().reshape(1),
    }
    for n, p in named.items():
        out["grad." + n] = p.grad.detach().float().clone()

    norm = torch.sqrt(sum((p.grad.double() ** 2).sum() for p in named.values()))
    if norm > CLIP:
        for p in named.values():
            p.grad.mul_(CLIP / norm)
    decay = [p for n, p in named.items() if p.dim() == 2]
    no_decay = [p for n, p in named.items() if p.dim() != 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": WEIGHT_DECAY},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=LR, betas=(BETA1, BETA2), eps=EPS)
    opt.step()
    for n, p in named.items():
        out["step." + n] = p.detach().float().clone()

    init = ROPE_INIT_FUNCTIONS[config.rope_parameters["rope_type"]] \
        if config.rope_parameters.get("rope_type", "default") != "default" else None
    if init is not None:
        inv_freq, _ = init(config, "cpu")
    else:
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        theta = config.rope_parameters["rope_theta"]
        inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim))
    out["inv_freq"] = inv_freq.float()

    metadata = {"lr": str(LR), "beta1": str(BETA1), "beta2": str(BETA2), "eps": str(EPS),
                "weight_decay": str(WEIGHT_DECAY), "grad_clip": str(CLIP),
                "grad_norm": repr(float(norm)), "torch": torch.__version__,
                "transformers": transformers.__version__}
    save_file({k: v.contiguous() for k, v in out.items()}, os.path.join(folder, "reference.safetensors"),
              metadata=metadata)
    size = sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder))
    print(f"{name}: loss {loss.item():.6f}, grad norm {float(norm):.4f}, {size} bytes", file=sys.stderr)


def main():
    for name, (model_class, config) in CASES.items():
        reference(model_class, config, name)


if __name__ == "__main__":
    main()
