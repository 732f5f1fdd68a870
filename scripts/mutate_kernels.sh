#!/usr/bin/env bash
# Does the CPU emulation of CUDA (tests/cuda_emu, docs/testing.md) catch real kernel bugs? Issue 20,
# section 3. Injects typical CUDA bugs one at a time into a copy of the committed tree, rebuilds
# only the emulated test binary that should notice, runs it (GPT_TEST_SHAPES=small, every launch
# under the emulator's schedules), and prints a table: mutation, file, test, caught or missed, and
# the first line of the failure. The repository itself is never edited.
#
# Exit status: 0 when every mutation expected to be caught was caught; 1 when one was missed, its
# anchor text was not found exactly once, or the mutated copy did not build; 2 when the unmutated
# copy already fails its tests (then a failure would show nothing).
#
# Environment:
#   REV           what to copy (default HEAD: uncommitted edits are not tested)
#   WORK          folder for the copy and its build (default: a new folder under TMPDIR or /tmp)
#   KEEP=1        keep the copy, its build and the per-mutation logs (WORK/logs) afterwards
#   RESULTS       also write the table to this file
#   JOBS          build parallelism (default: number of cores)
#   TEST_TIMEOUT  seconds per test run (default 600; a timeout counts as caught)
# Takes about 5 minutes on 2 cores: 2 for the first build of the copy, then 10-60 s a mutation.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
REV=${REV:-HEAD}
JOBS=${JOBS:-$(nproc)}
TEST_TIMEOUT=${TEST_TIMEOUT:-600}
KEEP=${KEEP:-0}
if [[ -z "${WORK:-}" ]]; then
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/mutate_kernels.XXXXXX")
else
  mkdir -p "$WORK"
fi
SRC="$WORK/src"
BUILD="$WORK/build-emu"
LOGS="$WORK/logs"
# Removes only what this script made (WORK itself only when it is left empty).
cleanup() {
  if [[ "$KEEP" == 1 ]]; then echo "mutate_kernels: kept $WORK"; return; fi
  rm -rf "$SRC" "$BUILD" "$LOGS" "$WORK/saved_file"
  rmdir "$WORK" 2>/dev/null || true
}
trap cleanup EXIT
start=$(date +%s)

# ---- the copy and its emulated build ----------------------------------------------------------
rm -rf "$SRC" "$LOGS"  # a WORK reused from an earlier run: a fresh copy, the build kept
mkdir -p "$SRC" "$LOGS"
git -C "$ROOT" archive "$REV" | tar -x -C "$SRC"
echo "mutate_kernels: $(git -C "$ROOT" rev-parse --short "$REV") copied to $SRC; building (once)"
cmake -S "$SRC" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DGPT_CUDA=OFF -DGPT_CUDA_EMU=ON \
  -DGPT_BUILD_BENCH=OFF >"$LOGS/configure.log" 2>&1 || {
  tail -20 "$LOGS/configure.log"; echo "mutate_kernels: configure failed" >&2; exit 1; }
cmake --build "$BUILD" -j "$JOBS" --target test_flash_attention test_cuda_ops \
  >"$LOGS/build.log" 2>&1 || {
  tail -30 "$LOGS/build.log"; echo "mutate_kernels: build of the copy failed" >&2; exit 1; }
echo "mutate_kernels: built in $(( $(date +%s) - start )) s"

# The tests that judge the mutations. The flash-attention pair covers forward and backward at odd
# lengths (partial tiles, masked tails) and at tile multiples; the ops filters take every dtype.
FLASH_TESTS='FlashAttention.OddLengthsHeadSize64:FlashAttention.TileMultiples'

# run_test TARGET FILTER LOG: the emulated test binary with a gtest filter; returns its status.
run_test() {
  local target=$1 filter=$2 log=$3
  (cd "$BUILD" && GPT_TEST_SHAPES=small OMP_WAIT_POLICY=passive \
     timeout --kill-after=30 "$TEST_TIMEOUT" "./tests/$target" --gtest_filter="$filter") \
    >"$log" 2>&1
}

# first_failure LOG STATUS: one line saying how the test failed: the line after gtest's first
# "Failure" (the expectation or the exception text; when it ends in ":", as "Expected equality of
# these values:" does, the lines that complete it are joined on), else the timeout, the signal or
# the last line.
first_failure() {
  local log=$1 status=$2 line
  line=$(awk '
    more && /^ / && lines < 5 { sub(/^ +/, ""); joined = joined " " $0; lines++; next }
    more { exit }
    found { joined = $0; lines = 1; if ($0 ~ /:$/) { more = 1; next } else exit }
    /: Failure$/ { found = 1 }
    END { print joined }' "$log")
  if [[ -z "$line" ]]; then
    if [[ $status -eq 124 || $status -eq 137 ]]; then line="timed out after ${TEST_TIMEOUT} s"
    elif [[ $status -gt 128 ]]; then line="killed by signal $(( status - 128 )): $(grep -v '^\s*$' "$log" | tail -1)"
    else line=$(grep -v '^\s*$' "$log" | tail -1); fi
  fi
  line=${line//$'\t'/ }
  printf '%s' "${line:0:180}"
}

# ---- baseline: the unmutated copy passes every test used below ---------------------------------
for spec in "test_flash_attention|$FLASH_TESTS" "test_flash_attention|FlashAttention.*" \
            "test_cuda_ops|*Residual*" "test_cuda_ops|*LayerNorm*" "test_cuda_ops|*Matmul*" \
            "test_cuda_ops|*AdamW*"; do
  target=${spec%%|*} filter=${spec#*|}
  if ! run_test "$target" "$filter" "$LOGS/baseline.log"; then
    tail -30 "$LOGS/baseline.log"
    echo "mutate_kernels: the UNMUTATED copy fails $target --gtest_filter=$filter" >&2
    exit 2
  fi
done
echo "mutate_kernels: baseline passes"

# ---- the mutations ------------------------------------------------------------------------------
rows=()
failed=0
n=0

# mutate NAME FILE TARGET FILTER EXPECT ANCHOR REPLACEMENT
#   Replaces ANCHOR (which must occur exactly once in FILE) by REPLACEMENT in the copy, rebuilds
#   TARGET, runs it with FILTER, restores FILE. EXPECT is "caught" (a miss fails this script) or
#   "maybe" (a known blind spot: reported, never fatal).
mutate() {
  local name=$1 file=$2 target=$3 filter=$4 expect=$5 anchor=$6 replacement=$7
  n=$((n + 1))
  local log="$LOGS/$(printf '%02d' "$n").log" saved="$WORK/saved_file" result detail status=0
  echo "mutate_kernels: [$n] $name ($file)"
  cp "$SRC/$file" "$saved"
  if ! ANCHOR="$anchor" REPLACEMENT="$replacement" python3 - "$SRC/$file" <<'PY'
import os, sys
path, anchor, replacement = sys.argv[1], os.environ["ANCHOR"], os.environ["REPLACEMENT"]
text = open(path, encoding="utf-8").read()
count = text.count(anchor)
if count != 1:
    sys.exit("anchor found %d times (want exactly 1) in %s: %r" % (count, path, anchor))
open(path, "w", encoding="utf-8").write(text.replace(anchor, replacement))
PY
  then
    result="ERROR" detail="anchor text not found exactly once"
  elif ! cmake --build "$BUILD" -j "$JOBS" --target "$target" >"$log" 2>&1; then
    result="ERROR" detail="mutated copy did not build: $(grep -m1 'error' "$log" | cut -c1-100)"
  else
    run_test "$target" "$filter" "$log" || status=$?
    if [[ $status -ne 0 ]]; then
      result="caught" detail=$(first_failure "$log" "$status")
    else
      result="MISSED" detail="-"
    fi
  fi
  cp "$saved" "$SRC/$file"  # restore (a fresh mtime: the next build of this target recompiles it)
  if [[ "$result" == ERROR || ( "$result" == MISSED && "$expect" == caught ) ]]; then
    failed=1
  fi
  if [[ "$result" == MISSED && "$expect" == maybe ]]; then result="missed (expected)"; fi
  rows+=("$n"$'\t'"$name"$'\t'"$file"$'\t'"$target $filter"$'\t'"$result"$'\t'"$detail")
}

# 1. Missing barrier: the forward kernel's wait for the K tile (and every warp being done with the
#    previous V tile, whose buffer the next cp.async reuses) is dropped. Models a forgotten
#    __syncthreads between a cp.async wait and the reads of shared memory.
mutate "missing barrier" kernels/flash_attention.cu test_flash_attention "$FLASH_TESTS" caught \
  '__syncthreads();     // ... for every thread; and every warp is done with V_{j-1}' \
  '/* mutation: barrier removed */'

# 2. Wrong ldmatrix lane pattern: the lanes of an .x4 ldmatrix for an A operand address rows
#    0-7 twice instead of 0-15 (models a misread fragment layout in the PTX ISA's figures).
mutate "wrong ldmatrix lane pattern" kernels/flash_attention_index.h test_flash_attention \
  "$FLASH_TESTS" caught \
  'return {lane % 16, lane / 16};' \
  'return {lane % 8, lane / 16};'

# 3. Off-by-one causal mask: a query no longer sees its own key (> written as >=).
mutate "off-by-one causal mask" kernels/flash_attention.cu test_flash_attention "$FLASH_TESTS" caught \
  'if (key > query) acc_s[mt][nt][e] = -INFINITY;' \
  'if (key >= query) acc_s[mt][nt][e] = -INFINITY;'

# 4. Wrong cp.async wait count: the backward kernel lets two groups stay in flight, so the tile it
#    is about to read may not have landed (seen under the schedule where data lands at the wait).
mutate "wrong cp.async wait count" kernels/flash_attention.cu test_flash_attention "$FLASH_TESTS" caught \
  'cp_async_wait<1>();' \
  'cp_async_wait<2>();'

# 5. Shuffle across the wrong lanes: the row maximum is reduced over lanes xor 4 (the next row of
#    the mma accumulator) instead of xor 2 (the other half of this row's quad).
mutate "shuffle across wrong lanes" kernels/flash_attention.cu test_flash_attention "$FLASH_TESTS" caught \
  'tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 2));' \
  'tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 4));'

# 6. Unmasked tail: the last thread takes the 16-byte vector path for a partial packet and reads
#    and writes past the end of the arrays.
mutate "unmasked tail" kernels/residual.cu test_cuda_ops '*Residual*' caught \
  'if (i + x <= n) {' \
  'if (i < n) {'

# 7. Missing warp reduction: each lane divides its own partial sum, so the mean is wrong.
mutate "missing warp reduction" kernels/layernorm.cu test_cuda_ops '*LayerNorm*' caught \
  'const float m = warp_sum(sum) / C;' \
  'const float m = sum / C;'

# 8. Wrong bias-gradient epilogue: the fused dweight product asks for BGRADA (the sum over A's
#    columns) where the bias gradient is BGRADB's.
mutate "wrong bias-gradient epilogue" kernels/matmul.cu test_cuda_ops '*Matmul*' caught \
  'C, 1.0f, CUBLASLT_EPILOGUE_BGRADB, scratch);' \
  'C, 1.0f, CUBLASLT_EPILOGUE_BGRADA, scratch);'

# 9. Swapped transpose in a cuBLASLt call: matmul_forward's plain product (no bias, or the
#    accumulate after a bias broadcast) forgets to transpose the (OC, C) weight.
mutate "swapped transpose (cuBLASLt)" kernels/matmul.cu test_cuda_ops '*Matmul*' caught \
  'if (!rowmajor_matmul<F>(ctx, CUBLAS_OP_N, CUBLAS_OP_T, N, OC, C, inp, C, weight, C, out, OC,' \
  'if (!rowmajor_matmul<F>(ctx, CUBLAS_OP_N, CUBLAS_OP_N, N, OC, C, inp, C, weight, C, out, OC,'

# 10. Wrong AdamW moment: the first moment decays with beta2 instead of beta1.
mutate "wrong AdamW moment" kernels/adamw.cu test_cuda_ops '*AdamW*' caught \
  'm = a.beta1 * m + (1.0f - a.beta1) * g;' \
  'm = a.beta2 * m + (1.0f - a.beta2) * g;'

# 11. Weakened cross-block wait: the backward dQ hand-off waits for the share before the previous
#     one only, so two blocks may add into dQ at once. A memory-model fault: the emulator runs each
#     block to its end on one worker, so this race can only show when two workers overlap. Expected
#     to be missed; reported, not fatal.
mutate "weakened cross-block wait" kernels/flash_attention.cu test_flash_attention \
  'FlashAttention.*' maybe \
  'while (seen != order) seen = load_acquire(counter);' \
  'while (seen < order - 1) seen = load_acquire(counter);'

# ---- the table ----------------------------------------------------------------------------------
table() {
  printf '%-3s %-30s %-33s %-42s %-18s %s\n' "#" "mutation" "file" "test" "result" "first failure line"
  local row
  for row in "${rows[@]}"; do
    IFS=$'\t' read -r id name file test result detail <<<"$row"
    local target=${test%% *} filter=${test#* }
    [[ "$filter" == "$FLASH_TESTS" ]] && filter="OddLengths64+TileMultiples"
    printf '%-3s %-30s %-33s %-42s %-18s %s\n' "$id" "$name" "$file" "${target#test_} $filter" \
      "$result" "$detail"
  done
  echo "flash tests: $FLASH_TESTS; all with GPT_TEST_SHAPES=small, default emulator schedules"
  echo "total: $(( $(date +%s) - start )) s"
}
echo
table
if [[ -n "${RESULTS:-}" ]]; then table >"$RESULTS"; fi
if [[ $failed -ne 0 ]]; then
  echo "mutate_kernels: FAILED: a mutation expected to be caught was missed, or one could not be applied" >&2
  exit 1
fi
echo "mutate_kernels: every mutation expected to be caught was caught"
