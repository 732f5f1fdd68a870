#!/usr/bin/env python3
"""gpt-export's Hugging Face models and PEFT adapters load in transformers and PEFT with our outputs.

What a user does: fine-tune a hub model with LoRA, export the base model (--format hf) and the
adapter (--format peft), and apply the adapter with peft.PeftModel.from_pretrained; or export the
merged model (gpt-finetune --merge-lora) and load it with from_pretrained. This check builds tiny
random models with transformers (vocab 257, the engine's bytes tokenizer):

  llama_gqa   LlamaForCausalLM, GQA 4:2, head_dim 12 while width / heads is 8, untied head;
              LoRA on all seven projections (q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj)
  qwen2_bias  Qwen2ForCausalLM, q/k/v biases, GQA 6:2, tied head; LoRA on q,k,v and o_proj
  gpt2        GPT2LMHeadModel (Conv1D, fan_in_fan_out); LoRA on c_attn and the MLP's c_proj only
              (so target_modules must tell mlp.c_proj from attn.c_proj)

fine-tunes each for a few steps with gpt-finetune --task lm --method lora --merge-lora (a high
learning rate, so B is far from zero), then exports: the run's base model in f32 and bf16, the
adapter in f32 and bf16, and the merged checkpoint in f32. Checked:

  1. PEFT on the f32 base with our adapter gives our logits (interop_tool: the checkpoint with its
     adapter, CPU f32): relative error < --tolerance (1e-5);
  2. PEFT's own state dict of the loaded adapter has exactly our file's keys and values, and every
     LoRA module's scaling is alpha / r; no module has an adapter that our file lacks;
  3. the merged export, loaded with from_pretrained, gives PEFT's logits (< --tolerance), and its
     weights equal PEFT's merge_and_unload to float rounding;
  4. bf16: every tensor of the bf16 base is torch's .to(bfloat16) of the f32 one, bit for bit, and
     so is every tensor of the bf16 adapter; PEFT on them gives our logits to 3e-2;
  5. exporting the adapter file with --adapter and the Hugging Face directory as the base writes
     the same files (base_model_name_or_path: that directory, as for the run's --init).

Run by ctest (peft_export_vs_peft) as
    python check_peft_export.py --bin build/apps --tool build/tests/interop_tool --work DIR
Exit status: 0 all agree, 1 a mismatch, 77 skipped (torch, transformers or peft not importable:
`.venv/bin/pip install torch transformers peft`).
"""

import argparse
import filecmp
import glob
import json
import os
import shutil
import subprocess
import sys

from check_hf_lm_eval import english_like_text  # beside this file

SKIP = 77
VOCAB = 257
B, T = 3, 12


def cases(transformers):
    llama = transformers.LlamaConfig(
        vocab_size=VOCAB, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=12, max_position_embeddings=64,
        rms_norm_eps=1e-5, tie_word_embeddings=False, rope_theta=10000.0)
    qwen2 = transformers.Qwen2Config(
        vocab_size=VOCAB, hidden_size=36, intermediate_size=40, num_hidden_layers=2,
        num_attention_heads=6, num_key_value_heads=2, max_position_embeddings=64,
        rms_norm_eps=1e-6, tie_word_embeddings=True, rope_theta=10000.0)
    gpt2 = transformers.GPT2Config(
        vocab_size=VOCAB, n_positions=64, n_embd=16, n_layer=2, n_head=2,
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    all_llama = "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj"
    return {
        "llama_gqa": (transformers.LlamaForCausalLM, llama, all_llama),
        "qwen2_bias": (transformers.Qwen2ForCausalLM, qwen2, "q_proj,k_proj,v_proj,o_proj"),
        "gpt2": (transformers.GPT2LMHeadModel, gpt2, "qkv,fcproj"),
    }


def randomize(model, generator):
    """Weights well away from the default init: logits far from uniform, norms away from one."""
    import torch
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight") or ".ln_" in name or "ln_f" in name:
                p.copy_((1.0 + 0.3 * torch.randn(p.shape, generator=generator))
                        if name.endswith("weight") else 0.2 * torch.randn(p.shape,
                                                                          generator=generator))
            elif name.endswith("bias"):
                p.copy_(0.2 * torch.randn(p.shape, generator=generator))
            else:
                p.copy_(torch.randn(p.shape, generator=generator) / p.shape[-1] ** 0.5 * 1.5)


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{os.path.basename(cmd[0])} failed (exit {r.returncode}): "
                           f"{' '.join(cmd)}\n{r.stderr.strip()}")
    return r.stderr


def our_logits(tool, weights, tokens, work):
    import numpy as np
    tok_path, out_path = os.path.join(work, "tokens.bin"), os.path.join(work, "logits.bin")
    np.asarray(tokens, dtype="<i4").tofile(tok_path)
    run([tool, "logits", weights, tok_path, str(B), str(T), out_path])
    return np.fromfile(out_path, dtype="<f4").astype(np.float64).reshape(B, T, VOCAB)


def logits_of(model, tokens):
    import torch
    with torch.no_grad():
        return model(torch.tensor(tokens, dtype=torch.long)).logits.double().numpy()


def rel_err(a, b):
    import numpy as np
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def check_case(name, model_class, config, targets, args, failures, rows):
    import torch
    import transformers
    from peft import PeftModel
    from peft.utils import get_peft_model_state_dict
    from safetensors.torch import load_file

    def expect(ok, what):
        if not ok:
            failures.append(f"{name}: {what}")
        return ok

    work = os.path.join(args.work, name)
    os.makedirs(work)
    base_dir = os.path.join(work, "hub")
    torch.manual_seed(0)
    model = model_class(config).float()
    randomize(model, torch.Generator().manual_seed(sum(map(ord, name))))
    model.save_pretrained(base_dir, safe_serialization=True)

    bin_ = lambda tool: os.path.join(args.bin, tool)  # noqa: E731
    run_dir = os.path.join(work, "run")
    run([bin_("gpt-finetune"), "--init", base_dir, "--task", "lm", "--method", "lora",
         "--lora-targets", targets, "--lora-rank", "4", "--lora-alpha", "6",
         "--train-data", os.path.join(args.work, "data", "train_*.bin"), "--seq-len", "16",
         "--batch-size", "4", "--steps", "6", "--lr", "0.02", "--warmup-steps", "1",
         "--device", "cpu", "--threads", "2", "--merge-lora", "true", "--progress", "plain",
         "--out", run_dir])
    ckpt = os.path.join(run_dir, "latest")
    merged = sorted(glob.glob(os.path.join(run_dir, "merged", "ckpt_*")))[-1]
    out = {k: os.path.join(work, k) for k in ("base", "base_bf16", "adapter", "adapter_bf16",
                                               "adapter_from_file", "merged")}
    export = bin_("gpt-export")
    run([export, "--checkpoint", ckpt, "--format", "hf", "--out", out["base"]])
    run([export, "--checkpoint", ckpt, "--format", "hf", "--dtype", "bf16", "--out",
         out["base_bf16"]])
    run([export, "--checkpoint", ckpt, "--format", "peft", "--out", out["adapter"]])
    run([export, "--checkpoint", ckpt, "--format", "peft", "--dtype", "bf16", "--out",
         out["adapter_bf16"]])
    run([export, "--checkpoint", base_dir, "--adapter", os.path.join(run_dir, "adapter.safetensors"),
         "--format", "peft", "--out", out["adapter_from_file"]])
    run([export, "--checkpoint", merged, "--format", "hf", "--out", out["merged"]])

    tokens = torch.randint(0, VOCAB, (B, T), generator=torch.Generator().manual_seed(7)).tolist()
    ours = our_logits(args.tool, ckpt, tokens, work)
    ours_base = our_logits(args.tool, base_dir, tokens, work)

    # 1. PEFT on the f32 base with our adapter.
    load = dict(dtype=torch.float32, attn_implementation="eager")
    base = transformers.AutoModelForCausalLM.from_pretrained(out["base"], **load).eval()
    peft_model = PeftModel.from_pretrained(base, out["adapter"]).eval()
    theirs = logits_of(peft_model, tokens)
    e1 = rel_err(ours, theirs)
    expect(e1 < args.tolerance, f"PEFT's logits differ from ours by {e1:.3g} relative")
    moved = rel_err(ours, ours_base)
    expect(moved > 1e-3, f"the adapter barely changes the logits ({moved:.3g}): B is near zero?")

    # 2. PEFT's view of the adapter: the same keys and values; scaling alpha / r.
    ours_file = load_file(os.path.join(out["adapter"], "adapter_model.safetensors"))
    theirs_sd = get_peft_model_state_dict(peft_model)
    expect(set(ours_file) == set(theirs_sd),
           f"PEFT's adapter keys differ: only ours {sorted(set(ours_file) - set(theirs_sd))[:4]}, "
           f"only PEFT's {sorted(set(theirs_sd) - set(ours_file))[:4]}")
    for k in set(ours_file) & set(theirs_sd):
        expect(torch.equal(ours_file[k], theirs_sd[k].cpu()), f"{k}: PEFT holds other values")
    lora_modules = [m for m in peft_model.modules() if hasattr(m, "lora_A") and m.lora_A]
    expect(len(lora_modules) * 2 == len(ours_file),
           f"PEFT adapted {len(lora_modules)} modules, our file has {len(ours_file) // 2}")
    for m in lora_modules:
        expect(m.scaling["default"] == 6 / 4, f"scaling {m.scaling['default']} instead of 6/4")
    cfg = json.load(open(os.path.join(out["adapter"], "adapter_config.json")))
    expect(cfg["base_model_name_or_path"] == base_dir,
           f"base_model_name_or_path {cfg['base_model_name_or_path']!r}, expected {base_dir!r}")

    # 3. The merged export against PEFT, logits and weights.
    merged_model = transformers.AutoModelForCausalLM.from_pretrained(out["merged"], **load).eval()
    e3 = rel_err(logits_of(merged_model, tokens), theirs)
    expect(e3 < args.tolerance, f"the merged export's logits differ from PEFT's by {e3:.3g}")
    peft_merged = peft_model.merge_and_unload().state_dict()
    worst = 0.0
    for k, v in merged_model.state_dict().items():
        if not expect(k in peft_merged, f"merged export has {k}, PEFT's merge does not"):
            continue
        worst = max(worst, float((v - peft_merged[k]).abs().max() / v.abs().max().clamp(min=1e-30)))
    expect(worst < 1e-6, f"merged weights differ from PEFT's merge_and_unload by {worst:.3g}")

    # 4. bf16: torch's rounding bit for bit; PEFT on the bf16 files near our logits.
    f32_sd = load_file(os.path.join(out["base"], "model.safetensors"))
    bf16_sd = load_file(os.path.join(out["base_bf16"], "model.safetensors"))
    for sd_f32, sd_bf16, what in ((f32_sd, bf16_sd, "base"),
                                  (ours_file, load_file(os.path.join(out["adapter_bf16"],
                                                                     "adapter_model.safetensors")),
                                   "adapter")):
        expect(set(sd_f32) == set(sd_bf16), f"bf16 {what} has other tensors")
        bad = [k for k in sd_f32 if k in sd_bf16 and not (
            sd_bf16[k].dtype == torch.bfloat16 and torch.equal(sd_f32[k].to(torch.bfloat16),
                                                               sd_bf16[k]))]
        expect(not bad, f"bf16 {what}: not torch's rounding of the f32 export: {bad[:3]}")
    bf16_cfg = json.load(open(os.path.join(out["base_bf16"], "config.json")))
    expect(bf16_cfg.get("torch_dtype") == "bfloat16", "bf16 config.json: torch_dtype")
    base16 = transformers.AutoModelForCausalLM.from_pretrained(out["base_bf16"], **load).eval()
    e4 = rel_err(ours, logits_of(PeftModel.from_pretrained(base16, out["adapter_bf16"]), tokens))
    expect(e4 < 3e-2, f"PEFT on the bf16 exports differs from our f32 logits by {e4:.3g}")

    # 5. --adapter FILE with the hub directory as the base: the same files.
    for f in ("adapter_config.json", "adapter_model.safetensors"):
        expect(filecmp.cmp(os.path.join(out["adapter"], f),
                           os.path.join(out["adapter_from_file"], f), shallow=False),
               f"--adapter FILE wrote another {f}")
    rows.append((name, e1, e3, worst, e4))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", required=True, help="the folder holding gpt-prepare, gpt-finetune, "
                    "gpt-export")
    ap.add_argument("--tool", required=True, help="tests' interop_tool (our logits)")
    ap.add_argument("--work", required=True, help="a scratch directory (emptied first)")
    ap.add_argument("--tolerance", type=float, default=1e-5, help="relative, on the logits")
    args = ap.parse_args()
    try:
        import numpy  # noqa: F401
        import peft  # noqa: F401
        import safetensors  # noqa: F401
        import torch
        import transformers
    except ImportError as e:
        print(f"SKIP: {e.name} is not importable (.venv/bin/pip install torch transformers peft)")
        return SKIP
    torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "2"))))
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()

    shutil.rmtree(args.work, ignore_errors=True)
    os.makedirs(args.work)
    text = os.path.join(args.work, "text.txt")
    with open(text, "w", encoding="utf-8") as f:
        f.write(english_like_text(6000, seed=23))
    run([os.path.join(args.bin, "gpt-prepare"), "--tokenizer", "bytes", "--input", text,
         "--out", os.path.join(args.work, "data"), "--val-fraction", "0.1"])

    failures, rows = [], []
    for name, (model_class, config, targets) in cases(transformers).items():
        try:
            check_case(name, model_class, config, targets, args, failures, rows)
        except RuntimeError as e:
            failures.append(f"{name}: {e}")
    print(f"\n{'model':<12} {'PEFT vs ours':>13} {'merged vs PEFT':>15} {'merge weights':>14} "
          f"{'bf16 vs ours':>13}")
    for name, e1, e3, worst, e4 in rows:
        print(f"{name:<12} {e1:>13.2e} {e3:>15.2e} {worst:>14.2e} {e4:>13.2e}")
    print()
    for f in failures:
        print("FAIL " + f)
    print("all agree" if not failures else f"{len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
