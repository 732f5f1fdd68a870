#!/usr/bin/env bash
# CPU training throughput at the shapes llm.c's CPU trainer was measured at (see RESULTS.md):
#   small: n_layer 4, n_embd 256, n_head 4, vocab 4096, B 8, T 256
#   gpt2:  GPT-2 124M (12 layers, 768 wide, 12 heads, vocab 50257), B 4, T 64
# and the tiny-cpu preset's own shape. One JSON line each.
# Usage: bench/cpu_train_bench.sh [BUILD_DIR]   (environment: STEPS, default 5)
set -euo pipefail
BUILD_DIR=${1:-build}
STEPS=${STEPS:-5}
bin=$BUILD_DIR/bench/bench_train
echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(nproc) cores, OMP_NUM_THREADS=${OMP_NUM_THREADS:-unset}, load: $(cut -d' ' -f1-3 /proc/loadavg)"
"$bin" --label tiny-cpu --n-layer 4 --n-embd 128 --n-head 4 --vocab 257 --batch 16 --seq 256 --steps "$STEPS"
"$bin" --label llmc-small --n-layer 4 --n-embd 256 --n-head 4 --vocab 4096 --batch 8 --seq 256 --steps "$STEPS"
"$bin" --label gpt2-124m --n-layer 12 --n-embd 768 --n-head 12 --vocab 50257 --batch 4 --seq 64 --steps "$STEPS"
