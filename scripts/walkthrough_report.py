#!/usr/bin/env python3
"""Prints the walkthrough's tables from the JSON files gpt-eval wrote (scripts/walkthrough.sh)."""
import json
import os
import re
import sys

OUT = sys.argv[1]
EV = os.path.join(OUT, "eval")


def load(name):
    p = os.path.join(EV, name)
    return json.load(open(p)) if os.path.exists(p) else None


def find(d, *keys):
    """The first of keys found anywhere in a nested dict (gpt-eval's JSON groups numbers by task)."""
    if not isinstance(d, dict):
        return None
    for k in keys:
        if k in d and not isinstance(d[k], dict):
            return d[k]
    for v in d.values():
        if isinstance(v, dict):
            r = find(v, *keys)
            if r is not None:
                return r
    return None


def log_stats(path):
    """Trainable parameters, peak memory and the median step time from a gpt-finetune log."""
    text = open(path).read() if os.path.exists(path) else ""
    trainable = re.search(r"method \w+: (\d+) trainable \(([\d.]+)%\), optimizer state ([\d.]+) MiB", text)
    peak = re.search(r"peak memory ([\d.]+) MiB", text)
    times = sorted(float(m) for m in re.findall(r"\|\s+([\d.]+) ms \|", text))
    return {
        "trainable": int(trainable.group(1)) if trainable else None,
        "trainable_pct": float(trainable.group(2)) if trainable else None,
        "optimizer_mib": float(trainable.group(3)) if trainable else None,
        "peak_mib": float(peak.group(1)) if peak else None,
        "step_ms": times[len(times) // 2] if times else None,
    }


def fmt(v, spec):
    return "-" if v is None else format(v, spec)


results = {}
print("\n1-2. Language modelling: validation loss (nats/token) and bits per byte")
print(f"{'model':<22}{'general loss':>13}{'general bpb':>12}{'shakespeare loss':>18}{'shakespeare bpb':>16}")
for m in ("base", "shakespeare"):
    g, s = load(f"lm-{m}-general.json"), load(f"lm-{m}-shakespeare.json")
    row = [find(g, "loss"), find(g, "bits_per_byte"), find(s, "loss"), find(s, "bits_per_byte")]
    results[f"lm-{m}"] = row
    print(f"{m:<22}{fmt(row[0], '.4f'):>13}{fmt(row[1], '.4f'):>12}{fmt(row[2], '.4f'):>18}{fmt(row[3], '.4f'):>16}")

bow = load("sst2-bow.json") or {}
print("\n3. SST-2 dev accuracy (872 sentences)")
print(f"{'method':<16}{'accuracy':>9}{'macro F1':>9}{'trainable':>11}{'%':>7}{'opt. MiB':>9}{'peak MiB':>9}{'step ms':>9}")
print(f"{'majority class':<16}{fmt(bow.get('majority'), '.4f'):>9}")
print(f"{'bag of words LR':<16}{fmt(bow.get('accuracy'), '.4f'):>9}")
for name in ("full", "lora", "freeze", "full-replay", "lora-replay", "freeze-replay"):
    e = load(f"sst2-{name}.json")
    st = log_stats(os.path.join(OUT, f"sst2-{name}.log"))
    acc = find(e, "accuracy")
    f1 = ((e or {}).get("metrics", {}).get("macro") or {}).get("f1")
    results[f"sst2-{name}"] = {"accuracy": acc, "macro_f1": f1, **st}
    print(f"{name:<16}{fmt(acc, '.4f'):>9}{fmt(f1, '.4f'):>9}{fmt(st['trainable'], 'd'):>11}"
          f"{fmt(st['trainable_pct'], '.2f'):>7}{fmt(st['optimizer_mib'], '.2f'):>9}{fmt(st['peak_mib'], '.1f'):>9}"
          f"{fmt(st['step_ms'], '.1f'):>9}")

print("\n4. Forgetting: general-English validation loss after SST-2 fine-tuning (base = the pretrained model)")
print(f"{'method':<16}{'base loss':>10}{'after':>10}{'change':>10}{'relative':>10}")
for name in ("full", "lora", "freeze", "full-replay", "lora-replay", "freeze-replay"):
    e = load(f"forget-{name}.json")
    diff, rel = find(e, "loss_difference"), find(e, "relative_change")
    metrics = (e or {}).get("metrics", {})
    base = (metrics.get("base") or {}).get("loss")
    after = (metrics.get("model") or {}).get("loss")
    results[f"forget-{name}"] = {"base": base, "after": after, "difference": diff, "relative": rel}
    print(f"{name:<16}{fmt(base, '.4f'):>10}{fmt(after, '.4f'):>10}{fmt(diff, '+.4f'):>10}{fmt(rel, '+.2%'):>10}")

print("\n5. GSM8K (test questions, greedy): answer format and completion loss")
print(f"{'model':<12}{'#### N rate':>12}{'exact match':>12}{'completion loss':>16}{'distinct-2':>11}")
for m in ("base", "gsm8k-sft"):
    e = load(f"gsm8k-{m}.json")
    g = ((e or {}).get("metrics") or {}).get("gsm8k") or {}
    row = [g.get("format_rate"), g.get("accuracy"), find(e, "completion_loss"), find(e, "distinct2")]
    results[f"gsm8k-{m}"] = row
    print(f"{m:<12}{fmt(row[0], '.3f'):>12}{fmt(row[1], '.3f'):>12}{fmt(row[2], '.4f'):>16}{fmt(row[3], '.3f'):>11}")
e = load("gsm8k-gsm8k-sft.json")
samples = (e or {}).get("generations") or []
for s in samples[:2]:
    print("\n--- prompt:", str(s.get("prompt", ""))[:300])
    print("--- completion:", repr(str(s.get("completion", ""))[:300]))
json.dump(results, open(os.path.join(OUT, "results.json"), "w"), indent=1)
