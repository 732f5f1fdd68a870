#!/usr/bin/env python3
"""gpt-eval --task lm on Hugging Face Llama-family directories gives transformers' loss.

What a user does: point gpt-eval at a LlamaForCausalLM, Qwen2ForCausalLM or Qwen3ForCausalLM
directory and read the validation loss. This check builds such directories with transformers, of
shapes the committed fixtures (tests/reference/make_llama_reference.py) do not use:

  llama_gqa2_hd16      Llama, GQA 4:2 (ratio 2), head_dim 16 while width / heads is 10,
                       rope_theta 5e5, untied head, 3 layers
  llama_gqa2_hd16_bf16 the same model saved in bfloat16
  qwen2_gqa6_3_tied    Qwen2, GQA 6:3, q/k/v biases, tied head, rope_theta 1e4
  qwen3_mqa_hd24       Qwen3, multi-query (2:1), QK-norm, head_dim 24 while width / heads is 16,
                       default rope (no llama3 scaling), tied head

all with vocab_size 257 (the engine's bytes tokenizer) and weights large enough that the logits are
far from uniform. Each is saved with save_pretrained (config.json, model.safetensors,
generation_config.json, as a user gets them). Then

  1. gpt-prepare --tokenizer bytes turns a few KB of generated English-like text into shards;
  2. gpt-eval --model DIR --task lm --data 'DATA/val_*.bin' --seq-len T --device cpu --out-json
     gives the engine's loss;
  3. transformers, loading the same directory with from_pretrained in float64 (a bf16 file is
     upcast, so both sides start from the same bf16-rounded weights), scores exactly the windows
     gpt-eval scores (data/loader.cpp, ValidationSet: windows of T+1 tokens starting every T
     tokens of each shard, the last one shorter; the loss is the mean cross-entropy over every
     target of every window).

The two losses must agree to --tolerance (relative; default 1e-6 where they agree to about 1e-8,
the engine running in float32: a 1% error in rope_theta moves the loss by 1.5e-5, rms_norm_eps 1e-5
for 1e-6 by 3.5e-6) and the token and window counts must be equal. The default text gives 78
windows, the last of 24 targets, so gpt-eval's last batch of 8 rows carries two padding rows.
Prints a table: model, engine loss, transformers loss, relative difference.

Run by ctest (hf_lm_eval_vs_transformers) as
    python check_hf_lm_eval.py --bin build/apps --work DIR
Exit status: 0 all agree, 1 a mismatch, 77 skipped (torch or transformers not importable: ctest
runs the repository's .venv when there is one; `.venv/bin/pip install torch transformers`, which
scripts/python_deps.sh leaves out).
"""

import argparse
import glob
import json
import math
import os
import random
import shutil
import struct
import subprocess
import sys

SKIP = 77
VOCAB = 257  # the bytes tokenizer: 256 byte values and <|endoftext|>
SHARD_HEADER_INTS = 256
SHARD_MAGIC_U16, SHARD_VERSION_U16 = 20240520, 1

WORDS = ("the a an of to and in on with for from by at as is was were be been has had have do did "
         "not but or if then when while after before because so that this these those there here "
         "king queen river mountain city village market garden window letter morning evening "
         "winter summer ship road house field stone bread water fire light shadow voice song "
         "walks runs speaks writes reads finds keeps leaves brings carries builds opens closes "
         "quickly slowly quietly gladly rarely often never always again together alone "
         "old young bright dark small large green golden silent busy careful strange").split()


def english_like_text(n_bytes, seed):
    """Sentences of common words with punctuation and line breaks: not random bytes, so the byte
    statistics look like text."""
    rng = random.Random(seed)
    lines, size = [], 0
    while size < n_bytes:
        sentences = []
        for _ in range(rng.randint(1, 3)):
            words = [rng.choice(WORDS) for _ in range(rng.randint(4, 12))]
            words[0] = words[0].capitalize()
            if rng.random() < 0.3:
                words.insert(rng.randint(1, len(words) - 1), rng.choice(WORDS) + ",")
            sentences.append(" ".join(words) + rng.choice(".?!.."))
        line = " ".join(sentences)
        lines.append(line)
        size += len(line) + 1
    return "\n".join(lines) + "\n"


def cases(transformers):
    """name -> (model class, config, dtype to save in)."""
    import torch
    llama = transformers.LlamaConfig(
        vocab_size=VOCAB, hidden_size=40, intermediate_size=72, num_hidden_layers=3,
        num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=64,
        rms_norm_eps=1e-5, tie_word_embeddings=False, rope_theta=500000.0)
    qwen2 = transformers.Qwen2Config(
        vocab_size=VOCAB, hidden_size=36, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=6, num_key_value_heads=3, max_position_embeddings=64,
        rms_norm_eps=1e-6, tie_word_embeddings=True, rope_theta=10000.0)
    qwen3 = transformers.Qwen3Config(
        vocab_size=VOCAB, hidden_size=32, intermediate_size=40, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=1, head_dim=24, max_position_embeddings=64,
        rms_norm_eps=1e-6, tie_word_embeddings=True, rope_theta=1000000.0)
    return {
        "llama_gqa2_hd16": (transformers.LlamaForCausalLM, llama, torch.float32),
        "llama_gqa2_hd16_bf16": (transformers.LlamaForCausalLM, llama, torch.bfloat16),
        "qwen2_gqa6_3_tied": (transformers.Qwen2ForCausalLM, qwen2, torch.float32),
        "qwen3_mqa_hd24": (transformers.Qwen3ForCausalLM, qwen3, torch.float32),
    }


def save_model(model_class, config, dtype, folder, seed, randomize):
    """randomize: the fixtures' (make_llama_reference.py): logits far from uniform, norms away from
    one."""
    import torch
    torch.manual_seed(0)
    model = model_class(config).float()
    randomize(model, torch.Generator().manual_seed(seed))
    shutil.rmtree(folder, ignore_errors=True)
    model.to(dtype).save_pretrained(folder, safe_serialization=True)


def read_shard(path):
    """llm.c's shard: 256 int32 of header (magic, version, token count), then uint16 tokens."""
    with open(path, "rb") as f:
        data = f.read()
    header = struct.unpack_from(f"<{SHARD_HEADER_INTS}i", data, 0)
    if header[0] != SHARD_MAGIC_U16 or header[1] != SHARD_VERSION_U16:
        raise ValueError(f"{path}: not a uint16 token shard "
                         f"(magic {header[0]}, version {header[1]})")
    n = header[2]
    offset = SHARD_HEADER_INTS * 4
    if len(data) != offset + 2 * n:
        raise ValueError(f"{path}: {len(data)} bytes, the header says {n} tokens")
    return list(struct.unpack_from(f"<{n}H", data, offset))


def windows_of(shards, T):
    """gpt-eval's windows (data/loader.cpp, ValidationSet): from every T-th token of each shard,
    T + 1 tokens or what is left; the inputs are all but the last, the targets all but the first."""
    out = []
    for tokens in shards:
        for begin in range(0, len(tokens) - 1, T):
            out.append(tokens[begin:begin + T + 1])
    return out


def transformers_loss(model_class, folder, windows):
    """The mean cross-entropy over every target of every window, in float64 from the saved file."""
    import torch
    model = model_class.from_pretrained(folder, dtype=torch.float64, attn_implementation="eager")
    model.eval()
    assert all(p.dtype == torch.float64 for p in model.parameters())
    total, count = 0.0, 0
    by_length = {}
    for w in windows:
        by_length.setdefault(len(w), []).append(w)
    with torch.no_grad():
        for length, group in sorted(by_length.items()):
            batch = torch.tensor(group, dtype=torch.long)
            logits = model(input_ids=batch[:, :-1]).logits
            targets = batch[:, 1:]
            loss = torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="sum")
            total += loss.item()
            count += targets.numel()
    return total / count, count


def engine_loss(gpt_eval, folder, data, T, work, name):
    out_json = os.path.join(work, name + ".eval.json")
    cmd = [gpt_eval, "--model", folder, "--task", "lm", "--data", data, "--seq-len", str(T),
           "--device", "cpu", "--progress", "plain", "--out-json", out_json]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"gpt-eval failed on {name} (exit {r.returncode}):\n{r.stderr.strip()}")
    with open(out_json, encoding="utf-8") as f:
        metrics = json.load(f)["metrics"]
    return metrics["loss"], metrics["tokens"], metrics["windows"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", required=True, help="the folder holding gpt-prepare and gpt-eval")
    ap.add_argument("--work", required=True, help="a scratch directory (emptied first)")
    ap.add_argument("--seq-len", type=int, default=32, help="gpt-eval's window T")
    ap.add_argument("--text-bytes", type=int, default=5000, help="size of the generated text")
    ap.add_argument("--tolerance", type=float, default=1e-6, help="relative, on the loss")
    args = ap.parse_args()
    try:
        import torch
        import transformers
        from make_llama_reference import randomize  # beside this file; needs the same packages
    except ImportError as e:
        print(f"SKIP: {e.name} is not importable (.venv/bin/pip install torch transformers)")
        return SKIP
    torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "2"))))
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()

    gpt_prepare = os.path.join(args.bin, "gpt-prepare")
    gpt_eval = os.path.join(args.bin, "gpt-eval")
    shutil.rmtree(args.work, ignore_errors=True)
    os.makedirs(args.work)

    # ---- the data: half of the text is the validation split ----------------------------------
    text_path = os.path.join(args.work, "text.txt")
    with open(text_path, "w", encoding="utf-8") as f:
        f.write(english_like_text(args.text_bytes, seed=22))
    data_dir = os.path.join(args.work, "data")
    subprocess.run([gpt_prepare, "--tokenizer", "bytes", "--input", text_path, "--out", data_dir,
                    "--val-fraction", "0.5"], check=True, capture_output=True)
    data = os.path.join(data_dir, "val_*.bin")
    shards = [read_shard(p) for p in sorted(glob.glob(data))]
    windows = windows_of(shards, args.seq_len)
    print(f"data: {sum(map(len, shards))} tokens in {len(shards)} shard(s), {len(windows)} windows "
          f"of {args.seq_len} (last {len(windows[-1]) - 1}); uniform loss ln {VOCAB} = "
          f"{math.log(VOCAB):.4f}")

    # ---- each model: engine against transformers ----------------------------------------------
    rows, failures = [], []
    for name, (model_class, config, dtype) in cases(transformers).items():
        folder = os.path.join(args.work, name)
        seed = sum(map(ord, name.removesuffix("_bf16")))  # the bf16 file: the same model, rounded
        save_model(model_class, config, dtype, folder, seed, randomize)
        ref, ref_tokens = transformers_loss(model_class, folder, windows)
        try:
            ours, tokens, n_windows = engine_loss(gpt_eval, folder, data, args.seq_len, args.work,
                                                  name)
        except RuntimeError as e:
            failures.append(str(e))
            rows.append((name, float("nan"), ref, float("nan")))
            continue
        rel = abs(ours - ref) / abs(ref)
        rows.append((name, ours, ref, rel))
        if not rel <= args.tolerance:
            failures.append(f"{name}: gpt-eval's loss {ours!r} differs from transformers' {ref!r} "
                            f"by {rel:.3g} relative (tolerance {args.tolerance:g})")
        if tokens != ref_tokens or n_windows != len(windows):
            failures.append(f"{name}: gpt-eval scored {tokens} targets in {n_windows} windows, "
                            f"the reference {ref_tokens} in {len(windows)}")

    print(f"\n{'model':<22} {'gpt-eval loss':>14} {'transformers':>14} {'rel diff':>10}")
    for name, ours, ref, rel in rows:
        print(f"{name:<22} {ours:>14.8f} {ref:>14.8f} {rel:>10.2e}")
    print()
    for f in failures:
        print("FAIL " + f)
    print("all agree" if not failures else f"{len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
