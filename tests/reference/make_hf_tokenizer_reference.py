#!/usr/bin/env python3
"""Writes tests/fixtures/hf_tokenizer/: Hugging Face tokenizers' ids for the hub fixtures' tokenizers.

For each folder of tests/fixtures/hub (llama3, qwen2, qwen3, smollm2; their tokenizer.json files use
each family's real normalizer, pre-tokenizer, post-processor and added tokens) this encodes a set
of texts with Hugging Face `tokenizers` and writes FOLDER.json:

    {"tokenizers": VERSION, "cases": [{"text": ..., "ids": [...], "ids_as_text": [...],
                                       "ids_with_template": [...]}, ...]}

  ids                 Tokenizer.encode(text, add_special_tokens=False): special tokens spelled in
                      the text become their ids (the engine's SpecialTokens::kAllowed)
  ids_as_text         the same with encode_special_tokens = True: they are encoded as text
                      (SpecialTokens::kAsText, the engine's rule for plain text)
  ids_with_template   encode(text, add_special_tokens=True): the post-processor's tokens added
                      (Llama 3's <|begin_of_text|>), specials as text

The texts: held-out pieces of ../shared/data (text the fixture tokenizers were not trained on:
TinyStories, the end of the Austen file, Multi30k German validation, GSM8K test answers) and
adversarial strings (contractions in capitals, CR/LF runs, tabs and newlines, digit runs, emoji,
combining accents not in NFC, Hangul jamo, text spelling special tokens). tests/test_hf_tokenizer.cpp
compares the engine's ids with these exactly; invalid UTF-8, which a Python str cannot hold, is
tested there on its own.

Usage (from the repository root; needs PyPI's tokenizers and the shared data folder):
    .venv/bin/python tests/reference/make_hf_tokenizer_reference.py
With --check GPT_TOKENIZE [--train-tool BPE_TRAIN_TOOL] it writes nothing and instead compares the
gpt-tokenize app with `tokenizers` on megabytes of the shared data, and checks that the
tokenizer.json our save_hf writes gives the same ids in `tokenizers` (the ctest
hf_tokenizer_vs_tokenizers); exit status 0 equal, 1 a mismatch, 77 skipped (no tokenizers module
or no shared data).
"""
import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile

SKIP = 77
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
HUB = os.path.join(ROOT, "tests", "fixtures", "hub")
OUT = os.path.join(ROOT, "tests", "fixtures", "hf_tokenizer")
SHARED = os.path.normpath(os.path.join(ROOT, "..", "shared", "data"))
FOLDERS = ("llama3", "qwen2", "qwen3", "smollm2")

ADVERSARIAL = [
    "DON'T STOP. I'M HERE, YOU'RE THERE, WE'VE GOT IT, SHE'LL SEE, HE'D GO, IT'S OK",
    "don't 's 't 're 've 'm 'll 'd 'S 'T 'RE 'Ve 'LL 'D 'x ''s '' '",
    "'Sand 'TREE 'LLama 'REd 'VEry 'Mom 'Dad 'sand 'tree O'NEILL'S",
    "'\u017f long s, \u212a kelvin",
    "line one\r\nline two\r\n\r\n\r\nthree\n\n\nfour\r\r\rfive",
    "\t\ttabs\t\n\t\n  \n\n  x",
    "  \n\n  x",
    "x  \n  \t y   z    ",
    "   leading and trailing   ",
    "\n",
    " ",
    "1234567 12 123 1234 0.5 3,141,592 -42 +7 1e10 x1y2z3 \u0663\u0664\u0665 \uff11\uff12\uff13 \u00bd\u2155",
    "Emoji: \U0001F600\U0001F44D\U0001F3FD \U0001F469\u200D\U0001F4BB flags \U0001F1E9\U0001F1EA!!",
    "e\u0301 vs \u00e9, a\u0308 vs \u00e4, A\u030a\u0301, o\u0323\u0302, \u1e9b\u0323, q\u0307\u0323",
    "\u1100\u1161\u11a8 \u1100\u1161 \uac00\u11a8 \u1112\u1161\u11ab\u1100\u1173\u11af \ud55c\uad6d\uc5b4",
    "\u2126 \u212b \u0958 \u2000 \u0344 \u0f73 \u0374",
    "<|im_start|>user\nHello<|im_end|>\n<|endoftext|><|begin_of_text|><|eot_id|>",
    "text <|im_start|>spelled<|im_end|> inside, <|im_start <|begin_of_text|x <|eot_id|>.",
    "(parens) [brackets] {braces} \"quotes\" \u00abguillemets\u00bb ...!!!\n?\r\n",
    "caf\u00e9 na\u00efve \u00fcber Stra\u00dfe \u0395\u03bb\u03bb\u03b7\u03bd\u03b9\u03ba\u03ac "
    "\u0440\u0443\u0441\u0441\u043a\u0438\u0439 \u4e2d\u6587\u5b57 \u65e5\u672c\u8a9e "
    "\u0627\u0644\u0639\u0631\u0628\u064a\u0629 \u0939\u093f\u0928\u094d\u0926\u0940",
    "a\u00a0b\u2009c\u3000d\u200be\ufeff",
    "$$$ ### @@@ %%% ^^^ &&& *** ___ --- +++ === ~~~ ``` ||| \\\\ ;;; ::: ,,, ... ???",
    "",
]


def read_gz(path, limit):
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return f.read()[:limit]


def held_out_texts(limit):
    """Held-out text from the shared data folder, about `limit` characters of each source."""
    def read(rel, start=0):
        with open(os.path.join(SHARED, rel), encoding="utf-8") as f:
            return f.read()[start:start + limit]
    texts = {
        "tinystories": read("tinystories/tinystories_val.txt"),
        "austen": read("austen/austen_all.txt", start=600_000),
        "multi30k_de": read_gz(os.path.join(SHARED, "multi30k", "val.de.gz"), limit),
    }
    answers = []
    with open(os.path.join(SHARED, "gsm8k", "test.jsonl"), encoding="utf-8") as f:
        for line in f:
            answers.append(json.loads(line)["answer"])
            if sum(map(len, answers)) > limit:
                break
    texts["gsm8k"] = "\n".join(answers)[:limit]
    return texts


def load(folder):
    from tokenizers import Tokenizer
    return Tokenizer.from_file(os.path.join(HUB, folder, "tokenizer.json"))


def encode_all(tok, text):
    allowed = tok.encode(text, add_special_tokens=False).ids
    tok.encode_special_tokens = True
    as_text = tok.encode(text, add_special_tokens=False).ids
    with_template = tok.encode(text, add_special_tokens=True).ids
    tok.encode_special_tokens = False
    return allowed, as_text, with_template


def write_fixtures():
    import tokenizers
    texts = list(ADVERSARIAL)
    for name, text in held_out_texts(3000).items():
        # Cut at line ends into a few cases of a few hundred characters each.
        lines = text.splitlines(keepends=True)
        chunk = ""
        for line in lines:
            chunk += line
            if len(chunk) > 600:
                texts.append(chunk)
                chunk = ""
        if chunk:
            texts.append(chunk)
    os.makedirs(OUT, exist_ok=True)
    for folder in FOLDERS:
        tok = load(folder)
        cases = []
        for text in texts:
            ids, as_text, with_template = encode_all(tok, text)
            cases.append({"text": text, "ids": ids, "ids_as_text": as_text,
                          "ids_with_template": with_template})
        path = os.path.join(OUT, folder + ".json")
        with open(path, "w", encoding="utf-8") as f:
            json.dump({"tokenizers": tokenizers.__version__, "cases": cases}, f,
                      ensure_ascii=True, indent=None, separators=(",", ":"))
            f.write("\n")
        print(f"wrote {path}: {len(cases)} cases", file=sys.stderr)


def check(gpt_tokenize, megabytes, train_tool):
    """gpt-tokenize against tokenizers on the shared data, whole records of ~100 KB; with
    train_tool (bpe_train_tool), also what our save_hf writes of each tokenizer, loaded by
    tokenizers, against the original."""
    try:
        import tokenizers  # noqa: F401
    except ImportError:
        print("skipped: the Python module tokenizers is not installed")
        return SKIP
    if not os.path.isdir(SHARED):
        print(f"skipped: no shared data folder {SHARED}")
        return SKIP
    texts = held_out_texts(int(megabytes * 1_000_000 / 4))
    texts["adversarial"] = "\n".join(ADVERSARIAL)
    records = []
    for name, text in texts.items():
        for start in range(0, len(text), 100_000):
            records.append(text[start:start + 100_000])
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        inp = os.path.join(tmp, "input.txt")
        with open(inp, "wb") as f:
            f.write(b"\0".join(r.encode("utf-8") for r in records))
        for folder in FOLDERS:
            tok = load(folder)
            tok.encode_special_tokens = True
            expected = [e.ids for e in tok.encode_batch(records, add_special_tokens=False)]
            out = subprocess.run([gpt_tokenize, "--tokenizer", os.path.join(HUB, folder),
                                  "--input", inp, "--records", "nul", "--special", "text"],
                                 check=True, capture_output=True, text=True).stdout
            got = [list(map(int, line.split())) for line in out.splitlines()]
            if got == expected:
                print(f"{folder}: {len(records)} records, {sum(map(len, expected))} ids equal")
            else:
                failures += 1
            for k, (g, e) in enumerate(zip(got, expected)):
                if g != e:
                    i = next((i for i, (a, b) in enumerate(zip(g, e)) if a != b), min(len(g), len(e)))
                    print(f"{folder}: record {k} differs at id {i}: ours {g[max(0, i - 3):i + 5]}, "
                          f"tokenizers {e[max(0, i - 3):i + 5]}")
                    break
            if len(got) != len(expected):
                print(f"{folder}: {len(got)} records from gpt-tokenize, {len(expected)} expected")
            if train_tool:
                from tokenizers import Tokenizer
                saved = os.path.join(tmp, folder)
                subprocess.run([train_tool, "--convert", os.path.join(HUB, folder), saved],
                               check=True, capture_output=True)
                again = Tokenizer.from_file(os.path.join(saved, "tokenizer.json"))
                for text in ADVERSARIAL + records[:2]:
                    for special in (False, True):
                        again.encode_special_tokens = tok.encode_special_tokens = special
                        a = again.encode(text, add_special_tokens=special).ids
                        b = tok.encode(text, add_special_tokens=special).ids
                        if a != b:
                            failures += 1
                            print(f"{folder}: saved by save_hf, tokenizers gives other ids for "
                                  f"{text[:60]!r} (add_special_tokens={special})")
                            break
                print(f"{folder}: save_hf's tokenizer.json checked in tokenizers")
    return 1 if failures else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", metavar="GPT_TOKENIZE", help="compare this gpt-tokenize")
    parser.add_argument("--train-tool", help="bpe_train_tool, to check save_hf's output too")
    parser.add_argument("--megabytes", type=float, default=4.0)
    args = parser.parse_args()
    if args.check:
        return check(args.check, args.megabytes, args.train_tool)
    write_fixtures()
    return 0


if __name__ == "__main__":
    sys.exit(main())
