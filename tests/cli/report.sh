#!/usr/bin/env bash
# scripts/plot_run.py as a user runs it (docs/report.md), on tiny runs made here: a pretraining run
# with validation, one without (gradient accumulation via --total-batch-tokens), a classification
# fine-tune that stops early and one with replay, their forgetting reports (gpt-eval --out-json)
# and a sample (gpt-generate --jsonl). Checks that the report's files exist; that every PNG decodes,
# has a sensible size and is not blank; that index.html and report.md reference every PNG and
# every reference exists, relative to the folder; the numbers in the metrics table; that runs
# without validation or accuracy, and a directory without a log, are handled; then opens a copy of
# the folder in headless Chromium and checks every image loads (tests/reference/
# check_report_browser.py), and that both checks fail once a link is broken or a PNG corrupted.
# Usage: report.sh BIN_DIR   (BIN_DIR holds gpt-prepare and gpt-pretrain; gpt-finetune, gpt-eval
# and gpt-generate there are used when present). Exits 77 (skipped) when .venv/bin/python cannot
# import matplotlib (scripts/python_deps.sh). Chromium is installed with apt-get when missing and
# running as root; otherwise the browser part is skipped, loudly.
source "$(dirname "$0")/lib.sh"
BIN=$(cd "$1" && pwd)
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PY=$ROOT/.venv/bin/python
PLOT=$ROOT/scripts/plot_run.py
BROWSER_CHECK=$ROOT/tests/reference/check_report_browser.py
if [[ ! -x $PY ]] || ! "$PY" -c "import matplotlib, numpy" 2>/dev/null; then
  echo "skip: $PY cannot import matplotlib (run scripts/python_deps.sh)"
  exit 77
fi
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=1

# ---- tiny runs ------------------------------------------------------------------------------------
for i in $(seq 1 200); do
  echo "the cat sat on the mat and the dog ran in the sun, said voice number $i to the quiet room."
done > "$work/text.txt"
"$BIN/gpt-prepare" --input "$work/text.txt" --val-fraction 0.1 --out "$work/data" >"$work/log.txt" 2>&1 ||
  die "gpt-prepare: $(tail -2 "$work/log.txt")"
MODEL=(--device cpu --n-layer 1 --n-head 2 --n-embd 16 --max-seq-len 64 --seq-len 32 --batch-size 4)
"$BIN/gpt-pretrain" "${MODEL[@]}" --train-data "$work/data/train_*.bin" --val-data "$work/data/val_*.bin" \
  --steps 30 --eval-every 10 --warmup-steps 5 --lr 0.003 --out "$work/runs/lm-val" >"$work/log.txt" 2>&1 ||
  die "gpt-pretrain with validation: $(tail -2 "$work/log.txt")"
"$BIN/gpt-pretrain" "${MODEL[@]}" --train-data "$work/data/train_*.bin" --total-batch-tokens 256 \
  --steps 20 --eval-every 0 --out "$work/runs/lm-noval" >"$work/log.txt" 2>&1 ||
  die "gpt-pretrain without validation: $(tail -2 "$work/log.txt")"
ok "tiny runs: lm-val (30 steps, validation every 10), lm-noval (20 steps of 256 tokens, no validation)"
RUNS=("$work/runs/lm-val" "$work/runs/lm-noval")
EVALS=()
finetune=no
if [[ -x $BIN/gpt-finetune && -x $BIN/gpt-eval ]]; then
  finetune=yes
  for i in $(seq 1 40); do
    echo "{\"text\": \"good film number $i\", \"label\": 1}"; echo "{\"text\": \"bad film number $i\", \"label\": 0}"
  done > "$work/cls.jsonl"
  "$BIN/gpt-prepare" --task classify --format jsonl --input "$work/cls.jsonl" --val-fraction 0.25 --seq-len 32 \
    --out "$work/cls" >"$work/log.txt" 2>&1 || die "gpt-prepare classify: $(tail -2 "$work/log.txt")"
  FT=(--init "$work/runs/lm-val" --task classify --method full --train-data "$work/cls/train_*.bin"
      --val-data "$work/cls/val_*.bin" --batch-size 4 --seq-len 32 --device cpu --eval-every 2 --steps 20)
  # A learning rate too small to move the accuracy: the best is the first validation (step 2) and
  # patience 2 stops the run at step 6 of 20.
  "$BIN/gpt-finetune" "${FT[@]}" --lr 1e-12 --min-lr 1e-12 --patience 2 --metric accuracy \
    --out "$work/runs/cls-es" >"$work/log.txt" 2>&1 || die "gpt-finetune: $(tail -2 "$work/log.txt")"
  "$BIN/gpt-finetune" "${FT[@]}" --lr 1e-3 --steps 8 --replay-data "$work/data/train_*.bin" --replay-ratio 0.25 \
    --out "$work/runs/cls-replay" >"$work/log.txt" 2>&1 || die "gpt-finetune --replay-data: $(tail -2 "$work/log.txt")"
  for r in cls-es cls-replay; do
    "$BIN/gpt-eval" --device cpu --model "$work/runs/$r/best" --task lm --data "$work/data/val_*.bin" \
      --forgetting --base "$work/runs/lm-val" --out-json "$work/forget-$r.json" >"$work/log.txt" 2>&1 ||
      die "gpt-eval --forgetting: $(tail -2 "$work/log.txt")"
    EVALS+=("$work/forget-$r.json")
  done
  "$BIN/gpt-eval" --device cpu --model "$work/runs/cls-es/best" --task classify --data "$work/cls/val_*.bin" \
    --out-json "$work/classify.json" >"$work/log.txt" 2>&1 || die "gpt-eval classify: $(tail -2 "$work/log.txt")"
  EVALS+=("$work/classify.json")
  RUNS+=("$work/runs/cls-es" "$work/runs/cls-replay")
  ok "tiny fine-tunes: cls-es (early stopping), cls-replay (replay 0.25); forgetting and classify JSON"
else
  echo "note: no gpt-finetune/gpt-eval in $BIN: the fine-tuning plots are not checked"
fi
if [[ -x $BIN/gpt-generate ]]; then
  "$BIN/gpt-generate" --model "$work/runs/lm-val" --prompt "the cat" --max-new-tokens 24 --seed 1 --device cpu \
    --jsonl > "$work/runs/lm-val/sample.jsonl" 2>"$work/log.txt" || die "gpt-generate: $(tail -2 "$work/log.txt")"
else
  echo '{"prompt": "the cat", "completion": " sat on the mat", "tokens": 4, "tokens_per_s": 1.0}' \
    > "$work/runs/lm-val/sample.jsonl"
fi
echo '{"prompt": "extra <prompt>", "completion": " from --samples & escaped", "tokens": 3, "tokens_per_s": 1.0}' \
  > "$work/extra.jsonl"

# ---- the report -----------------------------------------------------------------------------------
mkdir -p "$work/runs/empty"   # no log.jsonl: skipped with a warning
args=("${RUNS[@]}" "$work/runs/empty" --out "$work/report" --samples "$work/extra.jsonl")
[[ ${#EVALS[@]} -gt 0 ]] && args+=(--eval-json "${EVALS[@]}")
if "$PY" "$PLOT" "${args[@]}" >"$work/plot.out" 2>"$work/plot.err"; then
  ok "plot_run.py: $(cat "$work/plot.out")"
else
  die "plot_run.py failed: $(tail -5 "$work/plot.err")"
fi
grep -q "^report: $work/report/index.html" "$work/plot.out" && ok "prints the report's path" ||
  bad "the report's path is not printed: $(cat "$work/plot.out")"
grep -q "empty: no log.jsonl, skipped" "$work/plot.err" && ok "a directory without log.jsonl is skipped with a warning" ||
  bad "no warning for a directory without log.jsonl: $(cat "$work/plot.err")"

expected=(index.html report.md loss-lm.png lr.png grad_norm.png throughput.png)
[[ $finetune == yes ]] && expected+=(loss-classify.png accuracy.png forgetting.png)
missing=()
for f in "${expected[@]}"; do [[ -s $work/report/$f ]] || missing+=("$f"); done
if [[ ${#missing[@]} -eq 0 ]]; then ok "files exist: ${expected[*]}"; else bad "missing: ${missing[*]}"; fi

# static_check DIR: every PNG decodes, is at least 300x200 and not blank; index.html and report.md
# reference every PNG, by relative links that exist. Prints one line per check; exit 1 on a failure.
static_check() {
  "$PY" - "$1" <<'PY'
import html.parser, os, re, sys
import numpy as np
import matplotlib.image as mpimg
d = sys.argv[1]
bad = 0
def say(good, msg):
    global bad
    print(("ok   " if good else "FAIL ") + msg)
    bad += not good
pngs = sorted(f for f in os.listdir(d) if f.endswith(".png"))
say(len(pngs) > 0, f"{len(pngs)} PNG files")
for f in pngs:
    try:
        a = mpimg.imread(os.path.join(d, f))
    except Exception as e:
        say(False, f"{f} does not decode: {e}")
        continue
    rgb = a[..., :3] if a.ndim == 3 else a
    h, w = rgb.shape[:2]
    std = float(rgb.std())
    ink = float((rgb.min(axis=-1) < 0.9).mean()) if rgb.ndim == 3 else float((rgb < 0.9).mean())
    colours = len(np.unique((rgb.reshape(-1, rgb.shape[-1]) * 255).astype(np.uint8), axis=0)) if rgb.ndim == 3 else 0
    say(w >= 300 and h >= 200 and std > 0.02 and ink > 0.01 and colours > 8,
        f"{f} decodes: {w}x{h}, pixel std {std:.3f}, {ink * 100:.1f}% non-white, {colours} colours")
class Srcs(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(); self.srcs = []; self.hrefs = []
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img": self.srcs.append(a.get("src", ""))
        if tag == "a" and a.get("href"): self.hrefs.append(a["href"])
p = Srcs()
p.feed(open(os.path.join(d, "index.html"), encoding="utf-8").read())
md = open(os.path.join(d, "report.md"), encoding="utf-8").read()
md_imgs = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
for kind, refs in (("index.html <img>", p.srcs), ("index.html <a>", p.hrefs), ("report.md image", md_imgs)):
    for s in refs:
        rel = not (s.startswith("/") or re.match(r"^[a-z]+:", s) or ".." in s)
        say(rel and os.path.isfile(os.path.join(d, s)), f"{kind} {s}: relative and exists")
for f in pngs:
    say(f in p.srcs, f"index.html shows {f}")
    say(f in md_imgs, f"report.md shows {f}")
sys.exit(1 if bad else 0)
PY
}
if static_check "$work/report" >"$work/static.txt"; then
  ok "static checks: $(grep -c '^ok' "$work/static.txt") passed"
  sed 's/^/     /' "$work/static.txt"
else
  bad "static checks:"; grep -v '^ok' "$work/static.txt"
fi

# ---- what the report says -------------------------------------------------------------------------
md=$work/report/report.md
row() { grep "^| $1 |" "$md"; }
# columns: run | type | steps | tokens | last train loss | best val loss (step) | last val loss | ...
col() { row "$1" | awk -F' \\| ' -v c="$2" '{print $c}'; }
last_train=$(grep '"train_loss"' "$work/runs/lm-val/log.jsonl" | tail -1 | grep -o '"train_loss":[-0-9.eE+]*' | cut -d: -f2)
[[ $(col lm-val 5) == $(printf '%.4f' "$last_train") ]] && ok "metrics: lm-val last train loss $(col lm-val 5) matches log.jsonl" ||
  bad "metrics: lm-val last train loss '$(col lm-val 5)' vs log.jsonl $last_train"
[[ $(col lm-val 3) == "30 / 30" && $(col lm-val 4) == "3.8k" ]] && ok "metrics: lm-val 30 / 30 steps, 3.8k tokens (30 x 4 x 32)" ||
  bad "metrics: lm-val steps/tokens: $(row lm-val)"
[[ $(col lm-noval 4) == "5.1k" && $(col lm-noval 6) == "–" && $(col lm-noval 9) == "–" ]] &&
  ok "metrics: lm-noval has no validation (–) and 5.1k tokens (20 x total_batch_tokens 256)" ||
  bad "metrics: lm-noval: $(row lm-noval)"
grep -q '^| lm-val | pretrain |.*| [0-9.]* | [0-9.]* | – | – |' "$md" &&
  ok "metrics: lm-val has perplexity and bits per byte, no accuracy" || bad "metrics: lm-val: $(row lm-val)"
if [[ $finetune == yes ]]; then
  [[ $(col cls-es 3) == "6 / 20" && $(col cls-es 13) == "early stop at 6 |" && $(col cls-es 10) == *"(2)" ]] &&
    ok "metrics: cls-es stopped early at step 6 of 20, best accuracy at step 2 (OUT/best)" ||
    bad "metrics: cls-es: $(row cls-es)"
  grep -q "forget-cls-replay.json | lm | .*forgetting: loss" "$md" && ok "evaluations: the forgetting files are summarised" ||
    bad "evaluations: no forgetting row"
fi
grep -q "extra &lt;prompt&gt;</span> from --samples &amp; escaped" "$work/report/index.html" &&
  grep -q "lm-val/sample.jsonl" "$work/report/index.html" &&
  ok "samples: RUN_DIR/sample.jsonl and --samples shown, HTML-escaped" || bad "samples missing from index.html"
grep -q '<tr class="differs"><td>total_batch_tokens</td>' "$work/report/index.html" &&
  ok "settings: config.json keys that differ between runs are highlighted" || bad "settings table"

# A run without validation or accuracy alone; nothing to report is an error.
if "$PY" "$PLOT" "$work/runs/lm-noval" --out "$work/report-noval" >/dev/null 2>"$work/log.txt" &&
   [[ -s $work/report-noval/loss-lm.png && ! -e $work/report-noval/accuracy.png && ! -e $work/report-noval/forgetting.png ]]; then
  ok "a run without validation alone: loss-lm.png, no accuracy or forgetting chart"
else
  bad "run without validation: $(tail -3 "$work/log.txt") $(ls "$work/report-noval" 2>&1)"
fi
if "$PY" "$PLOT" "$work/runs/empty" --out "$work/report-none" >/dev/null 2>"$work/log.txt"; then
  bad "no run and no evaluation: exit status 0"
else
  ok "nothing to report: exits non-zero ($(tail -1 "$work/log.txt"))"
fi

# ---- in a browser ---------------------------------------------------------------------------------
cp -r "$work/report" "$work/copied"   # the folder must work wherever it is copied
chromium=$(command -v chromium || command -v chromium-browser || true)
if [[ -z $chromium && $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
  echo "note: installing Debian's chromium for the browser check (apt-get, as root)"
  export DEBIAN_FRONTEND=noninteractive
  timeout 600 apt-get install -y -q chromium >"$work/apt.txt" 2>&1 ||
    { timeout 300 apt-get update -q >>"$work/apt.txt" 2>&1 && timeout 600 apt-get install -y -q chromium >>"$work/apt.txt" 2>&1; } ||
    echo "note: apt-get install chromium failed: $(tail -2 "$work/apt.txt")"
  chromium=$(command -v chromium || true)
fi
if [[ -z $chromium ]]; then
  echo "SKIPPED: BROWSER CHECK NOT RUN - no chromium, and not root or apt-get could not install it (apt-get install chromium); images not checked in a browser"
else
  if "$PY" "$BROWSER_CHECK" "$work/copied" --chromium "$chromium" >"$work/browser.txt" 2>&1; then
    ok "headless Chromium loads every image of a copy of the report ($(grep -c '^ok' "$work/browser.txt") images)"
    sed 's/^/     /' "$work/browser.txt"
  else
    bad "headless Chromium:"; cat "$work/browser.txt"
  fi
  # The checks can fail: a broken link, and a corrupted PNG, are both caught by both checks.
  cp -r "$work/report" "$work/broken-link"
  sed -i 's/src="lr.png"/src="lr-missing.png"/' "$work/broken-link/index.html"
  sed -i 's/(lr.png)/(lr-missing.png)/' "$work/broken-link/report.md"
  cp -r "$work/report" "$work/broken-png"
  head -c 300 "$work/report/grad_norm.png" > "$work/broken-png/grad_norm.png"
  for b in broken-link:lr-missing.png broken-png:grad_norm.png; do
    dir=${b%%:*} img=${b#*:}
    "$PY" "$BROWSER_CHECK" "$work/$dir" --chromium "$chromium" >"$work/b.txt" 2>&1
    rc=$?
    if [[ $rc -eq 1 ]] && grep -q "FAIL browser could not load $img" "$work/b.txt"; then
      ok "$dir: the browser check fails on $img ($(grep "FAIL" "$work/b.txt" | head -1))"
    else
      bad "$dir: the browser check did not fail (exit $rc): $(cat "$work/b.txt")"
    fi
    if static_check "$work/$dir" >"$work/b.txt"; then
      bad "$dir: the static check did not fail"
    else
      ok "$dir: the static check fails too ($(grep FAIL "$work/b.txt" | head -1))"
    fi
  done
fi

finish "all report checks passed"
