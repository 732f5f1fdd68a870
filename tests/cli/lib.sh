# shellcheck shell=bash
# What the CLI tests share (tests/cli/*.sh source it first: source "$(dirname "$0")/lib.sh").
#
# It sets `set -uo pipefail` and makes $work, a fresh temporary folder removed when the script
# exits; a script with more to clean up defines a function at_exit, which runs first. Checks report
# through ok and bad (one line each, "ok   ..." or "FAIL ..."), and the script ends with finish,
# which exits non-zero when a check failed.
set -uo pipefail

work=$(mktemp -d)
lib_exit() {
  if declare -F at_exit >/dev/null; then at_exit; fi
  rm -rf "$work"
}
trap lib_exit EXIT

failures=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; failures=$((failures + 1)); }
# die MESSAGE: a step that the rest depends on failed: report it and stop.
die() { echo "FAIL $*"; exit 1; }
# finish [MESSAGE]: the summary line (MESSAGE, "all ok" by default, when every check passed); exits
# 1 when a check failed.
finish() {
  if ((failures)); then echo "$failures check(s) failed"; exit 1; fi
  echo "${1:-all ok}"
  exit 0
}

# run NAME CMD...: the command must succeed (its last lines are shown when it does not).
run() {
  local name=$1
  shift
  if "$@" >"$work/log.txt" 2>&1; then ok "$name"; else bad "$name: $(tail -3 "$work/log.txt")"; fi
}

# expect_error NAME PATTERN CMD...: the command must fail with exactly one stderr line matching
# PATTERN (a grep regular expression).
expect_error() {
  local name=$1 pattern=$2
  shift 2
  local err rc lines
  err=$("$@" 2>&1 >/dev/null)
  rc=$?
  lines=$(printf '%s\n' "$err" | grep -c .)
  if [[ $rc -eq 0 ]]; then
    bad "$name: exit status 0"
  elif ! grep -q -- "$pattern" <<<"$err"; then
    bad "$name: stderr does not match '$pattern': $err"
  elif [[ $lines -ne 1 ]]; then
    bad "$name: expected one line, got $lines: $err"
  else
    ok "$name: $err"
  fi
}

# fox_text N FILE: N lines of a small, varied English text, the corpus of most tiny runs.
fox_text() {
  local i
  for i in $(seq 1 "$1"); do
    echo "line $i: the quick brown fox $((i * 7919 % 1009)) jumps over the lazy dog"
  done >"$2"
}

# losses LOG: log.jsonl without what depends on the clock or the world size (timing, bytes moved).
losses() { sed -E 's/"(tokens_per_s|comm_bytes|comm_ms)":[^,}]*,?//g; s/,}/}/' "$1"; }
# same_run A B: two run folders with identical losses and final weights.
same_run() {
  diff <(losses "$1/log.jsonl") <(losses "$2/log.jsonl") >/dev/null &&
    cmp -s "$1/model.safetensors" "$2/model.safetensors"
}
# final RUN: the checkpoint RUN/latest points at.
final() { echo "$1/$(cat "$1/latest")"; }
# same RUN_A RUN_B: identical logs, final weights and final checkpoints' optimizer state.
same() {
  same_run "$1" "$2" &&
    cmp -s "$(final "$1")/model.safetensors" "$(final "$2")/model.safetensors" &&
    cmp -s "$(final "$1")/optimizer.safetensors" "$(final "$2")/optimizer.safetensors"
}
# loadable CHECKPOINT: gpt-export reads it (into a scratch file).
loadable() {
  "$BIN/gpt-export" --checkpoint "$1" --format llmc --out "$work/probe.bin" --force 2>/dev/null
}

# wait_for_log LOG N PID [PATTERN] [TRIES]: waits, 10 ms at a time (TRIES times, 3000 by default),
# until LOG holds N lines matching PATTERN (any line by default) or process PID is gone.
wait_for_log() {
  local log=$1 n=$2 pid=$3 pattern=${4:-.} tries=${5:-3000} _
  for _ in $(seq 1 "$tries"); do
    [[ -f $log && $(grep -c -- "$pattern" "$log") -ge $n ]] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.01
  done
}
