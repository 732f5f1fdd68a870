#!/usr/bin/env python3
"""tiktoken (and Hugging Face tokenizers) on the same files and in the same way as bench_tokenizer.

    python3 bench/bench_tokenizer.py [--input FILE]... [--train-input FILE] [--repeats N]

Builds tiktoken's GPT-2 encoding from the local encoder.json (no download) and reports encode MB/s
on one thread, encode_ordinary_batch over documents (text split at blank lines) on all threads,
decode MB/s, and Hugging Face's BPE training time (ByteLevel, vocabulary 4096) when `tokenizers`
is installed. Run it right after bench_tokenizer on the same machine and compare ratios.
"""
import argparse
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))
from check_tokenizer import reexec_in_venv, tiktoken_gpt2  # noqa: E402


def median_seconds(repeats, fn, warm_up=True):
    if warm_up:
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    reexec_in_venv()
    shared = os.path.normpath(os.path.join(ROOT, "..", "shared", "data"))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpt2-dir", default=os.environ.get("GPT_TOKENIZER_DIR") or os.path.join(shared, "gpt2"))
    parser.add_argument("--input", action="append", default=None)
    parser.add_argument("--train-input", default=os.path.join(shared, "tinyshakespeare", "input.txt"))
    parser.add_argument("--train-vocab", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    inputs = args.input or [os.path.join(shared, "tinyshakespeare", "input.txt"),
                            os.path.join(shared, "tinystories", "tinystories_val.txt")]

    import tiktoken
    enc = tiktoken_gpt2(args.gpt2_dir)
    text = "".join(open(f, encoding="utf-8").read() for f in inputs)
    mb = len(text.encode("utf-8")) / 1e6
    docs = text.split("\n\n")
    threads = os.cpu_count()
    print(f"tiktoken {tiktoken.__version__}; input {mb:.2f} MB in {len(docs)} documents; {threads} threads")

    ids = enc.encode_ordinary(text)
    one = median_seconds(args.repeats, lambda: enc.encode_ordinary(text))
    print(f"tiktoken encode, 1 thread      : {mb / one:8.2f} MB/s  ({len(ids)} tokens)")
    batch = median_seconds(args.repeats, lambda: enc.encode_ordinary_batch(docs, num_threads=threads))
    print(f"tiktoken encode_batch, {threads} threads: {mb / batch:8.2f} MB/s")
    dec = median_seconds(args.repeats, lambda: enc.decode_bytes(ids))
    print(f"tiktoken decode, 1 thread      : {mb / dec:8.2f} MB/s")

    try:
        import tokenizers
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    except ImportError:
        print("tokenizers not installed: no training comparison")
        return 0
    corpus = open(args.train_input, encoding="utf-8").read()

    def train():
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=args.train_vocab, special_tokens=["<|endoftext|>"],
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                      show_progress=False)
        tok.train_from_iterator([corpus], trainer=trainer)
        return tok

    seconds = median_seconds(3, train, warm_up=False)
    print(f"tokenizers {tokenizers.__version__} train vocab {args.train_vocab} on "
          f"{os.path.basename(args.train_input)} ({len(corpus.encode()) / 1e6:.2f} MB): {seconds:.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
