#!/usr/bin/env bash
# gpt-plan as a user meets it (docs/plan.md): its predicted peak equals the peak that gpt-pretrain
# and gpt-finetune then measure on the CPU backend (the issue asks for 5%; the plan runs the
# engine's own allocation code, so it is exact), for a tiny model, for the GPT-2 124M shape, and for
# fine-tuning with LoRA and with frozen layers; its answers for the GPU presets are sane; bad flags
# get one clear line.
# Usage: plan.sh BIN_DIR
source "$(dirname "$0")/lib.sh"
BIN=$1
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
export OMP_WAIT_POLICY=passive

fox_text 300 "$work/text.txt"
"$BIN/gpt-prepare" --tokenizer bytes --input "$work/text.txt" --out "$work/data" 2>/dev/null || die gpt-prepare
{
  echo -e "label\tcontent"
  for i in $(seq 1 64); do
    if ((i % 2)); then echo -e "1\ta fine and lovely film number $i"; else echo -e "0\ta dull and tired film number $i"; fi
  done
} >"$work/cls.tsv"
"$BIN/gpt-prepare" --task classify --format sst2 --input "$work/cls.tsv" --tokenizer bytes --val-fraction 0 \
  --seq-len 48 --truncate --out "$work/cls" 2>/dev/null || die "gpt-prepare classify"

# The "(N bytes)" of the app's last line, and gpt-plan's "peak".
measured() { grep -o 'peak memory [0-9.]* MiB ([0-9]* bytes)' "$1" | grep -o '([0-9]*' | tr -d '('; }
planned() { "$BIN/gpt-plan" "$@" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["bytes"]["peak"])'; }
# compare NAME MEASURED PLANNED: within 5%, and say how close.
compare() {
  if [[ -z $2 || -z $3 ]]; then bad "$1: no figure (measured '$2', planned '$3')"; return; fi
  if python3 -c "import sys; m, p = $2, $3; sys.exit(0 if abs(p - m) <= 0.05 * m else 1)"; then
    ok "$1: planned $3 bytes, measured $2 ($(python3 -c "print(f'{($3 - $2) / $2 * 100:+.3f}%')"))"
  else
    bad "$1: planned $3 bytes, measured $2"
  fi
}

tiny=(--n-layer 2 --n-head 2 --n-embd 32 --max-seq-len 64)
# 1. pretrain, tiny: the plan of the run's own config.json.
"$BIN/gpt-pretrain" --train-data "$work/data/train_*.bin" --val-data "$work/data/val_*.bin" --device cpu "${tiny[@]}" \
  --seq-len 32 --batch-size 4 --steps 2 --warmup-steps 1 --out "$work/tiny" 2>"$work/tiny.log" || bad "tiny pretrain ran"
compare "pretrain tiny" "$(measured "$work/tiny.log")" "$(planned --config "$work/tiny/config.json" --device cpu)"

# The tiny-cpu preset as the quickstart trains it (B=16, T=256), one step.
"$BIN/gpt-pretrain" --config "$ROOT/configs/tiny-cpu.json" --train-data "$work/data/train_*.bin" \
  --val-data "$work/data/val_*.bin" --device cpu --steps 1 --warmup-steps 0 --val-max-batches 1 \
  --out "$work/tiny-cpu" 2>"$work/tiny-cpu.log" || bad "tiny-cpu pretrain ran"
compare "pretrain tiny-cpu preset" "$(measured "$work/tiny-cpu.log")" \
  "$(planned --config "$work/tiny-cpu/config.json" --device cpu)"

# finetune_case MODEL METHOD: gpt-finetune of the pretrained run $work/MODEL (a class head, the top
# block trained for freeze), its peak compared with the plan; the log is $work/ft-METHOD-MODEL.log.
finetune_case() {
  local model=$1 method=$2 name=$2-$1
  "$BIN/gpt-finetune" --init "$work/$model" --task classify --method "$method" --train-top 1 --steps 1 --batch-size 6 \
    --seq-len 48 --truncate true --train-data "$work/cls/train_*.bin" --val-data "$work/cls/train_*.bin" \
    --val-max-batches 1 --out "$work/ft-$name" --device cpu 2>"$work/ft-$name.log" || bad "finetune $name ran"
  compare "finetune classify $method, $model" "$(measured "$work/ft-$name.log")" \
    "$(planned --config "$work/$model/config.json" --task classify --method "$method" --train-top 1 --batch 6 --seq-len 48 --device cpu)"
}

# 2. fine-tuning the tiny model: a class head with LoRA, and with the lower block frozen.
finetune_case tiny lora
finetune_case tiny freeze

# Frozen lower blocks hold neither gradients nor their activations (one shared slot): a 4-layer
# model with its top block trained needs clearly less than full fine-tuning, and the plan still
# equals the run.
"$BIN/gpt-pretrain" --train-data "$work/data/train_*.bin" --val-data "$work/data/val_*.bin" --device cpu \
  --n-layer 4 --n-head 2 --n-embd 32 --max-seq-len 64 --seq-len 32 --batch-size 4 --steps 1 --warmup-steps 0 \
  --out "$work/deep" 2>"$work/deep.log" || bad "4-layer pretrain ran"
finetune_case deep full
finetune_case deep freeze
full=$(measured "$work/ft-full-deep.log"); frozen=$(measured "$work/ft-freeze-deep.log")
if [[ -n $full && -n $frozen ]] && python3 -c "import sys; sys.exit(0 if $frozen < 0.7 * $full else 1)"; then
  ok "freezing 3 of 4 blocks: peak $full -> $frozen bytes"
else
  bad "freezing 3 of 4 blocks saves too little: peak $full -> $frozen bytes"
fi

# 3. the GPT-2 124M shape (vocabulary 50257, the preset), one short step at B=1, T=64.
m124=(--config "$ROOT/configs/gpt2-124m.json" --vocab-size 50257 --batch-size 1 --seq-len 64 --total-batch-tokens 64)
"$BIN/gpt-pretrain" "${m124[@]}" --train-data "$work/data/train_*.bin" --val-data "$work/data/val_*.bin" --device cpu \
  --steps 1 --warmup-steps 0 --val-max-batches 1 --out "$work/m124" 2>"$work/m124.log" || bad "124M pretrain ran"
compare "pretrain 124M" "$(measured "$work/m124.log")" "$(planned --preset gpt2-124m --device cpu --batch 1 --seq-len 64)"

# 4. GPU answers: LoRA on 774M fits an 80 GB card with room; full pretraining of 1558M at B=32 T=1024
# does not, but a smaller micro-batch does; ZeRO-1 over 8 ranks cuts the optimizer state per rank.
out=$("$BIN/gpt-plan" --preset gpt2-774m --task lora --device-memory 80GB 2>&1)
if grep -q '^fits: yes' <<<"$out" && grep -q 'largest micro-batch that fits at T=1024: B=[0-9]' <<<"$out"; then
  ok "774M LoRA on 80 GB: $(grep '^fits' <<<"$out")"
else
  bad "774M LoRA on 80 GB: $out"
fi
j=$("$BIN/gpt-plan" --preset gpt2-1558m --batch 32 --device-memory 80GB --json)
fits=$(python3 -c 'import json,sys; j=json.load(sys.stdin); print(j["fits"], j["largest_batch"])' <<<"$j")
if [[ $fits == "False "[1-9]* ]]; then ok "1558M pretrain B=32 on 80 GB does not fit; largest B ${fits#False }"; else bad "1558M: $fits"; fi
one=$("$BIN/gpt-plan" --preset gpt2-350m --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["bytes"]["optimizer_state"])')
eight=$("$BIN/gpt-plan" --preset gpt2-350m --world-size 8 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["bytes"]["optimizer_state"])')
if python3 -c "import sys; sys.exit(0 if abs($one / 8 - $eight) <= 0.01 * $eight else 1)"; then
  ok "ZeRO-1 over 8 ranks: optimizer state $one -> $eight bytes per rank"
else
  bad "ZeRO-1 over 8 ranks: optimizer state $one -> $eight bytes per rank"
fi
t=$("$BIN/gpt-plan" --preset gpt2-124m --tokens 10e9 --tokens-per-s 1e6 2>&1 | grep '^time:')
[[ $t == *"2.78 h"* ]] && ok "time estimate: $t" || bad "time estimate: '$t'"

# 5. bad input: one line naming the flag, exit 1.
expect_error refused "--device-memory '80'" "$BIN/gpt-plan" --preset gpt2-124m --device-memory 80
expect_error refused "--preset 'gpt2-xl'" "$BIN/gpt-plan" --preset gpt2-xl
expect_error refused "--task 'sft'" "$BIN/gpt-plan" --preset gpt2-124m --task sft
expect_error refused "--seq-len 2048" "$BIN/gpt-plan" --preset gpt2-124m --seq-len 2048
expect_error refused "--lora-targets" "$BIN/gpt-plan" --preset gpt2-124m --task lora --lora-targets qkv,mlp
expect_error refused "no model" "$BIN/gpt-plan" --batch 4
expect_error refused "--train-top" "$BIN/gpt-plan" --preset gpt2-124m --task freeze --train-top 13

finish
