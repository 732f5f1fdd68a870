#!/usr/bin/env bash
# One command for a GPU node without package access (one H100, nvcc, CMake, ninja, PyTorch; no
# apt): probe the toolkit, build for the GPU, run the GPU tests, the kernel benchmarks and the
# end-to-end GPT-2 124M training benchmark beside the PyTorch reference, then print a summary table.
#
#   bash scripts/stage_deps.sh            # first, on a machine with the Debian packages (.deps/)
#   bash scripts/gpu_check.sh LOG_DIR     # then on the GPU node, with .deps carried along
#
# Stages run in order, each under a time limit and within an overall budget (5 minutes on an H100
# by default); each appends its status to LOG_DIR/stages.log as it finishes (the short ones, probe
# and spills, their whole output too) and the long ones write LOG_DIR/<stage>.log, so a run cut
# short still leaves its partial results. Seven files at most: stages.log, build.log, tests.log,
# kernels.log, train.log, torch.log, summary.md. The summary (markdown, ready for
# bench/RESULTS.md) is printed last.
#
# Environment: BUILD_DIR (build-gpu), JOBS (nproc), CUDA_ARCH (90a), PEAK_TFLOPS (989: H100 SXM
# dense bf16), BUDGET_S (295), GPT_COMMIT (the commit, when the tree has no .git).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

LOG=${1:-gpu_check_logs}
mkdir -p "$LOG"
LOG=$(cd "$LOG" && pwd)
BUILD_DIR=${BUILD_DIR:-build-gpu}
JOBS=${JOBS:-$(nproc)}
CUDA_ARCH=${CUDA_ARCH:-90a}
PEAK_TFLOPS=${PEAK_TFLOPS:-989}
BUDGET_S=${BUDGET_S:-295}
START=$(date +%s)
: > "$LOG/stages.log"

# stage NAME LIMIT_S COMMAND...: runs COMMAND with output to LOG/NAME.log under min(LIMIT_S, what
# is left of the budget); records "NAME rc=N Ns" (rc 124: timed out, "skipped": no time left).
# fold NAME: moves LOG/NAME.log into stages.log (short outputs; keeps the file count low).
stage() {
  local name=$1 limit=$2
  shift 2
  local left=$((BUDGET_S - ($(date +%s) - START)))
  if ((left < 5)); then
    echo "$name skipped (budget spent)" | tee -a "$LOG/stages.log"
    return 99
  fi
  ((limit > left)) && limit=$left
  echo "== $name (limit ${limit}s)" >&2
  local t0=$(date +%s)
  # bash -c so that COMMAND may be one of the (exported) functions below
  timeout --kill-after=5 "$limit" bash -c '"$@"' stage "$@" >"$LOG/$name.log" 2>&1
  local rc=$?
  echo "$name rc=$rc $(($(date +%s) - t0))s" | tee -a "$LOG/stages.log"
  return $rc
}
fold() {
  [[ -f "$LOG/$1.log" ]] || return 0
  { echo "---- $1 output"; cat "$LOG/$1.log"; echo "----"; } >>"$LOG/stages.log"
  rm -f "$LOG/$1.log"
}

# ---- 0. probe ----------------------------------------------------------------------------------
header_define() {  # header_define FILE MACRO: the value of #define MACRO in FILE
  [[ -f "$1" ]] && awk -v m="$2" '$1 == "#define" && $2 == m {print $3; exit}' "$1"
}
find_header() {
  local dirs=("${CUDA_HOME:-/usr/local/cuda}/include" /usr/local/cuda/include /usr/include /usr/local/include
              /usr/include/x86_64-linux-gnu)
  for d in "${dirs[@]}"; do [[ -f "$d/$1" ]] && { echo "$d/$1"; return; }; done
}
probe() {
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "commit: ${GPT_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}"
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,clocks.max.mem --format=csv 2>&1
  echo "nvcc: $(nvcc --version 2>&1 | grep -o 'release [0-9.]*, V[0-9.]*')"
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
export ROOT BUILD_DIR JOBS CUDA_ARCH
stage probe 30 probe
cat "$LOG/probe.log" >&2
fold probe

# ---- 1. build ----------------------------------------------------------------------------------
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
  # What the later stages need first, then everything else (other GPU tests among it); a build cut
  # short by the time limit still leaves the first part usable.
  cmake --build "$BUILD_DIR" -j "$JOBS" --target test_cuda_ops test_cuda_model test_flash_attention bench_kernels bench_train bench_attention gpt-prepare gpt-pretrain &&
    cmake --build "$BUILD_DIR" -j "$JOBS"
}
export -f build
stage build 150 build

# ---- 2. register spills ------------------------------------------------------------------------
stage spills 20 bash scripts/check_spills.sh "$LOG/build.log" --summary
tail -1 "$LOG/spills.log" >&2
fold spills

# ---- 3. GPU tests ------------------------------------------------------------------------------
stage tests 60 ctest --test-dir "$BUILD_DIR" -L gpu --output-on-failure --timeout 90

# ---- 3b. the apps on the GPU: one process, then NCCL as one rank -------------------------------
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
export BUILD_DIR
stage apps 60 apps_check
fold apps

# ---- 4. kernel benchmarks ----------------------------------------------------------------------
stage kernels 60 "$BUILD_DIR/bench/bench_kernels" --json - --peak-tflops "$PEAK_TFLOPS"

# ---- 5. fused attention against PyTorch SDPA (FlashAttention-2, cuDNN) ---------------------------
if python3 -c "import torch" 2>/dev/null; then
  stage attention 90 python3 bench/bench_attention_torch.py --ours "$BUILD_DIR/bench/bench_attention" --repeats 10
else
  stage attention 90 "$BUILD_DIR/bench/bench_attention" --repeats 10
fi

# ---- 6. end-to-end training: ours (fused and unfused attention), then PyTorch ----------------------
SHAPE=(--n-layer 12 --n-embd 768 --n-head 12 --vocab 50257 --batch 16 --seq 1024)
stage train 45 "$BUILD_DIR/bench/bench_train" --device cuda "${SHAPE[@]}" --steps 10 --warmup 2 \
  --peak-tflops "$PEAK_TFLOPS" --label ours
stage train_unfused 45 "$BUILD_DIR/bench/bench_train" --device cuda "${SHAPE[@]}" --steps 10 --warmup 2 \
  --peak-tflops "$PEAK_TFLOPS" --label ours-unfused --attention unfused
stage torch 120 python3 bench/torch_gpt2_train.py "${SHAPE[@]}" --steps 10 --warmup 3 --peak-tflops "$PEAK_TFLOPS"

# ---- summary -----------------------------------------------------------------------------------
summarize() {
  python3 - "$LOG" <<'PY'
import json, os, re, sys
log = sys.argv[1]
def read(name):
    path = os.path.join(log, name)
    return open(path, errors="replace").read() if os.path.exists(path) else ""
def last_json(text):
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try: return json.loads(line)
            except ValueError: pass
    return None
out = []
stages = read("stages.log")
def section(name):
    m = re.search(r"^---- %s output\n(.*?)^----$" % name, stages, re.M | re.S)
    return m.group(1) if m else ""
probe = section("probe")
device = re.search(r"^name.*\n(.*)$", probe, re.M)
commit = re.search(r"^commit: (.*)$", probe, re.M)
date = re.search(r"^date: (.*)$", probe, re.M)
out.append(f"## GPU check, {date.group(1) if date else '?'}, commit {commit.group(1) if commit else '?'}")
out.append(f"device: {device.group(1).strip() if device else '?'}")
for line in probe.splitlines():
    if line.split(":")[0] in ("nvcc", "cuBLAS", "cuDNN", "NCCL", "PyTorch"):
        out.append(line)
out.append("")
out.append("| stage | status |")
out.append("|---|---|")
for line in stages.splitlines():
    m = re.match(r"^(\w+) (rc=\d+ \d+s|skipped.*)$", line)
    if m: out.append(f"| {m.group(1)} | {m.group(2)} |")
out.append("")
tests = read("tests.log")
m = re.search(r"(\d+)% tests passed, (\d+) tests failed out of (\d+)", tests)
skipped = len(re.findall(r"\*\*\*Skipped", tests))
out.append(f"GPU tests: {m.group(0) if m else 'no result'}" + (f", {skipped} skipped" if skipped else ""))
failed = re.findall(r"^\s+\d+ - (\S+) \(Failed\)", tests, re.M)
for f in failed: out.append(f"  FAILED {f}")
for line in section("apps").splitlines():
    if line.startswith("apps:"): out.append(line)
spills = section("spills").strip().splitlines()
out.append(f"register spills: {spills[-1] if spills else 'no result'}")
out.append("")
kernels = [last_json(l) for l in read("kernels.log").splitlines() if l.startswith("{")]
kernels = [k for k in kernels if k]
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
att = read("attention.log").strip()
if att:
    out.append("fused attention vs PyTorch SDPA:")
    out.append(att[-3000:])
    out.append("")
ours, torch = last_json(read("train.log")), last_json(read("torch.log"))
unfused = last_json(read("train_unfused.log"))
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
  summarize || { cat "$LOG/stages.log"; }
else
  cat "$LOG/stages.log"
fi
echo "full logs: $LOG"
