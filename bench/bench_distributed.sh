#!/usr/bin/env bash
# Data-parallel throughput on CPU ranks (docs/distributed.md): the tiny-cpu shape (4 layers, width
# 128, vocab 257, B 16, T 256) on tinyshakespeare with one global batch of 4 micro-batches
# (16,384 tokens a step), run by one process and by mpirun -np 2 and -np 4, side by side in one
# invocation. Prints one line per world size: tokens/s (median step), the step time, and the
# communication per step (bytes sent by one rank and seconds in collectives), then checks that
# every run logged the same losses. On a machine with fewer cores than ranks the ranks share cores
# (--oversubscribe): read the communication columns, not the speed-up.
# Usage: bench/bench_distributed.sh [BUILD_DIR]   (environment: STEPS, default 8; THREADS per
# rank, default: cores / ranks, at least 1)
set -euo pipefail
BUILD_DIR=${1:-build}
STEPS=${STEPS:-8}
BIN=$BUILD_DIR/apps
export OMP_WAIT_POLICY=passive OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
cores=$(env -u OMP_NUM_THREADS nproc)
text=${GPT_BENCH_TEXT:-$(dirname "$0")/../../shared/data/tinyshakespeare/input.txt}
[[ -f $text ]] || { echo "bench_distributed.sh: no $text (set GPT_BENCH_TEXT)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$BIN/gpt-prepare" --tokenizer bytes --input "$text" --out "$work/data" 2>/dev/null
args=(--config configs/tiny-cpu.json --train-data "$work/data/train_*.bin" --device cpu
      --total-batch-tokens 16384 --steps "$STEPS" --eval-every 0 --warmup-steps 2)
echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $cores cores, load: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-6s %-8s %12s %10s %14s %12s\n' ranks threads "tokens/s" "step ms" "comm MB/step" "comm ms/step"
for n in 1 2 4; do
  t=${THREADS:-$(( cores / n > 0 ? cores / n : 1 ))}
  if [[ $n -eq 1 ]]; then launch=(); else launch=(mpirun --oversubscribe --bind-to none -np "$n"); fi
  OMP_NUM_THREADS=$t "${launch[@]}" "$BIN/gpt-pretrain" "${args[@]}" --threads "$t" --out "$work/r$n" 2>"$work/r$n.err" >/dev/null ||
    { echo "run at $n ranks failed:"; tail -3 "$work/r$n.err"; exit 1; }
  python3 - "$work/r$n/log.jsonl" "$n" "$t" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if '"train_loss"' in l]
rows = rows[2:] if len(rows) > 4 else rows  # skip the warm-up steps
tps = statistics.median(r["tokens_per_s"] for r in rows)
mb = statistics.median(r.get("comm_bytes", 0) for r in rows) / 1e6
ms = statistics.median(r.get("comm_ms", 0) for r in rows)
print(f"{sys.argv[2]:<6} {sys.argv[3]:<8} {tps:12,.0f} {16384 / tps * 1000:10.1f} {mb:14.3f} {ms:12.1f}")
PY
done
strip() { sed -E 's/"(tokens_per_s|comm_bytes|comm_ms)":[^,}]*,?//g; s/,}/}/' "$1"; }
for n in 2 4; do
  if ! diff -q <(strip "$work/r1/log.jsonl") <(strip "$work/r$n/log.jsonl") >/dev/null; then
    echo "losses at $n ranks differ from one process"; exit 1
  fi
done
echo "losses: 1, 2 and 4 ranks logged the same bits"
