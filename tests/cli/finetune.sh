#!/usr/bin/env bash
# gpt-finetune as a user runs it, on tiny synthetic data: early stopping stops and keeps the best
# checkpoint; LoRA adapters load back (alone and merged); grouping by length, --overwrite,
# trimmed vs padded rows, SIGTERM mid-run; an adapter for another model shape, a missing --init and
# labels outside the class set give one-line errors.
# Usage: finetune.sh BIN_DIR
source "$(dirname "$0")/lib.sh"
BIN=$1
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=2

# A tiny corpus and a tiny pretrained model.
for i in $(seq 1 60); do echo "the cat sat on the mat and the dog ran in the sun number $i."; done > "$work/text.txt"
"$BIN/gpt-prepare" --input "$work/text.txt" --out "$work/lm" 2>/dev/null || die "prepare lm"
"$BIN/gpt-pretrain" --train-data "$work/lm/train_*.bin" --out "$work/base" --device cpu --n-layer 1 --n-head 2 \
  --n-embd 16 --max-seq-len 64 --seq-len 32 --batch-size 4 --steps 3 --eval-every 0 2>/dev/null || die "pretrain"
# Classification data: JSONL text + class id, 2 classes.
for i in $(seq 1 40); do
  echo "{\"text\": \"good film number $i\", \"label\": 1}"; echo "{\"text\": \"bad film number $i\", \"label\": 0}"
done > "$work/cls.jsonl"
"$BIN/gpt-prepare" --task classify --format jsonl --input "$work/cls.jsonl" --val-fraction 0.25 --seq-len 32 \
  --out "$work/cls" 2>/dev/null || die "prepare classify"

common=(--init "$work/base" --task classify --train-data "$work/cls/train_*.bin" --val-data "$work/cls/val_*.bin"
        --batch-size 4 --seq-len 32 --device cpu --eval-every 1)
# A learning rate so small that the accuracy cannot move: patience 2 stops after 2 more validations.
if "$BIN/gpt-finetune" "${common[@]}" --method full --lr 1e-12 --min-lr 1e-12 --steps 20 --patience 2 \
     --metric accuracy --out "$work/es" 2>"$work/es.log" &&
   grep -q "early stopping: accuracy has not improved for 2 validations (best at step 1)" "$work/es.log" &&
   [[ $(grep -c '"train_loss"' "$work/es/log.jsonl") -eq 3 ]] &&
   [[ $(cat "$work/es/best") == ckpt_000001* ]]; then
  ok "early stopping stops after the patience and keeps the best (step 1)"
else
  bad "early stopping: $(tail -3 "$work/es.log")"
fi

# LoRA: adapters alone, merged checkpoint, and evaluation of both gives the same predictions.
if "$BIN/gpt-finetune" "${common[@]}" --method lora --lr 1e-2 --steps 4 --merge-lora true --out "$work/lora" 2>"$work/lora.log" &&
   [[ -s $work/lora/adapter.safetensors && -f $work/lora/merged/latest ]]; then
  a=$("$BIN/gpt-eval" --model "$work/lora/best" --task classify --data "$work/cls/val_*.bin" --device cpu 2>/dev/null | grep -i "accuracy")
  b=$("$BIN/gpt-eval" --model "$work/lora/merged" --task classify --data "$work/cls/val_*.bin" --device cpu 2>/dev/null | grep -i "accuracy")
  if [[ -n $a && $a == "$b" ]]; then ok "LoRA adapters and the merged checkpoint classify alike ($a)"; else bad "merged vs adapters: '$a' vs '$b'"; fi
else
  bad "LoRA run: $(tail -3 "$work/lora.log")"
fi

# Grouping by length trains; --overwrite into the early-stopping run's directory starts over: its
# checkpoints (ckpt_000001.. of another run) are gone, only the new run's remain.
if "$BIN/gpt-finetune" "${common[@]}" --method full --lr 1e-3 --steps 2 --group-by-length true --keep-last 0 \
     --out "$work/es" --overwrite true 2>"$work/grouped.log" &&
   [[ $(ls -d "$work"/es/ckpt_* | wc -l) -eq 2 && -d $work/es/ckpt_000002 && ! -d $work/es/ckpt_000003 ]]; then
  ok "--group-by-length trains; --overwrite removes the earlier run's checkpoints"
else
  bad "grouped/overwrite: $(ls "$work/es") $(tail -3 "$work/grouped.log")"
fi

# Trimmed rows (the default) train exactly as rows padded to --seq-len: the same first-step loss.
for trim in true false; do
  "$BIN/gpt-finetune" "${common[@]}" --method full --lr 1e-3 --steps 1 --trim-rows $trim --out "$work/trim-$trim" \
    2>"$work/trim-$trim.log" || bad "--trim-rows $trim: $(tail -2 "$work/trim-$trim.log")"
done
first_loss() { grep -m1 '"train_loss"' "$1/log.jsonl" | sed 's/.*"train_loss":\([^,]*\),.*/\1/'; }
if python3 -c "import sys; a, b = map(float, sys.argv[1:]); sys.exit(abs(a - b) > 1e-5 * abs(a))" \
     "$(first_loss "$work/trim-true")" "$(first_loss "$work/trim-false")"; then
  ok "trimmed and padded rows give the same loss ($(first_loss "$work/trim-true"))"
else
  bad "trimmed vs padded loss: $(first_loss "$work/trim-true") vs $(first_loss "$work/trim-false")"
fi

# SIGTERM mid-run: the step finishes, the last checkpoint is written beside the best, exit 0 with
# one line naming both.
"$BIN/gpt-finetune" "${common[@]}" --method lora --lr 1e-3 --steps 100000 --eval-every 5 --out "$work/sig" \
  2>"$work/sig.err" &
pid=$!
wait_for_log "$work/sig/log.jsonl" 12 $pid train_loss
kill -TERM $pid 2>/dev/null
wait $pid
rc=$?
line=$(grep "SIGTERM: stopped after step" "$work/sig.err")
step=$(printf '%s' "$line" | sed -n 's/.*stopped after step \([0-9]*\)\/.*/\1/p')
if [[ $rc -eq 0 && -n $step && $line == *"last checkpoint $work/sig/ckpt_"*"; best $work/sig/best"* &&
      -f $work/sig/$(printf 'ckpt_%06d' "$step")/trainer_state.json && -f $work/sig/best ]]; then
  ok "SIGTERM: exit 0 after step $step: $line"
else
  bad "SIGTERM: rc=$rc: $(tail -2 "$work/sig.err")"
fi

# Bad input: an adapter for another model shape, no --init, labels outside the class set.
"$BIN/gpt-pretrain" --train-data "$work/lm/train_*.bin" --out "$work/other" --device cpu --n-layer 2 --n-head 2 \
  --n-embd 16 --max-seq-len 64 --seq-len 32 --batch-size 4 --steps 1 --eval-every 0 2>/dev/null
err=$("$BIN/gpt-eval" --model "$work/other" --adapter "$work/lora/adapter.safetensors" --task lm \
      --data "$work/lm/val_*.bin" --device cpu 2>&1 >/dev/null)
if [[ $? -ne 0 && $err == *"adapter.safetensors"* && $(printf '%s\n' "$err" | grep -c .) -eq 1 ]]; then
  ok "adapter for another model shape: $err"
else
  bad "adapter shape mismatch: $err"
fi
err=$("$BIN/gpt-finetune" --task sft --train-data "$work/cls/train_*.bin" --out "$work/x" 2>&1 >/dev/null)
[[ $? -ne 0 && $err == *"--init is required"* ]] && ok "missing --init: $err" || bad "missing --init: $err"
echo '{"text": "strange film", "label": 7}' > "$work/bad.jsonl"
err=$("$BIN/gpt-prepare" --task classify --format jsonl --input "$work/bad.jsonl" --out "$work/bad" 2>&1 >/dev/null)
[[ $? -ne 0 && $err == *"bad.jsonl:1"* ]] && ok "label outside the class set: $err" || bad "bad label: $err"
finish
