#!/usr/bin/env bash
# gpt-finetune --resume as a user meets it (docs/checkpoints.md):
#   1. N steps in one go == stopped at a checkpoint + --resume, bit for bit (log.jsonl without the
#      timing, and every file of the final checkpoint): LoRA with a class head, length-grouped
#      batches and replay mixing; full fine-tuning of the head and the model with replay; freeze
#      (top block only) on continued pretraining;
#   2. SIGTERM mid-run, then --resume latest: the same losses, best checkpoint and adapters as a run
#      that never stopped;
#   3. the early-stopping state survives: resumed between two bad validations, the run stops at
#      the same step, naming the same best;
#   4. a gpt-pretrain checkpoint, changed training data and a run that already stopped early are
#      refused with one line naming the file.
# Usage: finetune_resume.sh BIN_DIR
source "$(dirname "$0")/lib.sh"
BIN=$1
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=2

fox_text 300 "$work/text.txt"
"$BIN/gpt-prepare" --tokenizer bytes --input "$work/text.txt" --out "$work/lm" 2>/dev/null || die "prepare"
"$BIN/gpt-pretrain" --train-data "$work/lm/train_*.bin" --device cpu --n-layer 2 --n-head 2 --n-embd 32 \
  --max-seq-len 64 --seq-len 32 --batch-size 4 --steps 3 --out "$work/base" 2>/dev/null || die "pretrain"
for i in $(seq 1 48); do
  echo "{\"text\": \"a good film, number $i of them\", \"label\": 1}"; echo "{\"text\": \"bad film $i\", \"label\": 0}"
done >"$work/cls.jsonl"
"$BIN/gpt-prepare" --task classify --format jsonl --tokenizer bytes --input "$work/cls.jsonl" --val-fraction 0.25 \
  --seq-len 32 --out "$work/cls" 2>/dev/null || die "prepare classify"

cls=(--init "$work/base" --task classify --train-data "$work/cls/train_*.bin" --val-data "$work/cls/val_*.bin"
     --batch-size 4 --seq-len 32 --device cpu --eval-every 3 --keep-last 0)
lm=(--init "$work/base" --task lm --train-data "$work/lm/train_*.bin" --val-data "$work/lm/val_*.bin"
    --batch-size 4 --seq-len 32 --device cpu --eval-every 3 --val-max-batches 4 --keep-last 0)
same_dir() { # same_dir A B: the same files with the same bytes (trainer_state.json: but the config's resume/out)
  local f
  [[ $(ls "$1") == "$(ls "$2")" ]] || return 1
  for f in "$1"/*.safetensors; do cmp -s "$f" "$2/$(basename "$f")" || return 1; done
}
finetune() { "$BIN/gpt-finetune" "$@" 2>>"$work/stderr.log"; }

# ---- 1. exact resume, three methods ------------------------------------------------------------------
check_exact() { # NAME ARGS...: 12 steps vs 5 + checkpoint + 7
  local name=$1; shift
  finetune "$@" --steps 12 --out "$work/$name-straight" || { bad "$name: straight run: $(tail -2 "$work/stderr.log")"; return; }
  finetune "$@" --steps 12 --save-every 5 --out "$work/$name-saved" || { bad "$name: saved run"; return; }
  # Keep what a run stopped right after step 5 would have left, then continue from the checkpoint.
  local r=$work/$name-resumed
  cp -r "$work/$name-saved" "$r"
  rm -rf "$r"/ckpt_0000{06,07,08,09,10,11,12} "$r/adapter.safetensors"
  printf 'ckpt_000005' >"$r/latest"
  printf 'ckpt_000003' >"$r/best"  # the first validation after step 0 is the best so far
  if [[ -f $r/ckpt_000003/adapter.safetensors ]]; then cp "$r/ckpt_000003/adapter.safetensors" "$r/"; fi
  if ! finetune --resume latest --out "$r"; then bad "$name: resume: $(tail -2 "$work/stderr.log")"; return; fi
  if diff <(losses "$work/$name-straight/log.jsonl") <(losses "$r/log.jsonl") >/dev/null &&
     same_dir "$work/$name-straight/ckpt_000012" "$r/ckpt_000012" &&
     [[ $(cat "$work/$name-straight/best") == "$(cat "$r/best")" ]] &&
     { [[ ! -f $work/$name-straight/adapter.safetensors ]] || cmp -s "$work/$name-straight/adapter.safetensors" "$r/adapter.safetensors"; }; then
    ok "$name: 12 steps == 5 + checkpoint + --resume 7 (log, weights, adapters, head, optimizer, best: bit for bit)"
  else
    bad "$name: resumed run differs"; diff <(losses "$work/$name-straight/log.jsonl") <(losses "$r/log.jsonl") | head -4
  fi
}
check_exact lora-head "${cls[@]}" --method lora --lr 3e-3 --group-by-length true \
  --replay-data "$work/lm/train_*.bin" --replay-ratio 0.3
check_exact full-head "${cls[@]}" --method full --lr 1e-3 --replay-data "$work/lm/train_*.bin" --replay-ratio 0.25
check_exact freeze-lm "${lm[@]}" --method freeze --train-top 1 --lr 1e-3

# ---- 2. SIGTERM, then --resume latest --------------------------------------------------------------
# A flat learning rate after warmup (min_lr = lr), so that a long run and a short one agree step by step.
flat=("${cls[@]}" --method lora --lr 3e-3 --min-lr 3e-3 --warmup-steps 2 --eval-every 4 --group-by-length true
      --replay-data "$work/lm/train_*.bin" --replay-ratio 0.3)
"$BIN/gpt-finetune" "${flat[@]}" --steps 100000 --out "$work/sig" 2>"$work/sig.err" &
pid=$!
wait_for_log "$work/sig/log.jsonl" 9 $pid train_loss
kill -TERM $pid 2>/dev/null
wait $pid
s=$(sed -n 's/.*SIGTERM: stopped after step \([0-9]*\)\/.*/\1/p' "$work/sig.err")
if [[ -n $s ]]; then
  total=$((s + 6))
  finetune "${flat[@]}" --steps "$total" --out "$work/sig-ref"
  if finetune --resume latest --steps "$total" --out "$work/sig" &&
     diff <(losses "$work/sig-ref/log.jsonl") <(losses "$work/sig/log.jsonl") >/dev/null &&
     [[ $(cat "$work/sig-ref/best") == "$(cat "$work/sig/best")" ]] &&
     cmp -s "$work/sig-ref/adapter.safetensors" "$work/sig/adapter.safetensors" &&
     same_dir "$work/sig-ref/$(printf 'ckpt_%06d' "$total")" "$work/sig/$(printf 'ckpt_%06d' "$total")"; then
    ok "SIGTERM after step $s, --resume latest to step $total == the run that never stopped (best $(cat "$work/sig/best"))"
  else bad "SIGTERM resume differs: $(tail -2 "$work/stderr.log")"; diff <(losses "$work/sig-ref/log.jsonl") <(losses "$work/sig/log.jsonl") | head -4; fi
else bad "SIGTERM: no stop line: $(tail -2 "$work/sig.err")"; fi

# ---- 3. the early-stopping state survives a stop ----------------------------------------------------
# A learning rate too small to move the accuracy: best at step 1, patience 3 stops at step 4.
es=("${cls[@]}" --method full --lr 1e-12 --min-lr 1e-12 --eval-every 1 --patience 3 --metric accuracy --steps 20)
finetune "${es[@]}" --out "$work/es" 2>/dev/null
"$BIN/gpt-finetune" "${es[@]}" --save-every 1 --out "$work/es-saved" 2>/dev/null
cp -r "$work/es-saved" "$work/es-resumed"
rm -rf "$work/es-resumed/ckpt_000004"
printf 'ckpt_000003' >"$work/es-resumed/latest"
"$BIN/gpt-finetune" --resume latest --out "$work/es-resumed" 2>"$work/es.err"
if grep -q "early stopping: accuracy has not improved for 3 validations (best at step 1)" "$work/es.err" &&
   diff <(losses "$work/es/log.jsonl") <(losses "$work/es-resumed/log.jsonl") >/dev/null &&
   [[ $(grep -c '"train_loss"' "$work/es-resumed/log.jsonl") -eq 4 ]]; then
  ok "resumed after 2 bad validations, the run stops at step 4 with the same best (step 1)"
else bad "early-stopping state: $(tail -2 "$work/es.err")"; fi
err=$("$BIN/gpt-finetune" --resume "$work/es/ckpt_000004" --out "$work/es" 2>&1 >/dev/null)
[[ $? -ne 0 && $err == *"this run stopped early"*"raise --patience"* ]] && ok "a run that stopped early: $err" || bad "stopped-early resume: $err"

# ---- 4. refused resumes ----------------------------------------------------------------------------
err=$("$BIN/gpt-finetune" --resume "$work/base/latest" --out "$work/x" 2>&1 >/dev/null)
[[ $? -ne 0 && $err == *"not a gpt-finetune checkpoint"* && $(printf '%s\n' "$err" | grep -c .) -eq 1 ]] &&
  ok "a gpt-pretrain checkpoint: $err" || bad "pretrain checkpoint: $err"
head -n 150 "$work/text.txt" >"$work/fewer.txt"
"$BIN/gpt-prepare" --tokenizer bytes --input "$work/fewer.txt" --out "$work/lm2" 2>/dev/null
err=$("$BIN/gpt-finetune" --resume "$work/freeze-lm-saved/ckpt_000005" --train-data "$work/lm2/train_*.bin" \
      --out "$work/freeze-lm-saved" 2>&1 >/dev/null)
[[ $? -ne 0 && $err == *"trainer_state.json"*"the data changed"* ]] && ok "changed training data: $err" || bad "changed data: $err"
err=$("$BIN/gpt-finetune" "${cls[@]}" --method lora --steps 2 --out "$work/lora-head-straight" 2>&1 >/dev/null)
[[ $? -ne 0 && $err == *"--resume latest"* ]] && ok "a fresh run into an --out with checkpoints: $err" || bad "fresh into used out: $err"

finish "all fine-tuning resume checks passed"
