#!/usr/bin/env bash
# One command for a GPU node without package access (one H100, nvcc, CMake, ninja, PyTorch,
# compute-sanitizer; no apt): probe the toolkit, build what the check runs, run the GPU tests and
# the sanitizers, the kernel benchmarks and the end-to-end GPT-2 124M training benchmark beside the
# PyTorch reference, then print a summary table.
#
#   bash scripts/stage_deps.sh            # first, on a machine with the Debian packages (.deps/)
#   bash scripts/gpu_check.sh LOG_DIR     # then on the GPU node, with .deps carried along
#
# Sized for a lent device window of about 11 usable minutes (docs/gpu.md gives each stage's
# expected time): stages run in order of what a first GPU contact most needs to learn, each under
# its own time limit and within an overall budget (570 s by default), and each records its status
# in LOG_DIR/stages.log as it finishes, so a run cut short keeps what it measured. Eight files at
# most (what the device tool brings back): stages.log (statuses, and the output of the short
# stages), build.log, tests.log (the GPU tests and the sanitizer runs), one gtest JSON report per
# test binary (test_flash_attention.json, test_cuda_ops.json, test_cuda_model.json, each written
# when its binary finishes), bench.log (every benchmark) and summary.md (markdown, ready for
# bench/RESULTS.md), which is printed last.
#
# Environment: BUILD_DIR (build-gpu), JOBS (nproc), CUDA_ARCH (90a), PEAK_TFLOPS (989: H100 SXM
# dense bf16), BUDGET_S (570), CUDA_HOME (where nvcc and compute-sanitizer are looked for when
# they are not on PATH; default /usr/local/cuda), GPT_COMMIT (the commit, when the tree has no .git).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD

LOG=${1:-gpu_check_logs}
mkdir -p "$LOG"
LOG=$(cd "$LOG" && pwd)
BUILD_DIR=${BUILD_DIR:-build-gpu}
JOBS=${JOBS:-$(nproc)}
CUDA_ARCH=${CUDA_ARCH:-90a}
PEAK_TFLOPS=${PEAK_TFLOPS:-989}
BUDGET_S=${BUDGET_S:-570}
START=$(date +%s)
: >"$LOG/stages.log"

# The toolkit: CMake finds nvcc through CUDACXX when it is not on PATH; compute-sanitizer sits
# beside nvcc in bin/ (a link) or in its own folder.
CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
if ! command -v nvcc >/dev/null && [[ -x "$CUDA_HOME/bin/nvcc" ]]; then
  export CUDACXX=${CUDACXX:-$CUDA_HOME/bin/nvcc}
  export PATH="$PATH:$CUDA_HOME/bin"
fi
SANITIZER=$(command -v compute-sanitizer ||
  for s in "$CUDA_HOME/bin/compute-sanitizer" "$CUDA_HOME/compute-sanitizer/compute-sanitizer"; do
    [[ -x $s ]] && { echo "$s"; break; }
  done)

# stage NAME FILE LIMIT COMMAND...: runs COMMAND under min(LIMIT, what is left of the budget),
# appending its output to LOG/FILE.log between "---- NAME output" and "----" lines, and records
# "NAME rc=N Ns" in stages.log (rc 124: timed out; "skipped": no time left). FILE "stages" puts
# the output of a short stage into stages.log itself.
stage() {
  local name=$1 file=$2 limit=$3
  shift 3
  local left=$((BUDGET_S - ($(date +%s) - START)))
  if ((left < 5)); then
    echo "$name skipped (budget spent)" | tee -a "$LOG/stages.log"
    return 99
  fi
  ((limit > left)) && limit=$left
  echo "== $name (limit ${limit}s)" >&2
  local t0 rc
  t0=$(date +%s)
  echo "---- $name output" >>"$LOG/$file.log"
  # bash -c so that COMMAND may be one of the (exported) functions below
  timeout --kill-after=5 "$limit" bash -c '"$@"' stage "$@" >>"$LOG/$file.log" 2>&1
  rc=$?
  echo "----" >>"$LOG/$file.log"
  echo "$name rc=$rc $(($(date +%s) - t0))s" | tee -a "$LOG/stages.log"
  return $rc
}

# ---- 0. probe ----------------------------------------------------------------------------------
header_define() {  # header_define FILE MACRO: the value of #define MACRO in FILE
  [[ -f "$1" ]] && awk -v m="$2" '$1 == "#define" && $2 == m {print $3; exit}' "$1"
}
find_header() {
  local dirs=("$CUDA_HOME/include" /usr/local/cuda/include /usr/include /usr/local/include
              /usr/include/x86_64-linux-gnu)
  for d in "${dirs[@]}"; do [[ -f "$d/$1" ]] && { echo "$d/$1"; return; }; done
}
probe() {
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "commit: ${GPT_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}"
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,clocks.max.mem --format=csv 2>&1
  echo "nvcc: $(nvcc --version 2>&1 | grep -o 'release [0-9.]*, V[0-9.]*') (${CUDACXX:-$(command -v nvcc)})"
  echo "compute-sanitizer: ${SANITIZER:-not found}"
  echo "cmake: $(cmake --version 2>&1 | head -1)"
  echo "ninja: $(ninja --version 2>&1 || echo absent)"
  echo "cxx: $(c++ --version 2>&1 | head -1)"
  local h
  h=$(find_header cublas_api.h)
  echo "cuBLAS: $(header_define "$h" CUBLAS_VER_MAJOR).$(header_define "$h" CUBLAS_VER_MINOR).$(header_define "$h" CUBLAS_VER_PATCH) ($h)"
  h=$(find_header cudnn_version.h)
  echo "cuDNN: $(header_define "$h" CUDNN_MAJOR).$(header_define "$h" CUDNN_MINOR).$(header_define "$h" CUDNN_PATCHLEVEL) (${h:-not found})"
  h=$(find_header nccl.h)
  echo "NCCL: $(header_define "$h" NCCL_MAJOR).$(header_define "$h" NCCL_MINOR).$(header_define "$h" NCCL_PATCH) (${h:-not found})"
  python3 -c 'import torch; print("PyTorch:", torch.__version__, "CUDA", torch.version.cuda, "cuDNN", torch.backends.cudnn.version(), "device", torch.cuda.get_device_name() if torch.cuda.is_available() else "none")' 2>&1
  [[ -d .deps ]] && echo ".deps: present" || echo ".deps: MISSING (run scripts/stage_deps.sh where the packages are)"
}
export -f header_define find_header probe
export ROOT BUILD_DIR JOBS CUDA_ARCH CUDA_HOME SANITIZER
stage probe stages 30 probe
sed -n '/^---- probe output$/,/^----$/p' "$LOG/stages.log" >&2

# ---- 1. build: only what the stages below run ---------------------------------------------------
build() {
  # A carried build folder configured for another checkout path cannot be reused: start afresh.
  if [[ -f "$BUILD_DIR/CMakeCache.txt" ]] &&
     ! grep -q "^CMAKE_HOME_DIRECTORY:INTERNAL=$ROOT\$" "$BUILD_DIR/CMakeCache.txt"; then
    echo "build: $BUILD_DIR was configured elsewhere; removing its cache"
    rm -rf "$BUILD_DIR/CMakeCache.txt" "$BUILD_DIR/CMakeFiles"
  fi
  local generator=()
  command -v ninja >/dev/null && generator=(-G Ninja)
  cmake -S . -B "$BUILD_DIR" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DGPT_CUDA=ON \
    -DGPT_DEPS_DIR="$ROOT/.deps" -DCMAKE_CUDA_ARCHITECTURES="$CUDA_ARCH" || return 1
  # The three GPU test binaries first (between them they compile every kernel), so that a build
  # cut short still leaves them; then the benchmarks and apps the later stages run (host C++ only).
  # Nothing else of the tree is built.
  cmake --build "$BUILD_DIR" -j "$JOBS" --target test_flash_attention test_cuda_ops test_cuda_model &&
    cmake --build "$BUILD_DIR" -j "$JOBS" --target bench_kernels bench_attention bench_train \
      gpt-prepare gpt-pretrain gpt-plan
}
export -f build
stage build build 200 build

# ---- 2. register spills ------------------------------------------------------------------------
stage spills stages 20 bash scripts/check_spills.sh "$LOG/build.log" --summary
grep "^check_spills" "$LOG/stages.log" | tail -1 >&2

# ---- 3. the GPU tests, each binary on its own, riskiest first ------------------------------------
# One process per binary (one CUDA context each, not one per test as ctest makes); each writes its
# gtest JSON report when it finishes, so a later binary that hangs or crashes costs nothing earlier.
gtest() {  # gtest BINARY [ARGS...]
  local binary=$1
  shift
  "$BUILD_DIR/tests/$binary" --gtest_color=no "$@"
}
export -f gtest
stage test_flash_attention tests 60 gtest test_flash_attention --gtest_output="json:$LOG/test_flash_attention.json"
stage test_cuda_ops tests 60 gtest test_cuda_ops --gtest_output="json:$LOG/test_cuda_ops.json"
stage test_cuda_model tests 90 gtest test_cuda_model --gtest_output="json:$LOG/test_cuda_model.json"

# ---- 4. compute-sanitizer at small shapes --------------------------------------------------------
# racecheck (shared-memory hazards) and synccheck (barriers reached by part of a block, bad
# cp.async/mma.sync use) on the fused attention's tail and tile-multiple cases; memcheck (out of
# bounds, misalignment) on every op. GPT_TEST_SHAPES=small cuts the tests' sizes (the setting the
# emulated runs in CI use); a sanitizer error exits 3, a failing test 1.
sanitize() {  # sanitize TOOL BINARY GTEST_FILTER
  if [[ -z $SANITIZER ]]; then
    echo "sanitize: compute-sanitizer not found (PATH, \$CUDA_HOME/bin, \$CUDA_HOME/compute-sanitizer)"
    return 2
  fi
  GPT_TEST_SHAPES=small "$SANITIZER" --tool "$1" --error-exitcode 3 --print-limit 20 \
    "$BUILD_DIR/tests/$2" --gtest_color=no --gtest_filter="$3"
}
export -f sanitize
FLASH_CASES='FlashAttention.OddLengths*:FlashAttention.TileMultiples'
stage racecheck tests 60 sanitize racecheck test_flash_attention "$FLASH_CASES"
stage synccheck tests 45 sanitize synccheck test_flash_attention "$FLASH_CASES"
stage memcheck tests 75 sanitize memcheck test_cuda_ops '*'

# ---- 5. the apps on the GPU: one process, then NCCL as one rank -------------------------------
# gpt-pretrain --device cuda as a user runs it (the single communicator: a pass-through to AdamW),
# then --dist nccl (one rank: gradients reduce-scattered and parameters all-gathered through NCCL,
# ZeRO-1 shard groups), and, where mpirun exists, the NCCL id handed over MPI. The losses must
# agree within bf16 noise (different summation orders); docs/distributed.md.
apps_check() {
  local t
  t=$(mktemp -d)
  for i in $(seq 1 3000); do echo "line $i: the quick brown fox $((i * 7919 % 1009)) jumps over the lazy dog"; done >"$t/text.txt"
  "$BUILD_DIR/apps/gpt-prepare" --tokenizer bytes --input "$t/text.txt" --out "$t/data" 2>&1 | tail -1 || return 1
  local args=(--train-data "$t/data/train_*.bin" --val-data "$t/data/val_*.bin" --device cuda --n-layer 2
              --n-head 2 --n-embd 128 --max-seq-len 128 --seq-len 128 --batch-size 8 --total-batch-tokens 2048
              --steps 30 --eval-every 15 --lr 3e-3 --warmup-steps 5)
  "$BUILD_DIR/apps/gpt-pretrain" "${args[@]}" --out "$t/single" 2>"$t/single.err"; local a=$?
  grep -E '^(backend|ranks|done)' "$t/single.err"; ((a == 0)) || { tail -5 "$t/single.err"; return 1; }
  # gpt-plan's prediction for this run against its measured peak (docs/plan.md): the difference is
  # what the plan does not count on a GPU (the backend's scratch, sized by the first step).
  local measured planned
  measured=$(grep -o 'peak memory [0-9.]* MiB ([0-9]* bytes)' "$t/single.err" | grep -o '([0-9]*' | tr -d '(')
  planned=$("$BUILD_DIR/apps/gpt-plan" --config "$t/single/config.json" --device cuda --json 2>&1 |
            python3 -c 'import json,sys; print(json.load(sys.stdin)["bytes"]["peak"])' 2>/dev/null)
  if [[ -n $measured && -n $planned ]]; then
    echo "apps: gpt-plan peak $planned bytes, measured $measured ($(python3 -c "print(f'{($measured - $planned) / $measured * 100:+.1f}% not planned')"))"
  else
    echo "apps: gpt-plan comparison not made (measured '$measured', planned '$planned')"
  fi
  "$BUILD_DIR/apps/gpt-pretrain" "${args[@]}" --dist nccl --out "$t/nccl" 2>"$t/nccl.err"; local b=$?
  grep -E '^(ranks|done)' "$t/nccl.err"; ((b == 0)) || tail -5 "$t/nccl.err"
  local c=0
  if grep -q "this build has no NCCL" "$t/nccl.err"; then
    echo "apps: this build has no NCCL (nccl.h not found on the node): --dist nccl not checked"
    b=0
  elif command -v mpirun >/dev/null; then
    OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 mpirun -np 1 "$BUILD_DIR/apps/gpt-pretrain" \
      "${args[@]}" --dist nccl --out "$t/mpi" 2>"$t/mpi.err"; c=$?
    grep -E '^(ranks|done)' "$t/mpi.err"; ((c == 0)) || tail -5 "$t/mpi.err"
  else echo "no mpirun on this node: NCCL id over MPI not checked"; fi
  python3 - "$t" <<'PY'
import json, os, sys
t = sys.argv[1]
def losses(run):
    path = os.path.join(t, run, "log.jsonl")
    if not os.path.exists(path): return None
    return [json.loads(l)["train_loss"] for l in open(path) if '"train_loss"' in l]
ref = losses("single")
ok = ref is not None and len(ref) == 30
for run in ("nccl", "mpi"):
    other = losses(run)
    if other is None: continue
    d = max(abs(x - y) for x, y in zip(ref, other)) if ref and len(other) == len(ref) else float("inf")
    good = d < 0.05
    ok = ok and good
    print(f"apps: {run} vs single GPU: final loss {other[-1]:.4f} vs {ref[-1]:.4f}, max |diff| {d:.4f} ({'ok' if good else 'TOO FAR'})")
print("apps: ok" if ok else "apps: FAILED")
sys.exit(0 if ok else 1)
PY
  local d=$?
  rm -rf "$t"
  ((b == 0 && c == 0 && d == 0))
}
export -f apps_check
stage apps stages 60 apps_check

# ---- 6. benchmarks, one point each ---------------------------------------------------------------
# Kernels at GPT-2 124M shapes (B=16, T=1024); the fused attention at T=1024, head size 64 beside
# PyTorch SDPA; end-to-end training of GPT-2 124M with the fused and the unfused attention.
stage kernels bench 60 "$BUILD_DIR/bench/bench_kernels" --json - --peak-tflops "$PEAK_TFLOPS"
ATTENTION_POINT=(--lengths 1024 --head-sizes 64 --repeats 10)
if python3 -c "import torch" 2>/dev/null; then
  stage attention bench 45 python3 bench/bench_attention_torch.py --ours "$BUILD_DIR/bench/bench_attention" "${ATTENTION_POINT[@]}"
else
  stage attention bench 45 "$BUILD_DIR/bench/bench_attention" "${ATTENTION_POINT[@]}"
fi
SHAPE=(--n-layer 12 --n-embd 768 --n-head 12 --vocab 50257 --batch 16 --seq 1024)
stage train bench 45 "$BUILD_DIR/bench/bench_train" --device cuda "${SHAPE[@]}" --steps 10 --warmup 2 \
  --peak-tflops "$PEAK_TFLOPS" --label ours
stage train_unfused bench 45 "$BUILD_DIR/bench/bench_train" --device cuda "${SHAPE[@]}" --steps 10 --warmup 2 \
  --peak-tflops "$PEAK_TFLOPS" --label ours-unfused --attention unfused

# ---- 7. PyTorch (torch.compile) on the same model and step: last, the longest and least urgent ---
stage torch bench 150 python3 bench/torch_gpt2_train.py "${SHAPE[@]}" --steps 10 --warmup 3 --peak-tflops "$PEAK_TFLOPS"

# ---- summary -----------------------------------------------------------------------------------
summarize() {
  python3 - "$LOG" <<'PY'
import json, os, re, sys
log = sys.argv[1]
def read(name):
    path = os.path.join(log, name)
    return open(path, errors="replace").read() if os.path.exists(path) else ""
def section(file, name):
    """The output of stage `name` in LOG/file (up to its closing line, or the end of a cut file)."""
    m = re.search(r"^---- %s output\n(.*?)(?:^----$|\Z)" % re.escape(name), read(file), re.M | re.S)
    return m.group(1) if m else ""
def json_lines(text):
    rows = []
    for line in text.splitlines():
        if line.strip().startswith("{"):
            try: rows.append(json.loads(line))
            except ValueError: pass
    return rows
def last_json(text):
    rows = json_lines(text)
    return rows[-1] if rows else None
stages = read("stages.log")
status = dict(re.findall(r"^(\w+) (rc=\d+ \d+s|skipped.*)$", stages, re.M))
out = []
probe = section("stages.log", "probe")
device = re.search(r"^name.*\n(.*)$", probe, re.M)
commit = re.search(r"^commit: (.*)$", probe, re.M)
date = re.search(r"^date: (.*)$", probe, re.M)
out.append(f"## GPU check, {date.group(1) if date else '?'}, commit {commit.group(1) if commit else '?'}")
out.append(f"device: {device.group(1).strip() if device else '?'}")
for line in probe.splitlines():
    if line.split(":")[0] in ("nvcc", "compute-sanitizer", "cuBLAS", "cuDNN", "NCCL", "PyTorch"):
        out.append(line)
out.append("")
out.append("| stage | status |")
out.append("|---|---|")
for name, s in re.findall(r"^(\w+) (rc=\d+ \d+s|skipped.*)$", stages, re.M):
    out.append(f"| {name} | {s} |")
out.append("")
# The GPU tests, from each binary's gtest JSON report.
for binary in ("test_flash_attention", "test_cuda_ops", "test_cuda_model"):
    path = os.path.join(log, binary + ".json")
    if not os.path.exists(path):
        out.append(f"{binary}: no report ({status.get(binary, 'not run')}; see tests.log)")
        continue
    report = json.load(open(path))
    tests = [t for s in report.get("testsuites", []) for t in s.get("testsuite", [])]
    failed = [f"{t.get('classname', '')}.{t['name']}" for t in tests if t.get("failures")]
    skipped = sum(1 for t in tests if t.get("result") == "SKIPPED")
    out.append(f"{binary}: {len(tests) - len(failed) - skipped} passed, {len(failed)} failed, "
               f"{skipped} skipped, {report.get('time', '?')}")
    for f in failed: out.append(f"  FAILED {f}")
# The sanitizers: their own summary lines (errors, hazards), or why there are none.
for tool in ("racecheck", "synccheck", "memcheck"):
    text = section("tests.log", tool)
    if not text:
        out.append(f"{tool}: {status.get(tool, 'not run')}")
        continue
    lines = [l.lstrip("= ").strip() for l in text.splitlines() if "SUMMARY:" in l]
    if "Device not supported" in text:
        lines = ["compute-sanitizer does not support this device (node runtime)"]
    elif "compute-sanitizer not found" in text:
        lines = ["compute-sanitizer not found"]
    out.append(f"{tool} ({status.get(tool, '?')}): {'; '.join(lines) if lines else 'no summary line'}")
apps = [l for l in section("stages.log", "apps").splitlines() if l.startswith("apps:")]
out.extend(apps or [f"apps: no result ({status.get('apps', 'not run')}; see stages.log)"])
spills = [l for l in section("stages.log", "spills").splitlines() if l.startswith("check_spills")]
out.append(f"register spills: {spills[-1] if spills else 'no result'}")
out.append("")
kernels = json_lines(section("bench.log", "kernels"))
copy = next((k for k in kernels if k.get("kind") == "copy_bandwidth"), None)
if copy: out.append(f"measured device-to-device copy bandwidth: {copy['gb_per_s']:.0f} GB/s")
rows = [k for k in kernels if k.get("kind") == "kernel"]
if rows:
    out.append("| kernel | valid | median us | GB/s | of copy bw | TFLOP/s | of peak |")
    out.append("|---|---|---|---|---|---|---|")
    for k in rows:
        gbs = f"{k['gb_per_s']:.0f}" if "gb_per_s" in k else ""
        fb = f"{k['fraction_of_copy_bw']:.0%}" if "fraction_of_copy_bw" in k else ""
        tf = f"{k['tflops']:.0f}" if "tflops" in k else ""
        fp = f"{k['fraction_of_peak']:.0%}" if "fraction_of_peak" in k else ""
        out.append(f"| {k['kernel']} | {'yes' if k['valid'] else 'NO'} | {k['median_us']:.1f} | {gbs} | {fb} | {tf} | {fp} |")
out.append("")
att = section("bench.log", "attention").strip()
if att:
    out.append("fused attention vs PyTorch SDPA (T=1024, head size 64):")
    out.append(att[-3000:])
    out.append("")
ours, unfused = last_json(section("bench.log", "train")), last_json(section("bench.log", "train_unfused"))
torch = last_json(section("bench.log", "torch"))
out.append("| GPT-2 124M, B=16, T=1024 | step ms | tokens/s | MFU |")
out.append("|---|---|---|---|")
for name, r in (("ours (bf16, fused attention)", ours), ("ours (bf16, unfused attention)", unfused), ("PyTorch (bf16 autocast, compile, SDPA, fused AdamW)", torch)):
    if r: out.append(f"| {name} | {r['median_step_ms']:.1f} | {r['tokens_per_s']:.0f} | {r.get('mfu', 0):.1%} |")
    else: out.append(f"| {name} | no result | | |")
if ours and torch:
    out.append(f"ours / PyTorch tokens/s: {ours['tokens_per_s'] / torch['tokens_per_s']:.2f}")
text = "\n".join(out)
open(os.path.join(log, "summary.md"), "w").write(text + "\n")
print(text)
PY
}
echo
echo "==================================== summary ===================================="
if command -v python3 >/dev/null; then
  summarize || cat "$LOG/stages.log"
else
  cat "$LOG/stages.log"
fi
echo "total $(($(date +%s) - START))s; full logs: $LOG"
