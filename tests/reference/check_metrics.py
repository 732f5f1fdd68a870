#!/usr/bin/env python3
"""Cross-checks eval/metrics (through metrics_tool) against the reference Python packages.

1. sacrebleu: the 13a tokenizer on every line of Multi30k val/test (en, de) and on random strings
   built from the characters its rules care about; corpus_bleu on 1,000 Multi30k val.en references
   against hypotheses made by perturbing them (dropping, swapping, replacing words, with seeds), with
   one, two and three reference streams, and on tiny corpora that exercise the exp smoothing, an
   empty hypothesis and no match at all.
2. rouge-score (use_stemmer=True) and NLTK: the Porter stemmer on every distinct word of several
   corpora; the rouge tokenizer on DialogSum and random strings; rouge1/2/L per example and their
   mean on DialogSum test (summary1 against summary2, and score_multi against summary2 + summary3;
   a perturbed summary1 against all three).
3. scikit-learn: accuracy, confusion matrix, per-class and macro/micro/weighted precision, recall
   and F1 (labels=range(K), zero_division=0) on SST-2 dev labels against perturbed predictions, and
   3- and 4-class cases with a class never predicted and a class never present.
4. distinct-1/2 against a direct Python rendering of the definition (no reference package exists),
   and GSM8K answers against the extraction regex of openai/grade-school-math on the test answers.

Scores must agree within 1e-6 (BLEU on its 0-100 scale); tokens, stems and counts exactly.
Exit status: 0 all agree, 1 a mismatch, 77 skipped (a package or ../shared/data is missing).
Runs under the repository's .venv interpreter when there is one (scripts/python_deps.sh makes it).
"""
import argparse
import gzip
import json
import os
import random
import re
import subprocess
import sys
import time

SKIP = 77
TOLERANCE = 1e-6
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))


def run_under_venv():
    """Re-executes this script with .venv/bin/python when that exists and is not running us."""
    venv = os.path.join(ROOT, ".venv")
    python = os.path.join(venv, "bin", "python")
    if not os.path.isfile(python):
        return
    if os.path.realpath(sys.prefix) == os.path.realpath(venv):
        return
    if os.environ.get("GPT_CHECK_METRICS_REEXEC") == "1":  # never loop
        return
    os.environ["GPT_CHECK_METRICS_REEXEC"] = "1"
    os.execv(python, [python, os.path.abspath(__file__)] + sys.argv[1:])


class Report:
    def __init__(self):
        self.failures = 0

    def exact(self, name, ours, ref, inputs=None):
        """Lists compared element by element, exactly."""
        bad = [i for i, (a, b) in enumerate(zip(ours, ref)) if a != b]
        if len(ours) != len(ref):
            bad.append(min(len(ours), len(ref)))
        self._line(name, f"{len(ref)} compared, {len(bad)} differ", not bad)
        for i in bad[:5]:
            shown = repr(inputs[i])[:160] if inputs is not None and i < len(inputs) else ""
            print(f"    [{i}] {shown}\n      ours {ours[i] if i < len(ours) else None!r}\n"
                  f"      ref  {ref[i] if i < len(ref) else None!r}")

    def close(self, name, ours, ref, tolerance=TOLERANCE):
        """Flat lists of numbers: maximum absolute difference against the tolerance."""
        if len(ours) != len(ref):
            self._line(name, f"lengths differ: {len(ours)} vs {len(ref)}", False)
            return
        diffs = [abs(a - b) for a, b in zip(ours, ref)]
        worst = max(diffs) if diffs else 0.0
        at = diffs.index(worst) if diffs else -1
        ok = worst <= tolerance
        self._line(name, f"{len(ref)} values, max |diff| {worst:.3g}", ok)
        if not ok:
            print(f"    worst at {at}: ours {ours[at]!r}, ref {ref[at]!r}")

    def _line(self, name, what, ok):
        print(f"  {name}: {what} [{'ok' if ok else 'MISMATCH'}]", flush=True)
        if not ok:
            self.failures += 1


# ---- data ---------------------------------------------------------------------------------------

def read_gz_lines(path, limit=None):
    with gzip.open(path, "rt", encoding="utf-8") as f:
        lines = [line.rstrip("\n") for line in f]
    return lines[:limit] if limit else lines


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def perturb(words, rng, drop, swap, replace, vocabulary):
    """Deterministic noise on a word list: drop, swap adjacent, replace with a vocabulary word."""
    out = [w for w in words if rng.random() >= drop]
    for i in range(len(out) - 1):
        if rng.random() < swap:
            out[i], out[i + 1] = out[i + 1], out[i]
    return [rng.choice(vocabulary) if rng.random() < replace else w for w in out]


def random_13a_strings(n, seed):
    rng = random.Random(seed)
    pieces = list("abcXYZ019") + list(".,-'&;:/\\()[]{}<>\"!?@#$%^*_+=|~`") + [
        " ", "  ", "\t", "\n", "\r", "\x0b", "\x0c", "\x1c", "\x1f", "\x85", "\xa0", "\u2003",
        "\u2028", "\u3000", "\u200b", "\u1680", "\u205f", "\u202f", "é", "中", "😀", "ß",
        "&quot;", "&amp;", "&lt;", "&gt;", "&amp;lt;", "<skipped>", "-\n", "3.14", "1,000",
        "1-2", "a.b", ".5", "5.", "e.g.", "U.S.A.", "--", "...", " . "]
    return ["".join(rng.choice(pieces) for _ in range(rng.randint(0, 30))) for _ in range(n)]


def random_rouge_strings(n, seed):
    rng = random.Random(seed)
    pieces = ["the", "Running", "ponies", "CARESSES", "skies", "dying", "İstanbul", "\u212aelvin",
              "ﬁne", "Σίσυφος", "naïve", "café", "1,000", "3.5", "x", "ab", "abc", "abcd",
              "yyyy", "relational", "generously", "hopeful", "ly", "—", "'s", "don't", "e-mail",
              " ", "\n", "\t", ".", ",", "#Person1#:", "ǅ", "\u0130", "\u212a", "K"]
    return [" ".join(rng.choice(pieces) for _ in range(rng.randint(0, 12))) for _ in range(n)]


def vocabulary_words(data):
    """Distinct [a-z0-9]+ words (lowercased) from several corpora, for the stemmer check."""
    texts = []
    texts += read_gz_lines(os.path.join(data, "multi30k", "train.en.gz"))
    for path in ["tinyshakespeare/input.txt", "austen/austen_all.txt", "sst2/train.tsv"]:
        full = os.path.join(data, path)
        if os.path.exists(full):
            with open(full, encoding="utf-8") as f:
                texts.append(f.read())
    for row in read_jsonl(os.path.join(data, "dialogsum", "dialogsum.test.jsonl")):
        texts += [row.get("dialogue", "")] + [row.get(k, "") for k in
                                              ("summary1", "summary2", "summary3")]
    words = set()
    for text in texts:
        words.update(re.findall(r"[a-z0-9]+", text.lower()))
    return sorted(words)


TRICKY_WORDS = [
    "caresses", "ponies", "ties", "caress", "cats", "feed", "agreed", "plastered", "bled",
    "motoring", "sing", "conflated", "troubled", "sized", "hopping", "tanned", "falling", "hissing",
    "fizzed", "failing", "filing", "happy", "sky", "relational", "conditional", "rational",
    "valenci", "hesitanci", "digitizer", "conformabli", "radicalli", "differentli", "vileli",
    "analogousli", "vietnamization", "predication", "operator", "feudalism", "decisiveness",
    "hopefulness", "callousness", "formaliti", "sensitiviti", "sensibiliti", "triplicate",
    "formative", "formalize", "electriciti", "electrical", "hopeful", "goodness", "revival",
    "allowance", "inference", "airliner", "gyroscopic", "adjustable", "defensible", "irritant",
    "replacement", "adjustment", "dependent", "adoption", "homologou", "communism", "activate",
    "angulariti", "homologous", "effective", "bowdlerize", "probate", "rate", "cease",
    "controll", "roll", "dying", "lying", "tying", "skies", "news", "innings", "outings",
    "cannings", "howe", "proceed", "exceed", "succeed", "spied", "tied", "died", "cried",
    "enjoy", "enjoyment", "spy", "fly", "try", "yyyy", "syzygy", "toy", "say", "generously",
    "archaeology", "analogi", "fulli", "helpfulli", "logically", "generalli", "ay", "oed",
    "aed", "ing", "sing", "bing", "hing", "ed", "eed", "abed", "flying", "crying", "agreed",
    "a", "is", "as", "us", "oxen", "axing", "boxing", "bowing", "hoeing", "trolling",
    "installing", "y", "yes", "yeses", "happiness", "skied", "ies", "eies", "1234", "12ing",
]


# ---- references ---------------------------------------------------------------------------------

def sacrebleu_case(hyps, ref_streams):
    import sacrebleu
    s = sacrebleu.corpus_bleu(hyps, ref_streams)
    return {"score": s.score, "precisions": list(s.precisions), "matches": list(s.counts),
            "totals": list(s.totals), "bp": s.bp, "sys_len": s.sys_len, "ref_len": s.ref_len}


def rouge_reference(scorer, predictions, references):
    per = []
    for pred, refs in zip(predictions, references):
        scores = scorer.score(refs[0], pred) if len(refs) == 1 else scorer.score_multi(refs, pred)
        per.append({k: [scores[k].precision, scores[k].recall, scores[k].fmeasure]
                    for k in ("rouge1", "rouge2", "rougeL")})
    mean = {k: [sum(p[k][j] for p in per) / len(per) for j in range(3)]
            for k in ("rouge1", "rouge2", "rougeL")}
    return {"per_example": per, "mean": mean}


def sklearn_case(labels, predictions, k):
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support
    ks = list(range(k))
    p, r, f, support = precision_recall_fscore_support(labels, predictions, labels=ks,
                                                       average=None, zero_division=0)
    out = {"accuracy": accuracy_score(labels, predictions),
           "confusion": confusion_matrix(labels, predictions, labels=ks).tolist(),
           "precision": p.tolist(), "recall": r.tolist(), "f1": f.tolist(),
           "support": support.tolist()}
    for average in ("macro", "micro", "weighted"):
        ap, ar, af, _ = precision_recall_fscore_support(labels, predictions, labels=ks,
                                                        average=average, zero_division=0)
        out[average] = [ap, ar, af]
    return out


def distinct_reference(generations):
    unigrams, bigrams = [], []
    for text in generations:
        tokens = text.split()
        unigrams += tokens
        bigrams += list(zip(tokens, tokens[1:]))
    return {"distinct1": len(set(unigrams)) / len(unigrams) if unigrams else 0.0,
            "distinct2": len(set(bigrams)) / len(bigrams) if bigrams else 0.0,
            "unigrams": len(unigrams), "distinct_unigrams": len(set(unigrams)),
            "bigrams": len(bigrams), "distinct_bigrams": len(set(bigrams))}


GSM8K_ANSWER_RE = re.compile(r"#### (\-?[0-9\.\,]+)")  # openai/grade-school-math dataset.py


def gsm8k_reference_answer(text):
    match = GSM8K_ANSWER_RE.search(text)
    return match.group(1).strip().replace(",", "") if match else None


# ---- the checks ---------------------------------------------------------------------------------

def flatten_rouge(result):
    values = []
    for example in result["per_example"]:
        for k in ("rouge1", "rouge2", "rougeL"):
            values += example[k]
    return values


def main():
    run_under_venv()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tool", required=True, help="path of the metrics_tool binary")
    parser.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data"))
    parser.add_argument("--work", default="/tmp/check_metrics", help="scratch folder")
    parser.add_argument("--seed", type=int, default=1234)
    args = parser.parse_args()

    try:
        import nltk
        import rouge_score
        import sacrebleu
        import sklearn
        from nltk.stem.porter import PorterStemmer
        from rouge_score import rouge_scorer
        from sacrebleu.metrics import BLEU
    except ImportError as e:
        print(f"SKIP: {e} (run scripts/python_deps.sh)")
        return SKIP
    needed = ["multi30k/val.en.gz", "dialogsum/dialogsum.test.jsonl", "sst2/dev.tsv",
              "gsm8k/test.jsonl"]
    missing = [p for p in needed if not os.path.exists(os.path.join(args.data, p))]
    if missing:
        print(f"SKIP: missing in {args.data}: {', '.join(missing)}")
        return SKIP
    versions = {"sacrebleu": sacrebleu.__version__, "nltk": nltk.__version__,
                "scikit-learn": sklearn.__version__}
    try:
        from importlib.metadata import version
        versions["rouge-score"] = version("rouge-score")
    except Exception:  # noqa: BLE001 - the version is only printed
        versions["rouge-score"] = getattr(rouge_score, "__version__", "?")
    print("references: " + ", ".join(f"{k} {v}" for k, v in versions.items()), flush=True)
    t0 = time.time()
    rng = random.Random(args.seed)
    data = args.data

    # -- inputs --
    val_en = read_gz_lines(os.path.join(data, "multi30k", "val.en.gz"))
    tok_lines = (val_en + read_gz_lines(os.path.join(data, "multi30k", "val.de.gz")) +
                 read_gz_lines(os.path.join(data, "multi30k", "test_2016_flickr.en.gz")) +
                 read_gz_lines(os.path.join(data, "multi30k", "test_2016_flickr.de.gz")) +
                 random_13a_strings(20000, args.seed))
    refs = val_en[:1000]
    vocab = sorted({w for line in refs for w in line.split()})
    noisy = [" ".join(perturb(r.split(), rng, 0.1, 0.1, 0.1, vocab)) for r in refs]
    noisy[5] = ""  # an empty hypothesis
    noisy[6] = refs[6]  # an exact copy
    paraphrase1 = [" ".join(perturb(r.split(), rng, 0.15, 0.05, 0.15, vocab)) for r in refs]
    paraphrase2 = [" ".join(perturb(r.split(), rng, 0.0, 0.2, 0.2, vocab)) + " ." for r in refs]
    heavy = [" ".join(perturb(r.split(), rng, 0.5, 0.5, 0.5, vocab)) for r in refs]
    bleu_cases = [
        ("1,000 lines, 1 reference, light noise", noisy, [refs]),
        ("1,000 lines, 1 reference, heavy noise", heavy, [refs]),
        ("1,000 lines, 2 references", noisy, [refs, paraphrase1]),
        ("1,000 lines, 3 references", heavy, [refs, paraphrase1, paraphrase2]),
        ("identical", refs, [refs]),
        ("short hypotheses (brevity penalty)", [" ".join(r.split()[:3]) for r in refs], [refs]),
        ("tiny corpus, no 3/4-gram match (exp smoothing)",
         ["the cat sat on", "a dog a dog"], [["the cat lay on", "a dog ran a cat"]]),
        ("tiny corpus, no match", ["xyz"], [["the cat"]]),
        ("one-word hypotheses", ["cat", "dog"], [["the cat", "dog"]]),
        ("length ties between references", ["a b c d", "one two"],
         [["a b c d e f", "one two three"], ["a b", "one"]]),
        ("HTML entities and <skipped>", ["A &quot;b&quot; &amp; c &lt;d&gt; <skipped> e-\nf"],
         [["A \"b\" & c <d> e f"]]),
    ]

    dialogsum = read_jsonl(os.path.join(data, "dialogsum", "dialogsum.test.jsonl"))
    s1 = [row["summary1"] for row in dialogsum]
    s2 = [row["summary2"] for row in dialogsum]
    s3 = [row["summary3"] for row in dialogsum]
    s1_noisy = [" ".join(perturb(s.split(), rng, 0.2, 0.1, 0.1, vocab)) for s in s1]
    rouge_cases = [
        ("DialogSum summary1 vs summary2", s1, [[b] for b in s2]),
        ("DialogSum summary1 vs summary2, summary3 (score_multi)", s1,
         [[b, c] for b, c in zip(s2, s3)]),
        ("DialogSum noisy summary1 vs summary1..3 (score_multi)", s1_noisy,
         [[a, b, c] for a, b, c in zip(s1, s2, s3)]),
    ]
    rouge_texts = ([row["dialogue"] for row in dialogsum] + s1 + s2 + s3 +
                   random_rouge_strings(5000, args.seed))

    with open(os.path.join(data, "sst2", "dev.tsv"), encoding="utf-8") as f:
        sst2 = [int(line.split("\t", 1)[0]) for line in list(f)[1:] if line.strip()]
    flip = [1 - y if rng.random() < 0.2 else y for y in sst2]
    three_true = [rng.randrange(3) for _ in range(999)]
    three_pred = [y if rng.random() < 0.6 else rng.randrange(2) for y in three_true]  # 2 rare
    four_true = [rng.randrange(3) for _ in range(500)]  # class 3 never present
    four_pred = [rng.randrange(4) if rng.random() < 0.5 else y for y in four_true]
    never_pred = [y if y != 2 else 0 for y in three_true]  # class 2 never predicted
    class_cases = [
        ("SST-2 dev (872), 20% flipped", sst2, flip, 2),
        ("SST-2 dev, all predicted 1", sst2, [1] * len(sst2), 2),
        ("3 classes, class 2 rarely predicted", three_true, three_pred, 3),
        ("3 classes, class 2 never predicted", three_true, never_pred, 3),
        ("4 classes, class 3 never present", four_true, four_pred, 4),
    ]

    gsm = read_jsonl(os.path.join(data, "gsm8k", "test.jsonl"))
    gsm_refs = [row["answer"] for row in gsm]
    completions, expected_correct = [], 0
    for i, answer in enumerate(gsm_refs):
        body, value = answer.rsplit("####", 1)
        value = value.strip()
        kind = i % 6
        if kind == 0:
            text, ok = answer, True
        elif kind == 1:  # a dollar sign, "-$7" for negatives, a trailing newline
            sign, digits = ("-", value[1:]) if value.startswith("-") else ("", value)
            text, ok = body + "#### " + sign + "$" + digits + "\n", True
        elif kind == 2:
            text, ok = body + "#### " + str(int(value.replace(",", "")) + 1), False
        elif kind == 3:
            text, ok = body + "The answer is " + value, False  # no marker
        elif kind == 4:
            text, ok = body + "#### " + value.replace(",", "") + ".00", True
        else:
            text, ok = body + "#### " + value + " dollars", False  # malformed tail
        completions.append(text)
        expected_correct += ok

    request = {
        "tokenize_13a": {"lines": tok_lines},
        "porter": {"words": TRICKY_WORDS + vocabulary_words(data)},
        "rouge_tokenize": {"texts": rouge_texts},
        "bleu": [{"hypotheses": h, "references": r} for _, h, r in bleu_cases],
        "rouge": [{"predictions": p, "references": r} for _, p, r in rouge_cases],
        "classification": [{"labels": y, "predictions": p, "num_classes": k}
                           for _, y, p, k in class_cases],
        "distinct": [{"generations": s1}, {"generations": noisy}, {"generations": ["", "a"]}],
        "gsm8k": [{"completions": gsm_refs, "references": gsm_refs},
                  {"completions": completions, "references": gsm_refs}],
    }
    os.makedirs(args.work, exist_ok=True)
    request_path = os.path.join(args.work, "request.json")
    with open(request_path, "w", encoding="utf-8") as f:
        json.dump(request, f, ensure_ascii=False)
    proc = subprocess.run([args.tool, request_path], capture_output=True)
    if proc.returncode != 0:
        print(f"FAIL: metrics_tool exited {proc.returncode}: {proc.stderr.decode()[-2000:]}")
        return 1
    ours = json.loads(proc.stdout)
    print(f"metrics_tool answered in {time.time() - t0:.1f} s", flush=True)
    report = Report()

    print("sacrebleu:")
    bleu = BLEU()
    report.exact("13a tokenizer (Multi30k val/test en+de, 20,000 random strings)",
                 ours["tokenize_13a"], [bleu._preprocess_segment(x) for x in tok_lines], tok_lines)
    for (name, h, r), got in zip(bleu_cases, ours["bleu"]):
        ref = sacrebleu_case(h, r)
        report.close(f"BLEU {name} (score {ref['score']:.4f})",
                     [got["score"], got["bp"]] + got["precisions"],
                     [ref["score"], ref["bp"]] + ref["precisions"])
        report.exact(f"BLEU {name}: lengths and n-gram counts",
                     [got["sys_len"], got["ref_len"]] + got["matches"] + got["totals"],
                     [ref["sys_len"], ref["ref_len"]] + ref["matches"] + ref["totals"])

    print("rouge-score / NLTK:")
    stemmer = PorterStemmer()
    words = request["porter"]["words"]
    report.exact("Porter stemmer (NLTK_EXTENSIONS)", ours["porter"],
                 [stemmer.stem(w) for w in words], words)
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    report.exact("rouge tokenizer (DialogSum dialogues + summaries, 5,000 random strings)",
                 ours["rouge_tokenize"], [scorer._tokenizer.tokenize(t) for t in rouge_texts],
                 rouge_texts)
    for (name, p, r), got in zip(rouge_cases, ours["rouge"]):
        ref = rouge_reference(scorer, p, r)
        report.close(f"{name}: P/R/F of rouge1/2/L, {len(p)} examples",
                     flatten_rouge(got), flatten_rouge(ref))
        report.close(f"{name}: corpus means (F1 {ref['mean']['rouge1'][2]:.4f} / "
                     f"{ref['mean']['rouge2'][2]:.4f} / {ref['mean']['rougeL'][2]:.4f})",
                     sum((got["mean"][k] for k in ("rouge1", "rouge2", "rougeL")), []),
                     sum((ref["mean"][k] for k in ("rouge1", "rouge2", "rougeL")), []))

    print("scikit-learn:")
    for (name, y, p, k), got in zip(class_cases, ours["classification"]):
        ref = sklearn_case(y, p, k)
        keys = ["precision", "recall", "f1"]
        report.close(f"{name}: accuracy, per-class and averaged P/R/F1",
                     [got["accuracy"]] + sum((got[x] for x in keys), []) +
                     sum((got[a] for a in ("macro", "micro", "weighted")), []),
                     [ref["accuracy"]] + sum((ref[x] for x in keys), []) +
                     sum((ref[a] for a in ("macro", "micro", "weighted")), []))
        report.exact(f"{name}: confusion matrix and support", [got["confusion"], got["support"]],
                     [ref["confusion"], ref["support"]])

    print("distinct-n (direct Python rendering of the definition):")
    for case, got in zip(request["distinct"], ours["distinct"]):
        ref = distinct_reference(case["generations"])
        report.close(f"{len(case['generations'])} generations", [got["distinct1"], got["distinct2"]],
                     [ref["distinct1"], ref["distinct2"]])
        report.exact(f"{len(case['generations'])} generations: counts",
                     [got[k] for k in ("unigrams", "distinct_unigrams", "bigrams",
                                       "distinct_bigrams")],
                     [ref[k] for k in ("unigrams", "distinct_unigrams", "bigrams",
                                       "distinct_bigrams")])

    print("GSM8K (openai/grade-school-math's answer regex):")
    refs_got = ours["gsm8k"][0]
    report.exact("test answers (1,319): extracted N", refs_got["answers"],
                 [gsm8k_reference_answer(a) for a in gsm_refs], gsm_refs)
    report.exact("references scored against themselves: well-formed, correct",
                 [refs_got["well_formed"], refs_got["correct"]], [len(gsm_refs), len(gsm_refs)])
    got = ours["gsm8k"][1]
    expected_well_formed = sum(1 for i in range(len(gsm_refs)) if i % 6 not in (3, 5))
    report.exact("perturbed completions: well-formed, correct",
                 [got["well_formed"], got["correct"]], [expected_well_formed, expected_correct])

    print(f"({time.time() - t0:.1f} s)")
    if report.failures:
        print(f"FAIL: {report.failures} check(s) disagree")
        return 1
    print("OK: every metric agrees with its reference")
    return 0


if __name__ == "__main__":
    sys.exit(main())
