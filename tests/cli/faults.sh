#!/usr/bin/env bash
# Faults that must lose nothing (docs/checkpoints.md):
#   1. the disk fills up while a checkpoint is written (a 3 MiB tmpfs): one clear error naming the
#      file, a non-zero exit, `latest` still names the previous checkpoint, which loads, and the run
#      resumes from it (copied to a disk with room) to the bits of a run that never stopped;
#   2. a read-only --out (a read-only tmpfs): a fresh run and a resume are refused with one line,
#      and nothing there changes;
#   3. two runs on one --out: the second is refused naming the first's pid (OUT/.lock, flock), for
#      gpt-pretrain and gpt-finetune; once the first is killed with -9 the lock is free again;
#   4. kill -9 in the middle of a line of log.jsonl (a line cut short by hand): --resume drops it;
#   5. a NaN gradient (GPT_TEST_NONFINITE): by default an error naming the step and the tensor, the
#      last checkpoint intact; --on-nonfinite skip drops the step, logs it and still trains --steps
#      updates (and 2 ranks skip the same steps to one process's bits); K skips in a row end the run.
# Parts 1 and 2 need to mount a tmpfs (root); without it they are skipped, saying so.
# Usage: faults.sh BIN_DIR
source "$(dirname "$0")/lib.sh"
BIN=$1
mnt=$work/mnt
mkdir -p "$mnt"
at_exit() { mountpoint -q "$mnt" && umount "$mnt"; }
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=1

fox_text 400 "$work/text.txt"
"$BIN/gpt-prepare" --tokenizer bytes --input "$work/text.txt" --out "$work/data" 2>/dev/null || die "prepare"
# 0.12M parameters: a checkpoint is ~1.4 MiB (weights + AdamW state), so 3 MiB holds two of them
# while the third is written.
common=(--train-data "$work/data/train_*.bin" --device cpu --n-layer 2 --n-head 2 --n-embd 64 --max-seq-len 32
        --seq-len 32 --batch-size 2 --threads 1 --eval-every 0 --lr 0.01 --keep-last 0)

can_mount=0
if mount -t tmpfs -o size=3m tmpfs "$mnt" 2>/dev/null; then can_mount=1; fi
if [[ $can_mount -eq 0 ]]; then
  echo "SKIP parts 1-2: cannot mount a tmpfs here (needs root): disk-full and read-only --out not checked"
else
  # ---- 1. disk full during a checkpoint ----------------------------------------------------------
  "$BIN/gpt-pretrain" "${common[@]}" --steps 30 --save-every 5 --out "$mnt/run" 2>"$work/full.err"
  rc=$?
  err=$(grep 'error' "$work/full.err")
  latest=$(cat "$mnt/run/latest" 2>/dev/null)
  if [[ $rc -ne 0 && $err == *"gpt-pretrain: error: $mnt/run/"*"write failed (disk full?)"* &&
        $(printf '%s\n' "$err" | grep -c .) -eq 1 && -n $latest && -f $mnt/run/$latest/model.safetensors ]] &&
     loadable "$mnt/run/latest"; then
    ok "disk full: rc $rc, one line ($err); latest = $latest, which loads"
  else bad "disk full: rc $rc, latest '$latest': $(tail -2 "$work/full.err")"; fi
  # Room again: continue from what the full disk kept, to the bits of a run that never stopped.
  cp -r "$mnt/run" "$work/run-moved"
  umount "$mnt"
  "$BIN/gpt-pretrain" "${common[@]}" --steps 30 --out "$work/straight" 2>/dev/null
  if "$BIN/gpt-pretrain" --resume latest --out "$work/run-moved" --save-every 0 --threads 1 2>"$work/moved.err" &&
     diff <(losses "$work/straight/log.jsonl") <(losses "$work/run-moved/log.jsonl") >/dev/null &&
     cmp -s "$work/straight/model.safetensors" "$work/run-moved/model.safetensors"; then
    ok "the run resumes from the checkpoint the full disk kept ($latest) to the bits of a run that never stopped"
  else bad "resume after disk full: $(tail -2 "$work/moved.err")"; fi

  # ---- 2. read-only --out ------------------------------------------------------------------------
  mount -t tmpfs -o size=3m tmpfs "$mnt"
  "$BIN/gpt-pretrain" "${common[@]}" --steps 4 --save-every 2 --out "$mnt/ro" 2>/dev/null
  mkdir -p "$mnt/empty"
  mount -o remount,ro "$mnt"
  before=$(cd "$mnt" && find . -type f -exec sha256sum {} + | sort)
  err=$("$BIN/gpt-pretrain" "${common[@]}" --steps 4 --out "$mnt/empty/new" 2>&1 >/dev/null)
  rc=$?
  if [[ $rc -ne 0 && $err == *"gpt-pretrain: error: $mnt/empty/new"*"Read-only file system"* && $(printf '%s\n' "$err" | grep -c .) -eq 1 ]]; then
    ok "a fresh run into a read-only --out: $err"
  else bad "read-only fresh run: rc $rc: $err"; fi
  err=$("$BIN/gpt-pretrain" --resume latest --steps 6 --out "$mnt/ro" 2>&1 >/dev/null | grep error)
  rc=${PIPESTATUS[0]}
  after=$(cd "$mnt" && find . -type f -exec sha256sum {} + | sort)
  if [[ -n $err && $err == *"$mnt/ro"*"Read-only file system"* && $before == "$after" ]]; then
    ok "a resume into a read-only --out: one line, nothing changed: $err"
  else bad "read-only resume: $err"; fi
  umount "$mnt"
fi

# ---- 3. one run per --out ------------------------------------------------------------------------
"$BIN/gpt-pretrain" "${common[@]}" --steps 100000 --out "$work/busy" 2>/dev/null &
first=$!
for _ in $(seq 1 1000); do [[ -s $work/busy/log.jsonl ]] && break; sleep 0.01; done
err=$("$BIN/gpt-pretrain" "${common[@]}" --steps 5 --out "$work/busy" --overwrite true 2>&1 >/dev/null)
rc=$?
if [[ $rc -ne 0 && $err == *"$work/busy is in use by another run (gpt-pretrain pid $first on "* ]] && kill -0 $first; then
  ok "a second gpt-pretrain on a busy --out: $err"
else bad "second run on a busy --out: rc $rc: $err"; fi
"$BIN/gpt-pretrain" "${common[@]}" --steps 3 --out "$work/base" 2>/dev/null
err=$("$BIN/gpt-finetune" --init "$work/base" --task lm --train-data "$work/data/train_*.bin" --batch-size 2 \
      --seq-len 32 --device cpu --steps 2 --out "$work/busy" --overwrite true 2>&1 >/dev/null)
[[ $? -ne 0 && $err == *"in use by another run (gpt-pretrain pid $first"* ]] && ok "gpt-finetune on a busy --out: refused too" ||
  bad "gpt-finetune on a busy --out: $err"
kill -9 $first
wait $first 2>/dev/null
if "$BIN/gpt-pretrain" "${common[@]}" --steps 3 --out "$work/busy" --overwrite true 2>/dev/null; then
  ok "after kill -9 of the first run the --out is free again (the kernel released the lock)"
else bad "--out still locked after kill -9"; fi

# ---- 4. a line of log.jsonl cut short -------------------------------------------------------------
"$BIN/gpt-pretrain" "${common[@]}" --steps 10 --out "$work/cut-ref" 2>/dev/null
"$BIN/gpt-pretrain" "${common[@]}" --steps 10 --save-every 5 --out "$work/cut" 2>/dev/null
rm -rf "$work/cut/ckpt_000010" "$work/cut/model.safetensors"
printf 'ckpt_000005' >"$work/cut/latest"
# What kill -9 in the middle of writing step 7 leaves: steps 1-6 and half a line.
head -n 6 "$work/cut/log.jsonl" >"$work/cut/log.tmp"
sed -n 7p "$work/cut/log.jsonl" | head -c 25 >>"$work/cut/log.tmp"
mv "$work/cut/log.tmp" "$work/cut/log.jsonl"
if "$BIN/gpt-pretrain" --resume latest --out "$work/cut" --threads 1 2>/dev/null &&
   diff <(losses "$work/cut-ref/log.jsonl") <(losses "$work/cut/log.jsonl") >/dev/null; then
  ok "a log.jsonl line cut short by kill -9: --resume drops it and the log reads as one run"
else bad "cut log line: $(diff <(losses "$work/cut-ref/log.jsonl") <(losses "$work/cut/log.jsonl") | head -3)"; fi

# ---- 5. NaN/inf: stop (default) or skip ----------------------------------------------------------
nf=("${common[@]}" --steps 10 --save-every 2)
err=$(GPT_TEST_NONFINITE=grad:5 "$BIN/gpt-pretrain" "${nf[@]}" --out "$work/nan-stop" 2>&1 >/dev/null | grep error)
if [[ $err == "gpt-pretrain: error: non-finite gradient norm (nan), first in the gradient of 'wte' at step 5 "* &&
      $(cat "$work/nan-stop/latest") == ckpt_000004 ]] &&
   loadable "$work/nan-stop/latest"; then
  ok "a NaN gradient stops the run: $err; ckpt_000004 intact"
else bad "NaN stop: $err"; fi
GPT_TEST_NONFINITE=loss:5,grad:7 "$BIN/gpt-pretrain" "${nf[@]}" --on-nonfinite skip --out "$work/nan-skip" 2>"$work/skip.err"
rc=$?
if [[ $rc -eq 0 && $(grep -c '"train_loss"' "$work/nan-skip/log.jsonl") -eq 10 &&
      $(grep -c '"skipped"' "$work/nan-skip/log.jsonl") -eq 2 ]] &&
   grep -q 'step     7/10 | skipped (1 in a row): non-finite gradient norm (nan), first in the gradient of' "$work/skip.err"; then
  ok "--on-nonfinite skip: 2 steps dropped and logged, 10 updates made"
else bad "skip: rc $rc: $(tail -2 "$work/skip.err")"; fi
if command -v mpirun >/dev/null && OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 GPT_TEST_NONFINITE=loss:5,grad:7 \
     mpirun --oversubscribe --bind-to none -np 2 -x GPT_TEST_NONFINITE -x OMPI_ALLOW_RUN_AS_ROOT -x OMPI_ALLOW_RUN_AS_ROOT_CONFIRM \
     "$BIN/gpt-pretrain" "${nf[@]}" --total-batch-tokens 128 --on-nonfinite skip --out "$work/nan-skip2" 2>/dev/null >/dev/null; then
  GPT_TEST_NONFINITE=loss:5,grad:7 "$BIN/gpt-pretrain" "${nf[@]}" --total-batch-tokens 128 --on-nonfinite skip \
    --out "$work/nan-skip1" 2>/dev/null
  if same_run "$work/nan-skip1" "$work/nan-skip2"; then
    ok "2 ranks skip the same steps and end with one process's bits"
  else bad "skip at 2 ranks differs from one process"; fi
fi
err=$(GPT_TEST_NONFINITE=loss:4+ "$BIN/gpt-pretrain" "${nf[@]}" --on-nonfinite skip --max-skipped-steps 3 \
      --out "$work/nan-many" 2>&1 >/dev/null | grep error)
[[ $err == *"3 steps in a row skipped (--max-skipped-steps), the last at step 4"* ]] && ok "K skips in a row end the run: $err" ||
  bad "skips in a row: $err"

finish "all fault checks passed"
