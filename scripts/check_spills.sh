#!/usr/bin/env bash
# Fails when one of our CUDA kernels spills registers, from the resource report that ptxas prints
# for every kernel in a build log (gpt_cuda compiles with -Xptxas=-v):
#
#   ptxas info    : Compiling entry function '_ZN3gpt4cuda...' for 'sm_90a'
#   ptxas info    : Function properties for _ZN3gpt4cuda...
#       0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
#   ptxas info    : Used 32 registers, used 0 barriers
#
# Usage: scripts/check_spills.sh BUILD_LOG [--summary] [--pattern REGEX]
#   BUILD_LOG   the output of the build (e.g. `cmake --build build 2>&1 | tee build.log`)
#   --summary   also print registers and spills of every matching kernel (demangled)
#   --pattern   which functions are ours: an awk regex on the mangled name (default: 3gpt, the
#               mangled namespace gpt; library kernels instantiated in our files, CUB's, are not)
# Exit status: 0 no spills, 1 a kernel of ours spills (each one is listed), 2 usage error or no
# ptxas report in the log (a build without -Xptxas=-v would otherwise pass silently).
set -euo pipefail

log=""
summary=0
pattern="3gpt"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --summary) summary=1; shift ;;
    --pattern) pattern="$2"; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) log="$1"; shift ;;
  esac
done
if [[ -z "$log" || ! -f "$log" ]]; then
  echo "usage: scripts/check_spills.sh BUILD_LOG [--summary] [--pattern REGEX]" >&2
  exit 2
fi
if ! grep -q "bytes spill stores" "$log"; then
  echo "check_spills: no ptxas resource report in $log (was gpt_cuda built with -Xptxas=-v, and not already up to date?)" >&2
  exit 2
fi

demangle() { if command -v c++filt >/dev/null; then c++filt; else cat; fi; }

# One line per (function, arch): mangled-name arch registers spill-stores spill-loads
report=$(awk '
  /Compiling entry function/ {
    match($0, /function \x27[^\x27]+\x27/); fn = substr($0, RSTART + 10, RLENGTH - 11)
    arch = "?"; if (match($0, /for \x27[^\x27]+\x27/)) arch = substr($0, RSTART + 5, RLENGTH - 6)
  }
  /Function properties for/ { fn = $NF }
  /bytes spill stores/ {
    for (i = 1; i <= NF; ++i) {
      if ($(i + 1) == "bytes" && $(i + 2) == "spill" && $(i + 3) == "stores,") stores = $i
      if ($(i + 1) == "bytes" && $(i + 2) == "spill" && $(i + 3) == "loads") loads = $i
    }
  }
  /Used [0-9]+ registers/ {
    match($0, /Used [0-9]+ registers/); regs = substr($0, RSTART + 5, RLENGTH - 15)
    if (fn != "") print fn, arch, regs, stores + 0, loads + 0
    fn = ""; stores = 0; loads = 0
  }' "$log" | sort -u)

ours=$(echo "$report" | awk -v pat="$pattern" '$1 ~ pat')
if [[ -z "$ours" ]]; then
  echo "check_spills: no kernel matching '$pattern' in $log" >&2
  exit 2
fi
if [[ $summary -eq 1 ]]; then
  printf "%-8s %5s %7s %6s  %s\n" arch regs spill_st spill_ld kernel
  echo "$ours" | while read -r fn arch regs st ld; do
    printf "%-8s %5s %7s %6s  %s\n" "$arch" "$regs" "$st" "$ld" "$(echo "$fn" | demangle)"
  done
fi
spilling=$(echo "$ours" | awk '$4 > 0')
if [[ -n "$spilling" ]]; then
  echo "check_spills: FAIL: kernels that spill registers:" >&2
  echo "$spilling" | while read -r fn arch regs st ld; do
    echo "  $arch: $st bytes spill stores, $ld bytes spill loads, $regs registers: $(echo "$fn" | demangle)" >&2
  done
  exit 1
fi
echo "check_spills: OK: $(echo "$ours" | wc -l) kernel builds of ours, none spills"
