#!/usr/bin/env bash
# The CPU trainer against PyTorch, side by side in one invocation (issue: CPU trainer ahead of
# PyTorch). For each shape and each round, interleaved: ours (bench_train --device cpu, f32) and
# PyTorch eager fp32 (bench/torch_gpt2_train.py --device cpu: the same GPT-2 model and step, AdamW
# with clipping at 1.0), and torch.compile with COMPILE=1. Prints every measurement as it comes,
# then a table of the median of each side's median step time over the rounds and the ratios
# (theirs / ours: above 1 means ours is faster).
#
#   bench/cpu_vs_torch.sh [BUILD_DIR]
#
# Environment: ROUNDS (3), STEPS (5 timed steps per run), WARMUP (2), COMPILE (0; 1 adds
# torch.compile), SHAPES (tiny-cpu,llmc-small,gpt2-124m), OMP_NUM_THREADS (2: both sides use the
# same number of threads), OMP_WAIT_POLICY (passive).
# PyTorch is installed into the project's .venv by this script when it is missing (it is large;
# the test command never installs it). Run it on an idle machine: the load is printed first.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR=${1:-$ROOT/build}
ROUNDS=${ROUNDS:-3}
STEPS=${STEPS:-5}
WARMUP=${WARMUP:-2}
COMPILE=${COMPILE:-0}
SHAPES=${SHAPES:-tiny-cpu,llmc-small,gpt2-124m}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}

ours=$BUILD_DIR/bench/bench_train
if [[ ! -x "$ours" ]]; then
  echo "cpu_vs_torch: $ours not found; build it: cmake --build $BUILD_DIR --target bench_train" >&2
  exit 1
fi
PY=$ROOT/.venv/bin/python
if [[ ! -x "$PY" ]]; then python3 -m venv "$ROOT/.venv"; fi
if ! "$PY" -c "import torch" 2>/dev/null; then
  echo "cpu_vs_torch: installing torch into .venv (once; large)" >&2
  "$PY" -m pip install -q torch
fi

# shape name -> n_layer n_embd n_head vocab batch seq
shape_args() {
  case "$1" in
    tiny-cpu) echo 4 128 4 257 16 256 ;;
    llmc-small) echo 4 256 4 4096 8 256 ;;
    gpt2-124m) echo 12 768 12 50257 4 64 ;;
    *) echo "cpu_vs_torch: unknown shape '$1'" >&2; exit 1 ;;
  esac
}

# One run; prints its median step in ms (the JSON line's median_step_ms).
median_of() { "$PY" -c 'import json,sys; print(json.loads(sys.stdin.read().strip().splitlines()[-1])["median_step_ms"])'; }
run_ours() {
  local L C H V B T
  read -r L C H V B T <<<"$(shape_args "$1")"
  "$ours" --device cpu --n-layer "$L" --n-embd "$C" --n-head "$H" --vocab "$V" --batch "$B" \
    --seq "$T" --steps "$STEPS" --warmup "$WARMUP" | median_of
}
run_torch() {  # shape, compile (0/1)
  local L C H V B T
  read -r L C H V B T <<<"$(shape_args "$1")"
  "$PY" "$ROOT/bench/torch_gpt2_train.py" --device cpu --compile "$2" --n-layer "$L" \
    --n-embd "$C" --n-head "$H" --vocab "$V" --batch "$B" --seq "$T" --steps "$STEPS" \
    --warmup "$WARMUP" 2>/dev/null | median_of
}

echo "# $(date -u +%Y-%m-%dT%H:%MZ) commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')," \
  "$(nproc) cores, OMP_NUM_THREADS=$OMP_NUM_THREADS, load $(cut -d' ' -f1-3 /proc/loadavg)," \
  "torch $("$PY" -c 'import torch; print(torch.__version__)')"
declare -A results
IFS=, read -r -a shapes <<<"$SHAPES"
sides=(ours eager)
if [[ "$COMPILE" == 1 ]]; then sides+=(compile); fi
for ((round = 1; round <= ROUNDS; ++round)); do
  for shape in "${shapes[@]}"; do
    for side in "${sides[@]}"; do
      case "$side" in
        ours) ms=$(run_ours "$shape") ;;
        eager) ms=$(run_torch "$shape" 0) ;;
        compile) ms=$(run_torch "$shape" 1) ;;
      esac
      printf 'round %d  %-11s %-8s %10.1f ms/step\n' "$round" "$shape" "$side" "$ms"
      results[$shape.$side]+="$ms "
    done
  done
done

# The median over the rounds of each side, and the ratios.
median() { tr ' ' '\n' <<<"$1" | grep . | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo
header="| shape | ours ms | eager ms | eager / ours"
if [[ "$COMPILE" == 1 ]]; then header+=" | compile ms | compile / ours"; fi
echo "$header |"
echo "$header |" | sed 's/[^|]\+/---/g'
for shape in "${shapes[@]}"; do
  o=$(median "${results[$shape.ours]}")
  e=$(median "${results[$shape.eager]}")
  line=$(awk -v s="$shape" -v o="$o" -v e="$e" 'BEGIN {printf "| %s | %.1f | %.1f | %.2fx", s, o, e, e / o}')
  if [[ "$COMPILE" == 1 ]]; then
    c=$(median "${results[$shape.compile]}")
    line+=$(awk -v o="$o" -v c="$c" 'BEGIN {printf " | %.1f | %.2fx", c, c / o}')
  fi
  echo "$line |"
done
