#!/usr/bin/env bash
# Fuzzes every parser of the project's input files for a bounded time (docs/testing.md,
# "Fuzzing"): a clang build (BUILD_DIR default build-fuzz, GPT_FUZZ=ON: libFuzzer + ASan + UBSan,
# GPT_CUDA=OFF), then each target of tests/fuzz for FUZZ_SECONDS (default 60), starting from its
# seed corpus (tests/fuzz/corpus/TARGET) and its regressions (tests/fuzz/regressions/TARGET).
# A crash, a sanitizer report, an error that does not name its file, a leak, or an allocation over
# FUZZ_MALLOC_MB (default 512: no parser may allocate what a header claims) fails the run; the
# input that did it is left in FUZZ_OUT (default build-fuzz/findings) and its path printed: copy it
# into tests/fuzz/regressions/TARGET/ when the bug is fixed (the normal ctest run replays it).
# Usage: scripts/test_fuzz.sh [TARGET...]    (run by .ci/run; needs scripts/setup.sh's clang)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build-fuzz}
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
FUZZ_MALLOC_MB=${FUZZ_MALLOC_MB:-512}
JOBS=${JOBS:-$(nproc)}
FUZZ_OUT=${FUZZ_OUT:-$BUILD_DIR/findings}
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive} OMP_NUM_THREADS=1
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
  targets=(safetensors shard checkpoint config tokenizer finetune_data llmc bpe_encode)
fi
if ! command -v clang++ >/dev/null; then
  echo "test_fuzz: clang++ not found (scripts/setup.sh installs clang and libclang-rt-dev)" >&2
  exit 1
fi
CC=clang CXX=clang++ cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DGPT_FUZZ=ON -DGPT_CUDA=OFF -DGPT_MPI=OFF -DGPT_BUILD_BENCH=OFF >/dev/null
cmake --build "$BUILD_DIR" -j "$JOBS" --target fuzz_all
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
mkdir -p "$FUZZ_OUT"
failed=()
for t in "${targets[@]}"; do
  exe=$BUILD_DIR/tests/fuzz/fuzz_$t
  [[ -x $exe ]] || { echo "test_fuzz: no target $t"; exit 2; }
  # libFuzzer adds what it finds to the first folder: a scratch copy, so the committed seeds stay.
  work=$FUZZ_OUT/corpus_$t
  mkdir -p "$work"
  log=$FUZZ_OUT/$t.log
  # Only the folders that exist: git keeps no empty folder, and libFuzzer exits on a missing one.
  inputs=("$work")
  for d in tests/fuzz/corpus/$t tests/fuzz/regressions/$t; do [[ -d $d ]] && inputs+=("$d"); done
  # timeout: libFuzzer can hang after a crash it cannot report (out of mappings).
  if timeout $((FUZZ_SECONDS * 2 + 120)) "$exe" "${inputs[@]}" -max_total_time="$FUZZ_SECONDS" \
       -malloc_limit_mb="$FUZZ_MALLOC_MB" -rss_limit_mb=2048 -timeout=25 -max_len=131072 \
       -artifact_prefix="$FUZZ_OUT/${t}-" -print_final_stats=1 >"$log" 2>&1; then
    runs=$(grep -ao 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
    cov=$(grep -ao 'cov: [0-9]*' "$log" | tail -n 1 || true)
    echo "ok   fuzz_$t: $runs inputs in ${FUZZ_SECONDS}s, $cov"
  else
    echo "FAIL fuzz_$t: see $log; the input: $(ls "$FUZZ_OUT/${t}-"* 2>/dev/null | head -n 1)"
    grep -aE "FINDING|ERROR: |SUMMARY|runtime error|==ERROR|out-of-memory|malloc\(" "$log" | head -n 8 || true
    failed+=("$t")
  fi
done
if [[ ${#failed[@]} -gt 0 ]]; then
  echo "fuzzing: ${#failed[@]} target(s) found a bug: ${failed[*]}"
  exit 1
fi
echo "fuzzing: ok (${#targets[@]} targets, ${FUZZ_SECONDS}s each)"
