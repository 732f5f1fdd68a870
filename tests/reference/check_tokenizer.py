#!/usr/bin/env python3
"""Cross-checks our byte-level BPE (the gpt-tokenize app) against independent references.

1. tiktoken's GPT-2 encoding, built from the local encoder.json (no download), on
   - the Unicode classes behind GPT-2's regex: every code point's letter/number/space class, from
     tiktoken's own regex engine, against data/unicode_table.inc;
   - every code point in a few contexts (encoded end to end);
   - over 1 MB of real text (tinyshakespeare, tinystories, the German side of multi30k), as whole
     files, ordinary and with <|endoftext|> between documents;
   - 100,000 random strings mixing scripts, digits, punctuation, white-space runs and emoji.
2. Hugging Face `tokenizers`: a tokenizer trained by our trainer (bpe_train_tool) must load with
   tokenizers.Tokenizer.from_file and give the same ids as ours; GPT-2 saved by our save_hf must
   give tiktoken's ids in `tokenizers`.
3. gpt-tokenize --decode gives back the input, line by line.

Exit status: 0 all equal, 1 a mismatch, 77 skipped (no tiktoken, or ../shared/data absent).
Runs under the repository's .venv interpreter when there is one (scripts/python_deps.sh makes it).
"""
import argparse
import gzip
import json
import os
import random
import subprocess
import sys
import time

SKIP = 77
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))

GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def reexec_in_venv():
    venv_python = os.path.join(ROOT, ".venv", "bin", "python")
    if os.path.exists(venv_python) and os.path.realpath(sys.prefix) != os.path.realpath(
            os.path.join(ROOT, ".venv")):
        os.execv(venv_python, [venv_python] + sys.argv)


def gpt2_byte_decoder():
    """GPT-2's bytes_to_unicode(), inverted: printable stand-in character -> byte."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


def tiktoken_gpt2(gpt2_dir):
    import tiktoken
    decoder = gpt2_byte_decoder()
    with open(os.path.join(gpt2_dir, "encoder.json"), encoding="utf-8") as f:
        encoder = json.load(f)
    ranks = {bytes(decoder[ch] for ch in token): rank for token, rank in encoder.items()
             if token != "<|endoftext|>"}
    return tiktoken.Encoding(name="gpt2_from_local_files", pat_str=GPT2_PATTERN,
                             mergeable_ranks=ranks, special_tokens={"<|endoftext|>": 50256})


class Report:
    def __init__(self):
        self.failures = 0

    def check(self, name, compared, mismatches, examples=()):
        status = "ok" if mismatches == 0 else "MISMATCH"
        print(f"  {name}: {compared}, mismatches {mismatches} [{status}]", flush=True)
        for e in list(examples)[:5]:
            print(f"    e.g. {e}")
        if mismatches:
            self.failures += 1


def run_tool(args, data):
    p = subprocess.run(args, input=data, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {p.stderr.decode(errors='replace')}")
    return p.stdout


def ours_whole(tool, tokenizer, text, special):
    out = run_tool([tool, "--tokenizer", tokenizer, "--records", "whole", "--special", special],
                   text.encode("utf-8", "surrogatepass"))
    return [int(x) for x in out.split()]


def ours_records(tool, tokenizer, strings, special):
    data = b"".join(s.encode("utf-8") + b"\0" for s in strings)
    out = run_tool([tool, "--tokenizer", tokenizer, "--records", "nul", "--special", special,
                    "--threads", "0"], data)
    lines = out.decode().split("\n")
    assert lines[-1] == "", "output must end with a newline"
    lines = lines[:-1]
    if len(lines) != len(strings):
        raise RuntimeError(f"gpt-tokenize returned {len(lines)} records for {len(strings)} inputs")
    return [[int(x) for x in line.split()] for line in lines]


def first_difference(a, b):
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return min(len(a), len(b))


def compare_lists(report, name, texts, ours, ref):
    bad = [i for i in range(len(texts)) if ours[i] != ref[i]]
    examples = [f"{texts[i][:60]!r}: ours {ours[i][:12]} ref {ref[i][:12]}" for i in bad]
    report.check(name, f"{len(texts)} strings", len(bad), examples)


def compare_whole(report, name, text, ours, ref):
    mismatch = 0 if ours == ref else 1
    examples = []
    if mismatch:
        i = first_difference(ours, ref)
        examples.append(f"first difference at token {i}: ours {ours[i:i + 8]} ref {ref[i:i + 8]}")
    report.check(name, f"{len(text.encode('utf-8'))} bytes, {len(ref)} tokens", mismatch, examples)


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------

def corpora(data_dir):
    out = {}
    for name, rel in [("tinyshakespeare", "tinyshakespeare/input.txt"),
                      ("tinystories", "tinystories/tinystories_val.txt"),
                      ("multi30k.de", "multi30k/train.de.gz")]:
        path = os.path.join(data_dir, rel)
        opener = gzip.open if path.endswith(".gz") else open
        with opener(path, "rb") as f:
            out[name] = f.read().decode("utf-8")
    return out


def random_strings(count, seed):
    rng = random.Random(seed)
    pools = {
        "latin": "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
        "accents": "éèêëàâäôöûüçñÉÀÖÜßøåæœ",
        "digits": "0123456789",
        "other_digits": "٠١٢٣٤٥٦٧٨٩०१२३४५६७८९０１２３４５６７８９ⅠⅡⅢⅣ½¼²³",
        "punct": "!\"#$%&()*+,-./:;<=>?@[\\]^_`{|}~«»“”‘’—–…·•",
        "apostrophe": "'",
        "space": " ",
        "ws": " \t\n\r\x0b\x0c\x85\xa0\u1680\u2000\u2009\u200a\u2028\u2029\u202f\u205f\u3000",
        "nonws": "\u200b\u200c\u200d\u2060\ufeff\x1c\x1d\x1e\x1f",  # not White_Space
        "cjk": "東京大阪日本語中文字汉字漢字한국어ひらがなカタカナ",
        "cyrillic_greek": "абвгдеёжзийклмнопрстуфхцчшщъыьэюяΑΒΓΔαβγδεζηθ",
        "arabic_hebrew": "مرحبابالعالمשלוםעולם",
        "indic_thai": "नमस्ते दुनियाสวัสดีชาวโลก",
        "combining": "\u0301\u0300\u0308\u0327\u0323\u20dd\u0489",
        "emoji": ["😀", "👍", "👍🏽", "🤖", "❤️", "👨‍👩‍👧", "🏳️‍🌈", "🇩🇪", "✨", "🎉"],
        "contractions": ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'LL", "''"],
        "words": ["the", " the", "Hello", " world", "don't", "it's", "1234567", " 2024", "...",
                  "<|endoftext|>", "<|endoftext", "endoftext|>", "http://x.y/z?q=1", "  ", "\n\n"],
    }
    names = list(pools)

    def random_char():
        r = rng.random()
        if r < 0.6:
            c = rng.randrange(0x80, 0x30000)
        else:
            c = rng.randrange(0x80, 0x110000)
        if 0xD800 <= c < 0xE000:
            c = 0x41
        return chr(c)

    out = []
    for i in range(count):
        if i % 500 == 499:  # an occasional long word or long run (the heap merge path)
            if rng.random() < 0.5:
                letters = pools["latin"] + pools["accents"] + pools["cyrillic_greek"]
                out.append("".join(rng.choice(letters) for _ in range(rng.randrange(60, 3000))))
            else:
                unit = rng.choice(["a", "ab", "x1", "!?", " ", "東", "😀", "é"])
                out.append(unit * rng.randrange(50, 1500))
            continue
        length = rng.randrange(0, 25)
        parts = []
        focus = rng.sample(names, rng.randrange(1, 4))
        for _ in range(length):
            if rng.random() < 0.05:
                parts.append(random_char())
                continue
            pool = pools[rng.choice(focus)]
            item = rng.choice(pool)
            parts.append(item * (rng.randrange(1, 5) if rng.random() < 0.2 else 1))
        out.append("".join(parts).replace("\0", ""))
    return out


def every_code_point_text():
    """Each code point (all of planes 0-3 and 14, a sample of the others) in a few contexts, so a
    wrong letter/number/space class changes the pieces."""
    cps = [c for c in range(0x40000) if not 0xD800 <= c < 0xE000 and c != 0]
    cps += list(range(0xE0000, 0xE1000))
    cps += list(range(0x40000, 0x110000, 37))
    chunks = []
    for c in cps:
        ch = chr(c)
        chunks.append(f"x{ch} {ch}1{ch}{ch}.'s")
    return "".join(chunks)


def probe_classes(enc_factory):
    """The sets of letters, numbers and white space according to tiktoken's regex engine: an
    encoding whose pattern matches one class drops every other character."""
    import tiktoken
    ranks = {bytes([b]): b for b in range(256)}
    everything = "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c < 0xE000)
    classes = {}
    for name, pat in [("kL", r"\p{L}"), ("kN", r"\p{N}"), ("kS", r"\s")]:
        enc = tiktoken.Encoding(name="probe_" + name, pat_str=pat, mergeable_ranks=ranks,
                                special_tokens={})
        kept = enc.decode_bytes(enc.encode_ordinary(everything)).decode("utf-8")
        classes[name] = set(map(ord, kept))
    return classes


def table_classes(path):
    import re
    classes = {"kL": set(), "kN": set(), "kS": set()}
    with open(path, encoding="ascii") as f:
        text = f.read()
    for first, last, cls in re.findall(r"\{0x([0-9A-F]+), 0x([0-9A-F]+), (k[LNS])\}", text):
        classes[cls].update(range(int(first, 16), int(last, 16) + 1))
    return classes


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------

def main():
    reexec_in_venv()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpt-tokenize", required=True, help="path of the gpt-tokenize binary")
    parser.add_argument("--train-tool", help="path of bpe_train_tool (for the tokenizers check)")
    parser.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data"))
    parser.add_argument("--work", default="/tmp/check_tokenizer", help="scratch folder")
    parser.add_argument("--random-strings", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=20240520)
    args = parser.parse_args()

    try:
        import tiktoken  # noqa: F401
    except ImportError:
        print("SKIP: python3 has no tiktoken (run scripts/python_deps.sh)")
        return SKIP
    gpt2_dir = os.path.join(args.data, "gpt2")
    if not os.path.exists(os.path.join(gpt2_dir, "encoder.json")):
        print(f"SKIP: no GPT-2 tokenizer files in {gpt2_dir}")
        return SKIP
    os.makedirs(args.work, exist_ok=True)
    tool = args.gpt_tokenize
    report = Report()
    enc = tiktoken_gpt2(gpt2_dir)
    print(f"tiktoken {tiktoken.__version__}, GPT-2 encoding from {gpt2_dir}", flush=True)

    print("Unicode classes (tiktoken's regex engine vs data/unicode_table.inc):")
    ref = probe_classes(enc)
    ours = table_classes(os.path.join(ROOT, "data", "unicode_table.inc"))
    for cls, label in [("kL", "letters \\p{L}"), ("kN", "numbers \\p{N}"), ("kS", "white space \\s")]:
        diff = sorted(ref[cls] ^ ours[cls])
        report.check(label, f"{len(ref[cls])} code points", len(diff),
                     [f"U+{c:04X}" for c in diff])

    print("GPT-2 vs tiktoken:")
    text = every_code_point_text()
    t0 = time.time()
    compare_whole(report, "every code point in context", text,
                  ours_whole(tool, gpt2_dir, text, "text"), enc.encode_ordinary(text))
    texts = corpora(args.data)
    total_bytes = 0
    for name, body in texts.items():
        compare_whole(report, name, body, ours_whole(tool, gpt2_dir, body, "text"),
                      enc.encode_ordinary(body))
        total_bytes += len(body.encode("utf-8"))
    joined = "<|endoftext|>".join(body[:200_000] for body in texts.values())
    compare_whole(report, "corpora joined by <|endoftext|> (special allowed)", joined,
                  ours_whole(tool, gpt2_dir, joined, "allowed"),
                  enc.encode(joined, allowed_special="all"))
    print(f"  real text compared: {total_bytes} bytes")
    strings = random_strings(args.random_strings, args.seed)
    compare_lists(report, "random strings, ordinary", strings,
                  ours_records(tool, gpt2_dir, strings, "text"),
                  enc.encode_ordinary_batch(strings, num_threads=2))
    compare_lists(report, "random strings, special allowed", strings,
                  ours_records(tool, gpt2_dir, strings, "allowed"),
                  enc.encode_batch(strings, allowed_special="all", num_threads=2))
    print(f"  ({time.time() - t0:.1f} s)")

    print("gpt-tokenize --decode round trip:")
    body = texts["tinystories"]
    ids = run_tool([tool, "--tokenizer", gpt2_dir], body.encode("utf-8"))
    back = run_tool([tool, "--tokenizer", gpt2_dir, "--decode"], ids).decode("utf-8")
    expected = body if body.endswith("\n") else body + "\n"
    report.check("tinystories lines", f"{len(body)} chars", int(back != expected))

    print("Our trainer vs Hugging Face tokenizers:")
    try:
        import tokenizers
    except ImportError:
        tokenizers = None
        print("  skipped: python3 has no tokenizers")
    if tokenizers is not None and args.train_tool:
        out_dir = os.path.join(args.work, "trained_tinyshakespeare_4096")
        corpus = os.path.join(args.data, "tinyshakespeare", "input.txt")
        print("  " + run_tool([args.train_tool, "4096", out_dir, corpus], b"").decode().strip())
        hf = tokenizers.Tokenizer.from_file(os.path.join(out_dir, "tokenizer.json"))
        print(f"  tokenizers {tokenizers.__version__} loaded {out_dir}/tokenizer.json, "
              f"vocab {hf.get_vocab_size()}")
        for name, body in texts.items():
            compare_whole(report, f"trained 4096, {name}", body,
                          ours_whole(tool, out_dir, body, "allowed"),
                          hf.encode(body, add_special_tokens=False).ids)
        # GPT-2 itself, written by our save_hf, read by tokenizers: the same ids as tiktoken.
        gpt2_hf_dir = os.path.join(args.work, "gpt2_hf")
        print("  " + run_tool([args.train_tool, "--convert", gpt2_dir, gpt2_hf_dir], b"").decode().strip())
        hf_gpt2 = tokenizers.Tokenizer.from_file(os.path.join(gpt2_hf_dir, "tokenizer.json"))
        body = texts["tinyshakespeare"]
        compare_whole(report, "GPT-2 saved by save_hf, tinyshakespeare", body,
                      hf_gpt2.encode(body, add_special_tokens=False).ids, enc.encode_ordinary(body))
        try:  # optional: transformers is large, scripts/python_deps.sh does not install it
            from transformers import GPT2TokenizerFast
        except ImportError:
            GPT2TokenizerFast = None
            print("  (transformers not installed: GPT2TokenizerFast check skipped)")
        if GPT2TokenizerFast is not None:
            fast = GPT2TokenizerFast.from_pretrained(out_dir)
            body = texts["tinystories"]
            compare_whole(report, "trained 4096 in GPT2TokenizerFast, tinystories", body,
                          ours_whole(tool, out_dir, body, "allowed"), fast.encode(body))
        # Scripts whose Unicode classes are old and stable (HF's regex engine, Oniguruma, may use
        # an older Unicode version than tiktoken for recently added characters).
        sample = [s for s in strings[:20000] if all(ord(c) < 0x30000 for c in s)]
        hf_ids = [e.ids for e in hf.encode_batch(sample, add_special_tokens=False)]
        compare_lists(report, "trained 4096, random strings", sample,
                      ours_records(tool, out_dir, sample, "allowed"), hf_ids)

    if report.failures:
        print(f"FAILED: {report.failures} comparison(s) differ")
        return 1
    print("all comparisons equal")
    return 0


if __name__ == "__main__":
    sys.exit(main())
