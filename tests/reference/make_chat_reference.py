#!/usr/bin/env python3
"""Writes tests/fixtures/chat_reference.json: transformers' renderings of conversations with each
chat template the engine recognises, which tests/test_chat_template.cpp compares exactly.

How to regenerate (from the repository root; needs PyPI's transformers, tokenizers and jinja2):

    .venv/bin/python tests/reference/make_chat_reference.py

Templates: the chat_template of each hub fixture (tests/fixtures/hub/*/tokenizer_config.json:
Llama 3, Qwen2 and SmolLM2 ChatML with their default system prompts, Qwen3 with its reasoning
branches) and the template-only fixtures in tests/fixtures/chat_templates/ (OpenHermes' ChatML
without a default system prompt, Llama 3.2 Instruct), rendered with a hub fixture's tokenizer for
the bos/eos tokens. For each conversation: apply_chat_template(tokenize=False) with
add_generation_prompt False and True; for the hub fixtures also the ids of
apply_chat_template(tokenize=True) (transformers tokenizes the rendered text without adding
special tokens, so Llama 3's bos appears once: the template writes it). Llama 3.2's template dates
its system header with today's date (strftime_now); it is rendered with date_string="@DATE@" and
the test puts today's date in.

Greedy completions (tests/cli/chat.sh compares gpt-generate --chat --temperature 0 with them): for
each hub fixture and each entry of CHATS, the prompt ids of apply_chat_template(
add_generation_prompt=True) and transformers' greedy generate() ids up to the first eos id of
generation_config.json (the eos itself left out), MAX_NEW tokens at most. The model runs in float32
on the bf16 weights of model.safetensors (upcast exactly), as the engine computes on the CPU.
"""

import json
import os

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
FIX = os.path.join(ROOT, "tests", "fixtures")

CONVERSATIONS = [
    [{"role": "user", "content": "Hello!"}],
    [{"role": "system", "content": "You answer in one word."},
     {"role": "user", "content": "What colour is the sky?"},
     {"role": "assistant", "content": "Blue."}],
    [{"role": "user", "content": "What is 2 + 2?"},
     {"role": "assistant", "content": "4"},
     {"role": "user", "content": "And 3 + 3?"},
     {"role": "assistant", "content": "6, because 3 + 3 = 6."}],
    [{"role": "system", "content": "  Be brief.\n"},
     {"role": "user", "content": "  spaces around me \n"},
     {"role": "assistant", "content": " \t answer with spaces.  \n\n"}],
    [{"role": "user", "content": "Grüße, 世界! café\u00a0"},
     {"role": "assistant", "content": "\u3000Ça va très bien — merci. 🙂\u2003"}],
    [{"role": "user", "content": "Think first."},
     {"role": "assistant", "content": "<think>\nLet me see.\n</think>\n\nDone."},
     {"role": "user", "content": "Again, <|im_end|> as text."},
     {"role": "assistant", "content": "<think>\n\nShort.\n\n</think>\n\n\nAgain done."}],
    [{"role": "user", "content": "First"},
     {"role": "assistant", "content": "Reply"},
     {"role": "system", "content": "A later system turn."},
     {"role": "user", "content": "Last"}],
]


# (system message or None, user message) for gpt-generate --system / --chat.
CHATS = [(None, "What is 2 + 2?"), ("You are brief.", "Say hello to the world.")]
MAX_NEW = 24


def greedy(directory, tok):
    model = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32)
    model.eval()
    eos = model.generation_config.eos_token_id
    eos = eos if isinstance(eos, list) else [eos]
    rows = []
    for system, user in CHATS:
        conv = ([{"role": "system", "content": system}] if system else []) + [
            {"role": "user", "content": user}]
        prompt = tok.apply_chat_template(conv, tokenize=True, add_generation_prompt=True)
        prompt = list(prompt["input_ids"] if hasattr(prompt, "keys") else prompt)
        with torch.no_grad():
            out = model.generate(torch.tensor([prompt]), max_new_tokens=MAX_NEW, do_sample=False,
                                 eos_token_id=eos, pad_token_id=eos[0])
        new = out[0, len(prompt):].tolist()
        for i, t in enumerate(new):
            if t in eos:
                new = new[:i]
                break
        rows.append({"system": system, "user": user, "prompt_ids": prompt, "ids": new,
                     "text": tok.decode(new)})
    return rows


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def main():
    out = {"conversations": CONVERSATIONS, "templates": {}}
    for name in ("llama3", "qwen2", "qwen3", "smollm2"):
        d = os.path.join(FIX, "hub", name)
        tok = AutoTokenizer.from_pretrained(d)
        entry = {"source": "hub/" + name, "text": [], "ids": []}
        for conv in CONVERSATIONS:
            entry["text"].append([tok.apply_chat_template(conv, tokenize=False,
                                                          add_generation_prompt=g)
                                  for g in (False, True)])
            ids = []
            for g in (False, True):
                r = tok.apply_chat_template(conv, tokenize=True, add_generation_prompt=g)
                ids.append(list(r["input_ids"] if isinstance(r, dict) or hasattr(r, "keys")
                                else r))
            entry["ids"].append(ids)
        entry["greedy"] = greedy(d, tok)
        out["templates"][name] = entry
    for name, base, extra in (("chatml", "qwen2", {}), ("qwen2.5", "qwen2", {}),
                              ("llama3.2", "llama3", {"date_string": "@DATE@"})):
        tok = AutoTokenizer.from_pretrained(os.path.join(FIX, "hub", base))
        template = read(os.path.join(FIX, "chat_templates", name + ".jinja"))
        entry = {"source": "chat_templates/" + name + ".jinja", "bos_token": tok.bos_token or "",
                 "text": []}
        for conv in CONVERSATIONS:
            entry["text"].append([tok.apply_chat_template(conv, chat_template=template,
                                                          tokenize=False,
                                                          add_generation_prompt=g, **extra)
                                  for g in (False, True)])
        out["templates"][name] = entry
    path = os.path.join(FIX, "chat_reference.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(out, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print("wrote", path)


if __name__ == "__main__":
    main()
