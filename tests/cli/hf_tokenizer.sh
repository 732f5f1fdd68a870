#!/usr/bin/env bash
# Hugging Face model directories' tokenizers as a user runs them (docs/tokenizer.md), on the hub
# fixtures (tests/fixtures/hub: Llama 3, Qwen2, SmolLM2 tokenizers):
#   1. gpt-tokenize --tokenizer MODEL_DIR gives Hugging Face tokenizers' ids (written below, from
#      tests/reference/make_hf_tokenizer_reference.py's tokenizers), special tokens allowed or as
#      text, and --add-special-tokens puts Llama 3's <|begin_of_text|> first;
#   2. a pre-tokenizer the engine does not know is refused in one line naming it;
#   3. gpt-prepare --tokenizer MODEL_DIR encodes with it and keeps the model's tokenizer files in
#      OUT/tokenizer/ (chat template included); <|end_of_text|> separates Llama 3's documents;
#   4. gpt-eval and gpt-generate --model MODEL_DIR find the tokenizer beside the weights;
#   5. gpt-finetune --init MODEL_DIR writes checkpoints that carry tokenizer_config.json,
#      special_tokens_map.json and generation_config.json;
#   6. gpt-finetune --init MODEL_DIR --task classify --method lora (Qwen3, QK-norm) learns a toy
#      sentiment set prepared with the model's tokenizer.
# Usage: hf_tokenizer.sh BIN_DIR
source "$(dirname "$0")/lib.sh"
BIN=$1
HUB=$(cd "$(dirname "$0")/../fixtures/hub" && pwd)
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=2

# ---- 1. ids equal Hugging Face's ------------------------------------------------------------------
# expect NAME EXPECTED_IDS TEXT GPT_TOKENIZE_FLAGS...
expect() {
  local name=$1 want=$2 text=$3
  shift 3
  local got
  got=$(printf '%s' "$text" | "$BIN/gpt-tokenize" "$@" 2>&1)
  if [[ $got == "$want" ]]; then ok "$name"; else bad "$name: got '$got', want '$want'"; fi
}
llama="Hello, DON'T stop: 1234567 café!"
llama_ids="39 545 78 11 638 46 45 6 51 362 521 25 220 453 18 19 20 21 22 282 64 69 127 102 0"
expect "llama3 ids" "$llama_ids" "$llama" --tokenizer "$HUB/llama3"
expect "llama3 --add-special-tokens puts <|begin_of_text|> first" "800 $llama_ids" "$llama" \
  --tokenizer "$HUB/llama3" --add-special-tokens
qwen=$'\u00e9t\u0435\u0301 <|im_start|>user 42'
expect "qwen2 ids (NFC), special allowed" "127 102 83 140 113 136 223 220 801 394 260 220 19 17" \
  "$qwen" --tokenizer "$HUB/qwen2" --special allowed
expect "qwen2 ids, <|im_start|> spelled as text" \
  "127 102 83 140 113 136 223 220 27 91 321 62 309 442 91 29 394 260 220 19 17" \
  "$qwen" --tokenizer "$HUB/qwen2/tokenizer.json" --special text
expect "smollm2 ids (digits one by one)" "87 220 17 15 17 19 12 16 17 12 15 22 220 802" \
  "x 2024-12-07 <|im_end|>" --tokenizer "$HUB/smollm2" --special allowed
back=$(printf '%s' "$llama" | "$BIN/gpt-tokenize" --tokenizer "$HUB/llama3" |
       "$BIN/gpt-tokenize" --tokenizer "$HUB/llama3" --decode)
if [[ $back == "$llama" ]]; then ok "llama3 decode gives the text back"; else bad "decode: '$back'"; fi

# ---- 2. refused, named ----------------------------------------------------------------------------
mkdir -p "$work/odd"
sed 's/\\\\p{N}{1,3}/\\\\p{N}{1,4}/' "$HUB/llama3/tokenizer.json" >"$work/odd/tokenizer.json"
expect_error "an unknown Split pattern is refused" "Split pattern .* is not one the engine knows" \
  "$BIN/gpt-tokenize" --tokenizer "$work/odd" --input /dev/null

# ---- 3. gpt-prepare -------------------------------------------------------------------------------
fox_text 200 "$work/text.txt"
run "gpt-prepare --tokenizer MODEL_DIR" "$BIN/gpt-prepare" --tokenizer "$HUB/llama3" \
  --input "$work/text.txt" --split-docs blank-lines --out "$work/data"
if cmp -s "$HUB/llama3/tokenizer_config.json" "$work/data/tokenizer/tokenizer_config.json" &&
   cmp -s "$HUB/llama3/tokenizer.json" "$work/data/tokenizer/tokenizer.json"; then
  ok "the prepared data keep the model's tokenizer.json and tokenizer_config.json"
else bad "tokenizer/ of the prepared data: $(ls "$work/data/tokenizer")"; fi
if grep -q '"eot_token": *801' "$work/data/meta.json"; then
  ok "Llama 3's documents end with <|end_of_text|> (801)"
else bad "meta.json: $(grep eot "$work/data/meta.json")"; fi
expect "the prepared tokenizer/ gives the model's ids" "$llama_ids" "$llama" \
  --tokenizer "$work/data/tokenizer"

# ---- 4. gpt-eval, gpt-generate find the tokenizer beside the weights ------------------------------
run "gpt-eval --model MODEL_DIR --task lm" "$BIN/gpt-eval" --model "$HUB/llama3" --task lm \
  --data "$work/data/val_*.bin" --device cpu --seq-len 32
run "gpt-generate --model MODEL_DIR" "$BIN/gpt-generate" --model "$HUB/qwen2" --prompt "The fox" \
  --max-new-tokens 4 --temperature 0 --device cpu

# ---- 5. gpt-finetune --init MODEL_DIR: checkpoints carry the tokenizer files ----------------------
run "gpt-finetune --init MODEL_DIR --task lm" "$BIN/gpt-finetune" --init "$HUB/llama3" --task lm \
  --train-data "$work/data/train_*.bin" --val-data "$work/data/val_*.bin" --device cpu \
  --seq-len 32 --batch-size 2 --steps 2 --out "$work/ft"
ckpt="$work/ft/$(tr -d '[:space:]' <"$work/ft/latest")"  # latest names the newest checkpoint
missing=""
for f in tokenizer.json tokenizer_config.json special_tokens_map.json generation_config.json; do
  [[ -f $ckpt/$f ]] || missing="$missing $f"
done
if [[ -z $missing ]]; then ok "the fine-tuned checkpoint carries the model's tokenizer files"
else bad "missing in $ckpt:$missing"; fi

# ---- 6. classification with LoRA on a hub model (the issue's "--task classify --method lora") ----
python3 - "$work/sent.txt" <<'PY'
import random, sys
random.seed(7)
good = ["loved", "enjoyed", "adored", "liked"]; bad = ["hated", "loathed", "disliked", "despised"]
things = ["the film", "this book", "the meal", "that song", "the play", "our trip"]
with open(sys.argv[1], "w") as f:
    for i in range(400):
        label = i % 2
        word = random.choice(good if label else bad)
        f.write(f"We {word} {random.choice(things)}.\t{label}\n")
PY
run "gpt-prepare --task classify with a hub tokenizer" "$BIN/gpt-prepare" --task classify \
  --format uci --tokenizer "$HUB/qwen3" --input "$work/sent.txt" --out "$work/cls"
run "gpt-finetune --init MODEL_DIR --task classify --method lora" "$BIN/gpt-finetune" \
  --init "$HUB/qwen3" --task classify --method lora --lora-targets q_proj,k_proj,v_proj,o_proj \
  --train-data "$work/cls/train_*.bin" --val-data "$work/cls/val_*.bin" --device cpu --lr 0.01 \
  --seq-len 16 --batch-size 16 --steps 60 --eval-every 60 --out "$work/cls-run"
acc=$("$BIN/gpt-eval" --model "$work/cls-run/latest" --task classify --data "$work/cls/val_*.bin" \
        --device cpu 2>/dev/null | awk '$1 == "accuracy" {print $2}')
if python3 -c 'import sys; sys.exit(0 if float(sys.argv[1]) >= 0.9 else 1)' "${acc:-0}"; then
  ok "the LoRA class head learns the toy sentiment set (validation accuracy $acc)"
else bad "classification accuracy ${acc:-?}"; fi

finish
