#!/usr/bin/env bash
# Checkpoints as a user meets them (docs/checkpoints.md):
#   1. 20 steps in one go == 10 steps, a checkpoint, and 10 more in a new process, bit for bit in
#      log.jsonl (every field but the timing, at full precision) and in the final weights and
#      optimizer state; with 2 and with 3 OpenMP threads, and across the two;
#   2. SIGTERM mid-run: the step finishes, a checkpoint is written, exit 0 with one line; then
#      --resume latest logs the same losses as an uninterrupted run;
#   3. a second signal exits at once and leaves the last checkpoint loadable;
#   4. a crash in the middle of a checkpoint write (GPT_TEST_CRASH_IN_CHECKPOINT, and real kill -9)
#      leaves the previous checkpoint loadable, and the run resumes from it to the same bits;
#   5. a flipped byte or a truncated file in a checkpoint is reported, naming the file, and nothing
#      is written; a fresh run will not overwrite an earlier run's checkpoints.
# Usage: resume.sh BIN_DIR
source "$(dirname "$0")/lib.sh"
BIN=$1
export OMP_WAIT_POLICY=passive

fox_text 300 "$work/text.txt"
"$BIN/gpt-prepare" --tokenizer bytes --input "$work/text.txt" --out "$work/data" 2>/dev/null || die gpt-prepare

common=(--train-data "$work/data/train_*.bin" --val-data "$work/data/val_*.bin" --device cpu --n-layer 2
        --n-head 2 --n-embd 32 --max-seq-len 32 --seq-len 32 --batch-size 4 --warmup-steps 3 --lr 0.01)
pretrain() { "$BIN/gpt-pretrain" "$@" 2>>"$work/stderr.log"; }

# ---- 1. exact resume, 2 and 3 threads ----------------------------------------------------------------
for t in 2 3; do
  pretrain "${common[@]}" --steps 20 --eval-every 5 --threads "$t" --out "$work/straight$t"
  pretrain "${common[@]}" --steps 20 --eval-every 5 --threads "$t" --out "$work/saved$t" --save-every 10
  # Keep only what a run stopped after step 10 would have had, then continue in a new process with
  # nothing but the checkpoint (the settings come from it).
  cp -r "$work/saved$t" "$work/resumed$t"
  rm -rf "$work/resumed$t/ckpt_000020" "$work/resumed$t/model.safetensors"
  pretrain --resume "$work/resumed$t/ckpt_000010" --out "$work/resumed$t" --threads "$t"
  if [[ $(grep -c . "$work/straight$t/log.jsonl") -eq 21 ]] && same "$work/straight$t" "$work/saved$t"; then
    ok "$t threads: saving every 10 steps changes nothing"
  else bad "$t threads: the run with checkpoints differs from the one without"; fi
  if same "$work/straight$t" "$work/resumed$t"; then
    ok "$t threads: 20 steps == 10 + checkpoint + 10 (log.jsonl, weights, optimizer state bit for bit)"
  else
    bad "$t threads: resumed run differs"; diff <(losses "$work/straight$t/log.jsonl") <(losses "$work/resumed$t/log.jsonl") | head -4
  fi
done
if same "$work/straight2" "$work/straight3"; then ok "2 and 3 threads give the same bits"; else bad "2 vs 3 threads differ"; fi
cp -r "$work/saved2" "$work/mixed" && rm -rf "$work/mixed/ckpt_000020"
pretrain --resume "$work/mixed/ckpt_000010" --out "$work/mixed" --threads 3
if same "$work/straight2" "$work/mixed"; then ok "a 2-thread checkpoint resumed with 3 threads: same bits"
else bad "2-thread checkpoint resumed with 3 threads differs"; fi

# ---- 2. SIGTERM mid-run, then --resume latest ----------------------------------------------------------
long=("${common[@]}" --steps 600 --eval-every 200 --save-every 50 --threads 2)
pretrain "${long[@]}" --out "$work/uninterrupted"
"$BIN/gpt-pretrain" "${long[@]}" --out "$work/sig" 2>"$work/sig.err" &
pid=$!
wait_for_log "$work/sig/log.jsonl" 80 $pid
kill -TERM $pid 2>/dev/null
wait $pid
rc=$?
msg=$(grep -c "SIGTERM: stopped after step" "$work/sig.err")
last=$(tail -n 1 "$work/sig.err")
if [[ $rc -eq 0 && $msg -eq 1 && $last == *"SIGTERM: stopped after step"*"continue with --resume latest" ]]; then
  ok "SIGTERM: exit 0, one line: $last"
else bad "SIGTERM: rc=$rc, message lines=$msg, last line: $last"; fi
stopped=$(sed -nE 's/.*stopped after step ([0-9]+)\/.*/\1/p' "$work/sig.err")
if [[ -n $stopped && $(cat "$work/sig/latest") == $(printf 'ckpt_%06d' "$stopped") ]]; then
  ok "the checkpoint of step $stopped is latest"
else bad "latest is $(cat "$work/sig/latest" 2>/dev/null), stopped at '$stopped'"; fi
pretrain "${long[@]}" --out "$work/sig" --resume latest
if same "$work/uninterrupted" "$work/sig"; then ok "SIGTERM at step $stopped + --resume latest == uninterrupted run"
else bad "SIGTERM + resume differs from the uninterrupted run"; fi

# ---- 3. a second signal exits at once ------------------------------------------------------------------
# A model large enough that a step takes a while: the second signal lands in the middle of it.
big=(--train-data "$work/data/train_*.bin" --device cpu --n-layer 4 --n-head 4 --n-embd 256 --max-seq-len 64
     --seq-len 64 --batch-size 8 --steps 1000 --save-every 1 --threads 2)
"$BIN/gpt-pretrain" "${big[@]}" --out "$work/twice" 2>"$work/twice.err" &
pid=$!
wait_for_log "$work/twice/log.jsonl" 2 $pid . 6000
kill -TERM $pid; sleep 0.05; kill -TERM $pid
wait $pid
rc=$?
if [[ $rc -eq 143 && $(tail -n 1 "$work/twice.err") == *"second signal"* ]] && loadable "$work/twice/latest"; then
  ok "two SIGTERMs: exit $rc at once ($(tail -n 1 "$work/twice.err")); $(cat "$work/twice/latest") is loadable"
else bad "two SIGTERMs: rc=$rc: $(tail -n 2 "$work/twice.err")"; fi

# ---- 4. crashes in the middle of a checkpoint write -----------------------------------------------------
for stage in after_model after_optimizer before_rename before_latest; do
  d="$work/crash_$stage"
  GPT_TEST_CRASH_IN_CHECKPOINT="$stage:15" "$BIN/gpt-pretrain" "${common[@]}" --steps 20 --eval-every 5 \
    --threads 2 --save-every 5 --out "$d" 2>/dev/null
  rc=$?
  if [[ $rc -eq 1 && $(cat "$d/latest") == ckpt_000010 ]] && loadable "$d/latest"; then
    pretrain --resume latest --out "$d" --threads 2
    if same "$work/straight2" "$d"; then ok "crash at $stage of step 15: ckpt_000010 loads; resuming gives the same bits"
    else bad "crash at $stage: the resumed run differs"; fi
  else bad "crash at $stage: rc=$rc, latest=$(cat "$d/latest" 2>/dev/null)"; fi
done
# Real kill -9 at arbitrary moments of a run that writes a checkpoint every step.
for delay in 0.7 1.1 1.6; do
  d="$work/kill9_$delay"
  "$BIN/gpt-pretrain" "${long[@]}" --save-every 1 --keep-last 2 --out "$d" 2>/dev/null &
  pid=$!
  sleep "$delay"
  kill -9 $pid 2>/dev/null
  wait $pid 2>/dev/null
  all_ok=1
  for c in "$d"/ckpt_*; do loadable "$c" || all_ok=0; done
  if [[ -f $d/latest ]] && loadable "$d/latest" && [[ $all_ok -eq 1 ]]; then
    ok "kill -9 after ${delay}s: $(cat "$d/latest") and every ckpt_* directory load"
  elif [[ ! -f $d/latest ]]; then ok "kill -9 after ${delay}s: before the first checkpoint (nothing to check)"
  else bad "kill -9 after ${delay}s: latest=$(cat "$d/latest" 2>/dev/null) not loadable"; fi
done

# ---- 5. bad checkpoints are reported, and nothing is written -------------------------------------------
flip_byte() {  # FILE OFFSET
  local b
  b=$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' ')
  printf "$(printf '\\%03o' $((b ^ 1)))" | dd of="$1" bs=1 seek="$2" conv=notrunc 2>/dev/null
}
d="$work/corrupt"
cp -r "$work/saved2" "$d"
before=$(cat "$d/log.jsonl" "$d/config.json" | sha256sum)
model="$d/ckpt_000010/model.safetensors"
flip_byte "$model" $(($(stat -c %s "$model") / 2))
expect_error "flipped byte (resume)" "ckpt_000010/model.safetensors: checksum mismatch" \
  "$BIN/gpt-pretrain" --resume "$d/ckpt_000010" --out "$d"
expect_error "flipped byte (export)" "model.safetensors: checksum mismatch" \
  "$BIN/gpt-export" --checkpoint "$d/ckpt_000010" --format hf --out "$work/never"
expect_error "flipped byte (init)" "model.safetensors: checksum mismatch" \
  "$BIN/gpt-pretrain" "${common[@]}" --steps 2 --init "$d/ckpt_000010" --out "$work/never"
opt="$d/ckpt_000020/optimizer.safetensors"
truncate -s -8 "$opt"
expect_error "truncated optimizer state" "ckpt_000020/optimizer.safetensors: size .* (truncated" \
  "$BIN/gpt-pretrain" --resume latest --out "$d"
if [[ $(cat "$d/log.jsonl" "$d/config.json" | sha256sum) == "$before" && ! -e $work/never ]]; then
  ok "nothing was written by the failed runs"
else bad "a failed run wrote something"; fi
expect_error "fresh run over checkpoints" "holds checkpoints of an earlier run" \
  "$BIN/gpt-pretrain" "${common[@]}" --steps 2 --out "$work/straight2"
expect_error "resume with another model shape" "n-layer=3 does not match the model" \
  "$BIN/gpt-pretrain" --resume latest --out "$work/straight2" --n-layer 3
expect_error "resume without a checkpoint" "no checkpoint to resume" \
  "$BIN/gpt-pretrain" "${common[@]}" --resume latest --out "$work/empty"
expect_error "resume beyond --steps" "beyond --steps 5" \
  "$BIN/gpt-pretrain" --resume latest --out "$work/straight2" --steps 5
if pretrain "${common[@]}" --steps 2 --out "$work/straight2" --overwrite true && [[ $(cat "$work/straight2/latest") == ckpt_000002 && ! -e $work/straight2/ckpt_000020 ]]; then
  ok "--overwrite true starts over"
else bad "--overwrite"; fi

finish
