#!/usr/bin/env bash
# kill -9 while gpt-prepare and gpt-export write (docs/reliability.md): at any moment, what is left
# under the output's name is the previous output whole, the new output whole, or (gpt-prepare,
# killed while moving its shards in) a folder every shard reader refuses with a message; never a
# mix taken as valid. The worst moments are hit on purpose (test hooks that SIGKILL the process
# there: GPT_TEST_KILL_IN_PREPARE_COMMIT, GPT_TEST_KILL_IN_EXPORT), the rest by kills at spread-out
# times; a run after a kill completes and cleans up what the killed one left.
# Usage: kill_writes.sh BIN_DIR
source "$(dirname "$0")/lib.sh"
BIN=$1
export OMP_WAIT_POLICY=passive

# Runs a command that kills itself, without the shell's "Killed" report (dash prints none).
quietly() { sh -c '"$@" 2>/dev/null; exit 0' sh "$@"; }
# The content of a data set or model folder: every file but the staging/markers, by name and bytes.
sig() {
  [[ -e $1 ]] || { echo missing; return; }
  (cd "$1" && find . -type f ! -path './.prepare-*' -print0 | sort -z | xargs -0 -r sha256sum) | sha256sum | cut -c1-16
}

# ---- gpt-prepare --------------------------------------------------------------------------------
python3 - "$work" <<'PY'
import random, sys
r = random.Random(5)
words = "the quick brown fox jumps over a lazy dog while seven wizards quietly hex jolly bumpkins".split()
with open(sys.argv[1] + "/new.txt", "w") as f:
    for i in range(250000):
        f.write(" ".join(r.choice(words) for _ in range(12)) + f" {i}\n")
with open(sys.argv[1] + "/old.txt", "w") as f:
    for i in range(3000):
        f.write(f"an older and smaller data set, line {i}\n")
PY
prep() {  # prep INPUT OUT
  "$BIN/gpt-prepare" --tokenizer bytes --input "$1" --out "$2" --shard-tokens 200000 --val-fraction 0.05 2>>"$work/prepare.log"
}
prep "$work/old.txt" "$work/ref-old" && prep "$work/new.txt" "$work/ref-new" || die "reference prepares"
old_sig=$(sig "$work/ref-old"); new_sig=$(sig "$work/ref-new")
shards=$(ls "$work/ref-new" | grep -c '_[0-9]*\.bin$')
echo "     the new data set: $shards shards; the old one: $(ls "$work/ref-old" | grep -c '_[0-9]*\.bin$')"

# judge OUT: old | new | refused (the marker, and a reader says why) | MIXED/... (a failure).
judge_prepare() {
  local out=$1 s
  if [[ -e $out/.prepare-incomplete ]]; then
    local err
    err=$("$BIN/gpt-pretrain" --train-data "$out/train_*.bin" --val-data "$out/val_*.bin" --device cpu --steps 1 \
      --vocab-size 257 --n-layer 1 --n-head 1 --n-embd 8 --max-seq-len 8 --seq-len 8 --batch-size 1 --out "$work/probe" --overwrite true 2>&1 >/dev/null)
    if [[ $err == *"did not finish"* ]]; then echo refused; else echo "NOT-REFUSED($err)"; fi
    return
  fi
  s=$(sig "$out")
  if [[ $s == "$old_sig" ]]; then echo old; elif [[ $s == "$new_sig" ]]; then echo new; else echo MIXED; fi
}
seen=""
trial_prepare() {  # trial_prepare LABEL [ENV=VALUE] [DELAY]
  local label=$1 envv=$2 delay=$3 out="$work/out-$1"
  rm -rf "$out"; cp -a "$work/ref-old" "$out"
  if [[ -n $envv ]]; then
    quietly env "$envv" "$BIN/gpt-prepare" --tokenizer bytes --input "$work/new.txt" --out "$out" --shard-tokens 200000 \
      --val-fraction 0.05
  else
    "$BIN/gpt-prepare" --tokenizer bytes --input "$work/new.txt" --out "$out" --shard-tokens 200000 \
      --val-fraction 0.05 2>/dev/null &
    local pid=$!
    sleep "$delay"; kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
  fi
  local v; v=$(judge_prepare "$out")
  case $v in
    old | new | refused) seen+=" $v"; ok "prepare killed ($label): $v" ;;
    *) bad "prepare killed ($label): $v" ;;
  esac
  # A prepare run again completes, removes the marker and the killed one's staging folder.
  prep "$work/new.txt" "$out"
  if [[ $(sig "$out") == "$new_sig" && ! -e $out/.prepare-incomplete ]] && ! ls -a "$out" | grep -q '^\.prepare-staging'; then
    :
  else
    bad "prepare after the kill ($label): not the new data set, or leftovers: $(ls -a "$out" | grep '^\.prepare' | tr '\n' ' ')"
  fi
}
# The worst moments: after 0, 1, half and all but one of the moves into OUT.
total=$(( $(ls "$work/ref-new" | wc -l) ))
for n in 0 1 $((total / 2)) $((total - 1)); do trial_prepare "hook after $n moves" "GPT_TEST_KILL_IN_PREPARE_COMMIT=$n" ""; done
# Spread-out times over an uninterrupted run.
start=$(date +%s.%N); prep "$work/new.txt" "$work/timing"; took=$(python3 -c "import time; print(time.time() - $start)")
echo "     an uninterrupted prepare takes ${took%.*}.$(cut -d. -f2 <<<"$took" | cut -c1-2) s"
for f in 0.05 0.15 0.3 0.45 0.6 0.75 0.9 1.05; do
  d=$(python3 -c "print(round($took * $f, 3))")
  trial_prepare "at ${d}s" "" "$d"
done
[[ $seen == *refused* && $seen == *old* ]] && ok "outcomes of the prepare kills:$seen" ||
  bad "the prepare kills did not cover both phases (before and during the moves):$seen"

# ---- gpt-export ---------------------------------------------------------------------------------
model=(--device cpu --n-layer 4 --n-head 4 --n-embd 256 --max-seq-len 64 --seq-len 64 --batch-size 2 --warmup-steps 0)
"$BIN/gpt-pretrain" "${model[@]}" --train-data "$work/ref-old/train_*.bin" --val-data "$work/ref-old/val_*.bin" \
  --steps 1 --out "$work/run-a" 2>/dev/null &&
"$BIN/gpt-pretrain" "${model[@]}" --train-data "$work/ref-old/train_*.bin" --val-data "$work/ref-old/val_*.bin" \
  --steps 2 --out "$work/run-b" 2>/dev/null || die "the two models"
export_to() { "$BIN/gpt-export" --checkpoint "$1" --format "$2" --out "$3" --force 2>/dev/null; }
export_to "$work/run-a" hf "$work/hf-a" && export_to "$work/run-b" hf "$work/hf-b" || die "reference exports"
a_sig=$(sig "$work/hf-a"); b_sig=$(sig "$work/hf-b")
judge_export() {  # OUT: a | b | aside (OUT gone, OUT.replaced-PID is a whole) | a failure
  local out=$1 s
  if [[ ! -e $out ]]; then
    local r; r=$(ls -d "$out".replaced-* 2>/dev/null | head -n 1)
    if [[ -n $r && $(sig "$r") == "$a_sig" ]] && loadable "$r"; then echo aside; else echo "GONE"; fi
    return
  fi
  s=$(sig "$out")
  if [[ $s == "$a_sig" ]] && loadable "$out"; then echo a; elif [[ $s == "$b_sig" ]] && loadable "$out"; then echo b; else echo MIXED; fi
}
trial_export() {  # trial_export LABEL ENV|"" DELAY
  local out="$work/hf-out"
  rm -rf "$out" "$out".*; cp -a "$work/hf-a" "$out"
  if [[ -n $2 ]]; then
    quietly env "$2" "$BIN/gpt-export" --checkpoint "$work/run-b" --format hf --out "$out" --force
  else
    "$BIN/gpt-export" --checkpoint "$work/run-b" --format hf --out "$out" --force 2>/dev/null &
    local pid=$!
    sleep "$3"; kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
  fi
  local v; v=$(judge_export "$out")
  case $v in a | b | aside) ok "export killed ($1): $v" ;; *) bad "export killed ($1): $v" ;; esac
  # The next export completes and removes the killed one's partial folder.
  rm -rf "$out".replaced-*
  export_to "$work/run-b" hf "$out"
  if [[ $(sig "$out") == "$b_sig" ]] && ! ls -d "$out".partial-* >/dev/null 2>&1; then :; else
    bad "export after the kill ($1): not model b, or leftovers: $(ls -d "$out".* 2>/dev/null | tr '\n' ' ')"
  fi
}
trial_export "hook: new folder complete" GPT_TEST_KILL_IN_EXPORT=staged ""
trial_export "hook: old folder renamed aside" GPT_TEST_KILL_IN_EXPORT=aside ""
for d in 0.02 0.05 0.1 0.2 0.3; do trial_export "at ${d}s" "" "$d"; done
# llm.c: one file written under a temporary name and renamed.
export_to "$work/run-a" llmc "$work/a.bin"; export_to "$work/run-b" llmc "$work/b.bin"
for d in 0.02 0.05 0.1 0.2; do
  cp "$work/a.bin" "$work/out.bin"
  "$BIN/gpt-export" --checkpoint "$work/run-b" --format llmc --out "$work/out.bin" --force 2>/dev/null &
  pid=$!; sleep "$d"; kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
  if cmp -s "$work/out.bin" "$work/a.bin"; then ok "llm.c export killed at ${d}s: the old file"
  elif cmp -s "$work/out.bin" "$work/b.bin"; then ok "llm.c export killed at ${d}s: the new file"
  else bad "llm.c export killed at ${d}s: neither"; fi
done

finish
