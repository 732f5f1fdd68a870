#!/usr/bin/env bash
# The main job, end to end: set-up, build, prepare tinyshakespeare (training its own BPE tokenizer),
# pretrain the tiny-cpu preset (on the GPU if there is one, else the CPU), and print the validation
# loss curve.
#
#   scripts/quickstart.sh            # everything
#   OUT=runs/quick scripts/quickstart.sh
#
# Environment: BUILD_DIR (default build), OUT (default runs/quickstart), STEPS (override the
# preset's step count, e.g. STEPS=100 for a smoke run), VOCAB_SIZE (the trained tokenizer's size).
set -euo pipefail
cd "$(dirname "$0")/.."
# GNU OpenMP busy-waits by default, which is several times slower on a shared machine.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
ROOT=$(pwd)
BUILD_DIR=${BUILD_DIR:-build}
OUT=${OUT:-runs/quickstart}
DATA_DIR=$OUT/data

echo "== set-up"
bash scripts/setup.sh
echo "== build"
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD_DIR" -j "$(nproc)" --target gpt-prepare gpt-pretrain gpt-finetune gpt-eval gpt-generate

echo "== data: tinyshakespeare"
corpus=$ROOT/../shared/data/tinyshakespeare/input.txt
if [[ ! -f $corpus ]]; then
  corpus=$OUT/input.txt
  if [[ ! -f $corpus ]]; then
    mkdir -p "$OUT"
    url=https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt
    echo "downloading $url"
    curl -fsSL "$url" -o "$corpus.tmp" || wget -qO "$corpus.tmp" "$url" || {
      echo "quickstart: cannot find ../shared/data/tinyshakespeare and cannot download it" >&2; exit 1; }
    mv "$corpus.tmp" "$corpus"
  fi
fi
# A byte-level BPE of VOCAB_SIZE tokens trained on the training split (saved in $DATA_DIR/tokenizer).
# On tinyshakespeare with the tiny-cpu preset, 1024 tokens reach a clearly lower validation bits per
# byte than the bytes tokenizer (2.33 vs 2.51) and than 512 tokens; 2048 tokens gain only ~0.01 more,
# cost 12% more per step and start to overfit by the end (docs/data.md has the figures).
"$BUILD_DIR/apps/gpt-prepare" --train-tokenizer --vocab-size "${VOCAB_SIZE:-1024}" --input "$corpus" --out "$DATA_DIR"

device=cpu
if command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then device=auto; fi
echo "== pretrain tiny-cpu on device=$device"
extra=()
if [[ -n ${STEPS:-} ]]; then extra+=(--steps "$STEPS"); fi
"$BUILD_DIR/apps/gpt-pretrain" --config configs/tiny-cpu.json \
  --train-data "$DATA_DIR/train_*.bin" --val-data "$DATA_DIR/val_*.bin" \
  --out "$OUT/tiny" --overwrite true --device "$device" "${extra[@]}"

echo "== validation loss curve ($OUT/tiny/log.jsonl)"
python3 - "$OUT/tiny/log.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
val = [(r["step"], r["val_loss"], r.get("val_bpb")) for r in rows if "val_loss" in r]
print(f"{'step':>6} {'val loss':>9} {'bits/byte':>9}")
for step, loss, bpb in val:
    print(f"{step:>6} {loss:>9.4f} {bpb if bpb is None else format(bpb, '.4f'):>9}")
print(f"validation loss: {val[0][1]:.4f} at step {val[0][0]} -> {val[-1][1]:.4f} at step {val[-1][0]}")
PY

# ---- fine-tune and evaluate: SST-2 sentiment with LoRA, forgetting, a sample -------------------------
SST=$ROOT/../shared/data/sst2
if [[ -f $SST/train.tsv && -f $SST/dev.tsv ]]; then
  echo "== fine-tune: SST-2 sentiment, LoRA on the tiny model"
  "$BUILD_DIR/apps/gpt-prepare" --task classify --format sst2 --input "$SST/train.tsv" --tokenizer "$DATA_DIR/tokenizer" \
    --val-fraction 0 --seq-len 96 --truncate --out "$OUT/sst2-train"
  "$BUILD_DIR/apps/gpt-prepare" --task classify --format sst2 --input "$SST/dev.tsv" --tokenizer "$DATA_DIR/tokenizer" \
    --val-fraction 0 --seq-len 96 --truncate --out "$OUT/sst2-dev"
  "$BUILD_DIR/apps/gpt-finetune" --init "$OUT/tiny" --task classify --method lora --lr 0.002 \
    --lora-targets qkv,attproj,fc,fcproj --steps "${FT_STEPS:-1000}" --batch-size 32 --seq-len 96 --truncate true --group-by-length true \
    --eval-every 250 --train-data "$OUT/sst2-train/train_*.bin" --val-data "$OUT/sst2-dev/train_*.bin" \
    --out "$OUT/sst2-lora" --overwrite true --device "$device"
  "$BUILD_DIR/apps/gpt-eval" --model "$OUT/sst2-lora/best" --task classify --data "$OUT/sst2-dev/train_*.bin" \
    --device "$device" --out-json "$OUT/sst2-eval.json" > "$OUT/sst2-eval.txt"
  "$BUILD_DIR/apps/gpt-eval" --model "$OUT/sst2-lora/best" --task lm --data "$DATA_DIR/val_*.bin" \
    --base "$OUT/tiny" --seq-len 256 --device "$device" --out-json "$OUT/forgetting.json" > "$OUT/forgetting.txt"
else
  echo "== fine-tune: skipped (../shared/data/sst2 is not here)"
fi
"$BUILD_DIR/apps/gpt-generate" --model "$OUT/tiny" --prompt "ROMEO:" --max-new-tokens 120 --temperature 0.8 \
  --top-k 40 --seed 1 --device "$device" --jsonl > "$OUT/sample.jsonl"

echo "== results"
python3 - "$OUT" <<'PY'
import json, os, sys
out = sys.argv[1]
rows = [json.loads(l) for l in open(os.path.join(out, "tiny/log.jsonl"))]
val = [r for r in rows if "val_loss" in r]
print(f"{'what':<44}{'value':>12}")
print(f"{'pretrain: validation loss (start -> end)':<44}{val[0]['val_loss']:>6.3f} -> {val[-1]['val_loss']:.3f}")
if val[-1].get("val_bpb"):
    print(f"{'pretrain: validation bits per byte':<44}{val[-1]['val_bpb']:>12.4f}")
p = os.path.join(out, "sst2-eval.json")
if os.path.exists(p):
    m = json.load(open(p))["metrics"]
    print(f"{'SST-2 dev accuracy, LoRA (majority: 0.509)':<44}{m['accuracy']:>12.4f}")
    print(f"{'SST-2 dev macro F1':<44}{m['macro']['f1']:>12.4f}")
p = os.path.join(out, "forgetting.json")
if os.path.exists(p):
    f = json.load(open(p))["metrics"]
    print(f"{'forgetting: tinyshakespeare val loss change':<44}{f['model']['loss'] - f['base']['loss']:>+12.4f}")
s = json.loads(open(os.path.join(out, "sample.jsonl")).readline())
print("sample (ROMEO:):", repr(s["completion"][:160]))
PY

# ---- the report: plots of both runs, the metrics, the evaluations and the sample (docs/report.md) ---
echo "== report"
if ! .venv/bin/python -c "import matplotlib" 2>/dev/null; then bash scripts/python_deps.sh; fi
if [[ -x .venv/bin/python ]] && .venv/bin/python -c "import matplotlib" 2>/dev/null; then
  report_runs=("$OUT/tiny")
  if [[ -f $OUT/sst2-lora/log.jsonl && -f $OUT/sst2-eval.json ]]; then report_runs+=("$OUT/sst2-lora"); fi
  report_args=(--samples "$OUT/sample.jsonl" --title "Quickstart: tiny-cpu on tinyshakespeare" --out "$OUT/report")
  for f in "$OUT/sst2-eval.json" "$OUT/forgetting.json"; do
    if [[ -f $f ]]; then report_args+=(--eval-json "$f"); fi
  done
  .venv/bin/python scripts/plot_run.py "${report_runs[@]}" "${report_args[@]}"
else
  echo "report: not written (matplotlib is missing from .venv: scripts/python_deps.sh could not install it)"
fi
