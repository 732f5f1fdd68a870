#!/usr/bin/env python3
"""Writes tests/fixtures/hub/: small Hugging Face model directories laid out as the hub ships them.

How to regenerate (from the repository root; needs PyPI's torch (CPU), transformers and tokenizers,
and the shared data folder ../shared/data for the tokenizer's training text):

    .venv/bin/pip install torch transformers tokenizers safetensors
    .venv/bin/python tests/reference/make_hub_fixtures.py

The machines that build this project cannot download published models, so each folder imitates
one: a model directory with everything a user would bring from the hub, made small:

  config.json, generation_config.json, model.safetensors   a random-init model written by
      transformers' save_pretrained in bfloat16 (2 layers, width 64), as published checkpoints are
  tokenizer.json        a byte-level BPE trained here with Hugging Face tokenizers (about 540
      merges, digits among them) whose normalizer, pre-tokenizer, post-processor, decoder and added tokens are those
      of the family's published tokenizer.json (Llama 3's Split regex with digits in runs of up
      to three, Qwen2's NFC normalizer and Split regex with single digits, SmolLM2's Digits +
      ByteLevel-regex sequence)
  tokenizer_config.json  bos/eos/pad tokens, add_bos_token where the family sets it, and the
      family's chat template (the Jinja text of the published tokenizer_config.json)
  special_tokens_map.json

Folders: llama3 (LlamaForCausalLM, GQA, tied), qwen2 (Qwen2ForCausalLM, q/k/v biases, untied),
qwen3 (Qwen3ForCausalLM, QK-norm, head_dim unlike width / heads), smollm2 (LlamaForCausalLM, tied).
The outputs are committed; tests read them without Python. What each test expects of them
(Hugging Face's ids on held-out text, transformers' chat renderings and greedy completions) is
written by that test's own generator, next to this one.
"""

import json
import os
import sys

import torch
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from tokenizers.trainers import BpeTrainer
from transformers import (LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM,
                          Qwen3Config, Qwen3ForCausalLM)

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
OUT = os.path.join(ROOT, "tests", "fixtures", "hub")
SHARED = os.path.join(ROOT, "..", "shared", "data")

# The pre-tokenizer regexes exactly as the published tokenizer.json files state them.
LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
                r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"
               r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

# Chat templates: the Jinja text of each family's published tokenizer_config.json.
CHATML_DEFAULT_SYSTEM = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\n__SYSTEM__<|im_end|>\\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
LLAMA3_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
    "+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
    "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}"
    "{% endif %}")

# Qwen3's template (reasoning and tool branches) as its tokenizer_config.json publishes it.
with open(os.path.join(ROOT, "tests", "fixtures", "chat_templates", "qwen3.jinja"),
          encoding="utf-8") as _f:
    QWEN3_TEMPLATE = _f.read()

VOCAB = 800  # BPE vocabulary before the added tokens


def training_text():
    texts = []
    for rel in ("tinyshakespeare/input.txt", "austen/austen_all.txt"):
        with open(os.path.join(SHARED, rel), encoding="utf-8") as f:
            texts.append(f.read()[:400_000])
    import gzip
    with gzip.open(os.path.join(SHARED, "multi30k", "train.de.gz"), "rt", encoding="utf-8") as f:
        texts.append(f.read()[:200_000])
    with open(os.path.join(SHARED, "gsm8k", "train.jsonl"), encoding="utf-8") as f:
        texts.append("".join(json.loads(line)["answer"] for line in f)[:200_000])  # digit runs
    return texts


def byte_level(use_regex):
    return pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=use_regex)


def make_tokenizer(family, specials):
    tok = Tokenizer(models.BPE(ignore_merges=(family == "llama3")))
    if family == "llama3":
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(LLAMA3_SPLIT), behavior="isolated", invert=False),
            byte_level(False)])
    elif family in ("qwen2", "qwen3"):
        tok.normalizer = normalizers.NFC()
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(QWEN2_SPLIT), behavior="isolated", invert=False),
            byte_level(False)])
    else:  # smollm2
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Digits(individual_digits=True), byte_level(True)])
    tok.decoder = decoders.ByteLevel()
    trainer = BpeTrainer(vocab_size=VOCAB, show_progress=False,
                         initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), special_tokens=[])
    tok.train_from_iterator(training_text(), trainer=trainer)
    tok.add_special_tokens(specials)
    if family == "llama3":
        bos = specials[0]
        tok.post_processor = processors.Sequence([
            processors.ByteLevel(trim_offsets=False),
            processors.TemplateProcessing(
                single=f"{bos} $A", pair=f"{bos} $A {bos}:1 $B:1",
                special_tokens=[(bos, tok.token_to_id(bos))])])
    else:
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    return tok


FAMILIES = {
    "llama3": dict(
        specials=["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>",
                  "<|end_header_id|>", "<|eot_id|>", "<|reserved_special_token_0|>"],
        config=dict(bos_token="<|begin_of_text|>", eos_token="<|eot_id|>", pad_token=None,
                    chat_template=LLAMA3_TEMPLATE),
        generation_eos=["<|end_of_text|>", "<|eot_id|>"],
        model=lambda v: (LlamaForCausalLM, LlamaConfig(
            vocab_size=v, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
            rms_norm_eps=1e-5, tie_word_embeddings=True, rope_theta=500000.0,
            rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                          "high_freq_factor": 4.0, "original_max_position_embeddings": 64}))),
    "qwen2": dict(
        specials=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        config=dict(bos_token=None, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                    chat_template=CHATML_DEFAULT_SYSTEM.replace(
                        "__SYSTEM__", "You are a helpful assistant.")),
        generation_eos=["<|im_end|>", "<|endoftext|>"],
        model=lambda v: (Qwen2ForCausalLM, Qwen2Config(
            vocab_size=v, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=1, max_position_embeddings=256,
            rms_norm_eps=1e-6, tie_word_embeddings=False, rope_theta=1000000.0))),
    "qwen3": dict(
        specials=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        config=dict(bos_token=None, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                    chat_template=QWEN3_TEMPLATE),
        generation_eos=["<|im_end|>", "<|endoftext|>"],
        model=lambda v: (Qwen3ForCausalLM, Qwen3Config(
            vocab_size=v, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, head_dim=24,
            max_position_embeddings=256, rms_norm_eps=1e-6, tie_word_embeddings=True,
            rope_theta=1000000.0))),
    "smollm2": dict(
        specials=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        config=dict(bos_token="<|im_start|>", eos_token="<|im_end|>", pad_token="<|im_end|>",
                    chat_template=CHATML_DEFAULT_SYSTEM.replace(
                        "__SYSTEM__",
                        "You are a helpful AI assistant named SmolLM, trained by Hugging Face")),
        generation_eos=["<|im_end|>"],
        model=lambda v: (LlamaForCausalLM, LlamaConfig(
            vocab_size=v, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=256,
            rms_norm_eps=1e-5, tie_word_embeddings=True, rope_theta=100000.0))),
}


def write_json(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, ensure_ascii=False)
        f.write("\n")


def main():
    if not os.path.isdir(SHARED):
        sys.exit("make_hub_fixtures.py: needs the shared data folder " + SHARED)
    torch.manual_seed(20261207)
    for name, fam in FAMILIES.items():
        d = os.path.join(OUT, name)
        os.makedirs(d, exist_ok=True)
        tok = make_tokenizer(name, fam["specials"])
        tok.save(os.path.join(d, "tokenizer.json"))
        vocab = tok.get_vocab_size()
        cls, cfg = fam["model"](vocab)
        ids = lambda t: tok.token_to_id(t) if t else None
        c = fam["config"]
        cfg.bos_token_id = ids(c["bos_token"])
        cfg.eos_token_id = ids(c["eos_token"])
        model = cls(cfg).to(torch.bfloat16)
        with torch.no_grad():  # weights large enough that greedy decoding is not a coin toss
            for p in model.parameters():
                if p.dim() == 2:
                    p.mul_(4.0)
        model.save_pretrained(d, safe_serialization=True)
        gen = {"bos_token_id": ids(c["bos_token"]),
               "eos_token_id": [ids(t) for t in fam["generation_eos"]]}
        if c["pad_token"]:
            gen["pad_token_id"] = ids(c["pad_token"])
        write_json(os.path.join(d, "generation_config.json"), gen)
        added = {str(ids(t)): {"content": t, "lstrip": False, "normalized": False,
                               "rstrip": False, "single_word": False, "special": True}
                 for t in fam["specials"]}
        tc = {"add_bos_token": name == "llama3", "add_eos_token": False,
              "added_tokens_decoder": added, "bos_token": c["bos_token"],
              "chat_template": c["chat_template"], "clean_up_tokenization_spaces": False,
              "eos_token": c["eos_token"], "model_max_length": 256,
              "pad_token": c["pad_token"], "tokenizer_class": "PreTrainedTokenizerFast"}
        write_json(os.path.join(d, "tokenizer_config.json"), tc)
        stm = {k: c[k] for k in ("bos_token", "eos_token", "pad_token") if c[k]}
        write_json(os.path.join(d, "special_tokens_map.json"), stm)
        print(f"{name}: vocab {vocab}, {sum(p.numel() for p in model.parameters())} parameters")


if __name__ == "__main__":
    main()
