#!/usr/bin/env bash
# The whole life of a small model on 2 CPU cores, end to end (docs/walkthrough.md shows its output):
#   1. pretrain on general English (Austen, the King James Bible, TinyStories) with our own BPE
#   2. continue pretraining on tinyshakespeare (domain-adaptive)
#   3. fine-tune on SST-2 three ways (full, LoRA, freeze), beside the majority class and a
#      bag-of-words logistic regression; accuracy, trainable parameters, peak memory, step time
#   4. the forgetting report of each, with and without replay of general text
#   5. SFT on GSM8K: samples, the answer-format rate, the completion loss against the base model
# Prints one table per part and writes OUT/results.json.
#
#   scripts/walkthrough.sh                 # 32 minutes on 2 idle cores (measured)
#   SCALE=0.1 scripts/walkthrough.sh       # a smoke run: every step count scaled down
# Environment: BUILD_DIR (build), OUT (runs/walkthrough), SCALE (1), DATA (../shared/data),
# START=sst2 to reuse OUT's data, base and shakespeare models and run parts 3-5 again,
# SST_RUNS="lora freeze" to run only some SST-2 runs, SST_STEPS (3000) their steps.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
BUILD_DIR=${BUILD_DIR:-build}
OUT=${OUT:-runs/walkthrough}
SCALE=${SCALE:-1}
DATA=${DATA:-../shared/data}
BIN=$BUILD_DIR/apps
PY=python3
[[ -x .venv/bin/python ]] && PY=.venv/bin/python
steps() { "$PY" -c "import sys; print(max(2, int(round($1 * float(sys.argv[1])))))" "$SCALE"; }
stamp() { date +%s; }
T0=$(stamp)
log() { echo "[$(( $(stamp) - T0 ))s] $*" >&2; }

for f in austen/austen_all.txt kjv/kjv_verses.txt tinystories/tinystories_val.txt \
         tinyshakespeare/input.txt sst2/train.tsv sst2/dev.tsv gsm8k/train.jsonl gsm8k/test.jsonl; do
  [[ -f $DATA/$f ]] || { echo "walkthrough: $DATA/$f is missing (set DATA=...)" >&2; exit 1; }
done
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD_DIR" -j "$(nproc)" --target gpt-prepare gpt-pretrain gpt-finetune gpt-eval gpt-generate >/dev/null
START=${START:-all}
mkdir -p "$OUT"
if [[ $START == all ]]; then
  rm -rf "$OUT"/{data,base,shakespeare,sst2-*,gsm8k-*,eval}
else
  [[ -d $OUT/base && -d $OUT/data/sst2-train ]] || { echo "walkthrough: START=$START needs a finished part 1-2 in $OUT" >&2; exit 1; }
  for r in ${SST_RUNS:-full lora freeze full-replay lora-replay freeze-replay}; do rm -rf "$OUT/sst2-$r"; done
  rm -rf "$OUT"/gsm8k-*
fi
mkdir -p "$OUT/eval"

if [[ $START == all ]]; then
# ---- 1. data and pretraining on general English ---------------------------------------------------
log "prepare: general English with a trained BPE (vocabulary 2048)"
"$BIN/gpt-prepare" --input "$DATA/austen/austen_all.txt" --input "$DATA/kjv/kjv_verses.txt" \
  --input "$DATA/tinystories/tinystories_val.txt" --split-docs blank-lines \
  --train-tokenizer --vocab-size 2048 --val-fraction 0.05 --out "$OUT/data/general"
TOK=$OUT/data/general/tokenizer
"$BIN/gpt-prepare" --input "$DATA/tinyshakespeare/input.txt" --tokenizer "$TOK" --out "$OUT/data/shakespeare"
"$BIN/gpt-prepare" --task classify --format sst2 --input "$DATA/sst2/train.tsv" --tokenizer "$TOK" \
  --val-fraction 0 --seq-len 96 --truncate --out "$OUT/data/sst2-train"
"$BIN/gpt-prepare" --task classify --format sst2 --input "$DATA/sst2/dev.tsv" --tokenizer "$TOK" \
  --val-fraction 0 --seq-len 96 --truncate --out "$OUT/data/sst2-dev"
"$BIN/gpt-prepare" --task sft --format gsm8k --input "$DATA/gsm8k/train.jsonl" --tokenizer "$TOK" \
  --val-docs 200 --seq-len 512 --truncate --out "$OUT/data/gsm8k"

MODEL=(--n-layer 4 --n-head 4 --n-embd 128 --max-seq-len 512)
log "pretrain: 4 layers x 128, context 512, on general English"
"$BIN/gpt-pretrain" "${MODEL[@]}" --seq-len 512 --batch-size 8 --steps "$(steps 1500)" --lr 0.002 \
  --min-lr 0.0002 --warmup-steps 100 --weight-decay 0.1 --eval-every 500 --val-max-batches 40 \
  --train-data "$OUT/data/general/train_*.bin" --val-data "$OUT/data/general/val_*.bin" \
  --out "$OUT/base" --device cpu --overwrite true 2> "$OUT/base.log"
tail -n 3 "$OUT/base.log" >&2

# ---- 2. domain-adaptive pretraining on tinyshakespeare ---------------------------------------------
log "continue pretraining on tinyshakespeare"
"$BIN/gpt-finetune" --init "$OUT/base" --task lm --method full --lr 0.001 --steps "$(steps 300)" \
  --batch-size 16 --seq-len 256 --eval-every 100 --val-max-batches 20 --weight-decay 0.1 \
  --train-data "$OUT/data/shakespeare/train_*.bin" --val-data "$OUT/data/shakespeare/val_*.bin" \
  --out "$OUT/shakespeare" --device cpu --overwrite true 2> "$OUT/shakespeare.log"
for m in base shakespeare; do
  for d in general shakespeare; do
    "$BIN/gpt-eval" --model "$OUT/$m" --task lm --data "$OUT/data/$d/val_*.bin" --max-examples 2000 --seq-len 256 \
      --out-json "$OUT/eval/lm-$m-$d.json" --device cpu > /dev/null
  done
done
fi
TOK=$OUT/data/general/tokenizer

# ---- 3. SST-2: full, LoRA, freeze --------------------------------------------------------------------
SST=(--task classify --train-data "$OUT/data/sst2-train/train_*.bin" --val-data "$OUT/data/sst2-dev/train_*.bin"
     --batch-size 32 --seq-len 96 --truncate true --group-by-length true --eval-every "$(steps 250)"
     --device cpu --overwrite true)
run_sst() {  # NAME METHOD EXTRA...
  local name=$1 method=$2
  shift 2
  log "SST-2: $name"
  "$BIN/gpt-finetune" --init "$OUT/base" --method "$method" --steps "$(steps ${SST_STEPS:-3000})" "${SST[@]}" "$@" \
    --out "$OUT/sst2-$name" 2> "$OUT/sst2-$name.log"
  "$BIN/gpt-eval" --model "$OUT/sst2-$name/best" --task classify --data "$OUT/data/sst2-dev/train_*.bin" \
    --out-json "$OUT/eval/sst2-$name.json" --device cpu > /dev/null
  "$BIN/gpt-eval" --model "$OUT/sst2-$name/best" --task lm --data "$OUT/data/general/val_*.bin" --max-examples 2000 --seq-len 256 \
    --forgetting --base "$OUT/base" --out-json "$OUT/eval/forget-$name.json" --device cpu > /dev/null
}
SST_RUNS=${SST_RUNS:-full lora freeze full-replay lora-replay freeze-replay}
want() { [[ " $SST_RUNS " == *" $1 "* ]]; }
want full && run_sst full full --lr 0.0003
want lora && run_sst lora lora --lr 0.002 --lora-rank 8 --lora-targets qkv,attproj,fc,fcproj
FREEZE=(--lr 0.001 --train-top 3 --train-layernorm true --train-biases true)
want freeze && run_sst freeze freeze "${FREEZE[@]}"
REPLAY=(--replay-data "$OUT/data/general/train_*.bin" --replay-ratio 0.25)
want full-replay && run_sst full-replay full --lr 0.0003 "${REPLAY[@]}"
want lora-replay && run_sst lora-replay lora --lr 0.002 --lora-rank 8 --lora-targets qkv,attproj,fc,fcproj "${REPLAY[@]}"
want freeze-replay && run_sst freeze-replay freeze "${FREEZE[@]}" "${REPLAY[@]}"
log "SST-2: bag-of-words logistic regression baseline"
"$PY" - "$DATA/sst2" "$OUT/eval/sst2-bow.json" <<'PY' || echo '{"accuracy": null}' > "$OUT/eval/sst2-bow.json"
import json, sys
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.linear_model import LogisticRegression
def read(p):
    rows = [l.rstrip("\n").split("\t") for l in open(p, encoding="utf-8")][1:]
    return [r[1] for r in rows], [int(r[0]) for r in rows]
xt, yt = read(sys.argv[1] + "/train.tsv"); xd, yd = read(sys.argv[1] + "/dev.tsv")
vec = CountVectorizer(); clf = LogisticRegression(max_iter=2000).fit(vec.fit_transform(xt), yt)
acc = (clf.predict(vec.transform(xd)) == yd).mean()
maj = max(sum(yd), len(yd) - sum(yd)) / len(yd)
json.dump({"accuracy": float(acc), "majority": maj}, open(sys.argv[2], "w"))
PY

# ---- 5. SFT on GSM8K ----------------------------------------------------------------------------------
log "SFT on GSM8K"
"$BIN/gpt-finetune" --init "$OUT/base" --task sft --method full --lr 0.0005 --steps "$(steps 1200)" \
  --batch-size 8 --seq-len 512 --truncate true --group-by-length true --eval-every "$(steps 300)" \
  --train-data "$OUT/data/gsm8k/train_*.bin" --val-data "$OUT/data/gsm8k/val_*.bin" \
  --out "$OUT/gsm8k-sft" --device cpu --overwrite true 2> "$OUT/gsm8k-sft.log"
for m in base gsm8k-sft; do
  model=$OUT/$m
  [[ $m == gsm8k-sft ]] && model=$OUT/$m/best
  "$BIN/gpt-eval" --model "$model" --task generate --format gsm8k --data "$DATA/gsm8k/test.jsonl" \
    --max-examples "$(steps 50)" --max-new-tokens 160 --out-json "$OUT/eval/gsm8k-$m.json" --device cpu > /dev/null
done

log "summary"
"$PY" scripts/walkthrough_report.py "$OUT" | tee "$OUT/summary.txt"

# ---- the report: every run's curves, the evaluations and the GSM8K generations (docs/report.md) -----
log "report"
if ! .venv/bin/python -c "import matplotlib" 2>/dev/null; then bash scripts/python_deps.sh >&2; fi
if [[ -x .venv/bin/python ]] && .venv/bin/python -c "import matplotlib" 2>/dev/null; then
  report_runs=()
  for d in "$OUT/base" "$OUT/shakespeare" "$OUT"/sst2-*/ "$OUT"/gsm8k-*/; do
    if [[ -f $d/log.jsonl ]]; then report_runs+=("${d%/}"); fi
  done
  report_args=(--title "Walkthrough: the life of a small model" --out "$OUT/report")
  for f in "$OUT"/eval/*.json; do  # sst2-bow.json is the scikit-learn baseline, not gpt-eval's
    if [[ -f $f && $f != */sst2-bow.json ]]; then report_args+=(--eval-json "$f"); fi
  done
  .venv/bin/python scripts/plot_run.py "${report_runs[@]}" "${report_args[@]}"
else
  echo "report: not written (matplotlib is missing from .venv: scripts/python_deps.sh could not install it)"
fi
log "done in $(( $(stamp) - T0 )) s"
