#!/usr/bin/env bash
# Hugging Face and llm.c interop as a user meets it (docs/checkpoints.md):
#   1. a GPT-2 directory made by transformers (tests/fixtures/hf_tiny) trains with --init and exports
#      back, to Hugging Face and to llm.c;
#   2. the same weights as our checkpoint, as the HF export and as the llm.c export start identical
#      runs, and llm.c -> HF gives the same file as checkpoint -> HF;
#   3. transformers loads our exports and computes our logits (needs torch + transformers in PYTHON;
#      reported as skipped otherwise);
#   4. bad input gives one line naming the file and the field.
# Usage: interop.sh BIN_DIR INTEROP_TOOL [PYTHON]
source "$(dirname "$0")/lib.sh"
BIN=$1
TOOL=$2
PY=${3:-}
SRC=$(cd "$(dirname "$0")/../.." && pwd)
HF_TINY=$SRC/tests/fixtures/hf_tiny
export OMP_WAIT_POLICY=passive

for i in $(seq 1 200); do echo "line $i: a small corpus to fine-tune a tiny GPT-2 $((i * 31 % 97))"; done >"$work/text.txt"
"$BIN/gpt-prepare" --tokenizer bytes --input "$work/text.txt" --out "$work/data" 2>/dev/null || die gpt-prepare
train=(--train-data "$work/data/train_*.bin" --val-data "$work/data/val_*.bin" --device cpu --seq-len 8
       --batch-size 4 --lr 0.003 --warmup-steps 1 --eval-every 2 --threads 2)

# ---- 1. HF in, train, HF and llm.c out ---------------------------------------------------------------
if "$BIN/gpt-pretrain" "${train[@]}" --steps 4 --init "$HF_TINY" --out "$work/run" 2>"$work/run.err" &&
   grep -q "init: .*hf_tiny (Hugging Face)" "$work/run.err" && [[ $(grep -c train_loss "$work/run/log.jsonl") -eq 4 ]]; then
  ok "gpt-pretrain --init tests/fixtures/hf_tiny trains ($(grep -o 'model: [^,]*, [^,]*, width [0-9]*' "$work/run.err"))"
else bad "--init from a Hugging Face directory: $(tail -n 3 "$work/run.err")"; fi
"$BIN/gpt-export" --checkpoint "$work/run/latest" --format hf --out "$work/hf" 2>/dev/null &&
  [[ -s $work/hf/config.json && -s $work/hf/model.safetensors ]] && ok "gpt-export --format hf" || bad "gpt-export --format hf"
"$BIN/gpt-export" --checkpoint "$work/run/latest" --format llmc --out "$work/model.bin" 2>/dev/null &&
  [[ -s $work/model.bin ]] && ok "gpt-export --format llmc" || bad "gpt-export --format llmc"

# ---- 2. the same weights in three formats --------------------------------------------------------------
"$BIN/gpt-export" --checkpoint "$work/model.bin" --format hf --out "$work/hf_from_llmc" 2>/dev/null
if cmp -s "$work/hf/model.safetensors" "$work/hf_from_llmc/model.safetensors" &&
   cmp -s "$work/hf/config.json" "$work/hf_from_llmc/config.json"; then
  ok "llm.c -> HF gives the same files as checkpoint -> HF"
else bad "llm.c -> HF differs from checkpoint -> HF"; fi
for src in "$work/run/latest" "$work/hf" "$work/model.bin"; do
  name=$(basename "$src")
  "$BIN/gpt-pretrain" "${train[@]}" --steps 3 --init "$src" --out "$work/from_$name" 2>/dev/null || bad "--init $src"
done
if diff <(losses "$work/from_latest/log.jsonl") <(losses "$work/from_hf/log.jsonl") >/dev/null &&
   diff <(losses "$work/from_latest/log.jsonl") <(losses "$work/from_model.bin/log.jsonl") >/dev/null &&
   cmp -s "$work/from_latest/model.safetensors" "$work/from_model.bin/model.safetensors"; then
  ok "--init from our checkpoint, its HF export and its llm.c export: identical runs"
else bad "--init from the three formats gives different runs"; fi

# ---- 3. transformers loads our exports -----------------------------------------------------------------
if [[ -n $PY && -x $PY ]]; then
  "$BIN/gpt-export" --checkpoint "$HF_TINY" --format hf --out "$work/hf_tiny_again" 2>/dev/null
  for pair in "$work/hf:$work/run/latest" "$work/hf_tiny_again:$HF_TINY"; do
    out=$("$PY" "$SRC/tests/reference/make_hf_reference.py" --check-export "${pair%%:*}" --weights "${pair#*:}" \
          --tool "$TOOL" 2>&1)
    rc=$?
    if [[ $rc -eq 0 ]]; then tail -n 1 <<<"$out"  # "ok   transformers on ... vs our engine on ...: ..."
    elif [[ $rc -eq 77 ]]; then echo "skip transformers check: $(tail -n 1 <<<"$out")"; break
    else bad "transformers check: $out"; fi
  done
else
  echo "skip transformers check: no Python given"
fi

# ---- 4. bad input ----------------------------------------------------------------------------------------
cp -r "$work/data" "$work/data300"
sed -i 's/"vocab_size": 257/"vocab_size": 300/' "$work/data300/meta.json"
expect_error "data vocabulary != model vocabulary" "data300/meta.json: the data's vocab_size 300 does not match the model's vocab_size 257" \
  "$BIN/gpt-pretrain" "${train[@]}" --train-data "$work/data300/train_*.bin" --steps 1 --init "$HF_TINY" --out "$work/never"
expect_error "--n-layer against the --init model" "n-layer=3 does not match the model in" \
  "$BIN/gpt-pretrain" "${train[@]}" --steps 1 --init "$HF_TINY" --n-layer 3 --out "$work/never"
expect_error "seq_len beyond the model's n_positions" "seq_len (16) exceeds max_seq_len (8)" \
  "$BIN/gpt-pretrain" "${train[@]}" --steps 1 --init "$HF_TINY" --seq-len 16 --out "$work/never"
cp -r "$HF_TINY" "$work/hf_bad"
sed -i 's/"n_embd": 16/"n_embd": 32/' "$work/hf_bad/config.json"
expect_error "config.json that does not match the weights" "hf_bad/model.safetensors: tensor 'transformer.wte.weight' has shape \[257,16\], but config.json implies \[257,32\]" \
  "$BIN/gpt-pretrain" "${train[@]}" --steps 1 --init "$work/hf_bad" --out "$work/never"
expect_error "missing --init path" "nothing: no such file or directory" \
  "$BIN/gpt-pretrain" "${train[@]}" --steps 1 --init "$work/nothing" --out "$work/never"
expect_error "unknown export format" "expected hf, llmc or peft" \
  "$BIN/gpt-export" --checkpoint "$HF_TINY" --format onnx --out "$work/never"
expect_error "export over an existing path" "exists (pass --force" \
  "$BIN/gpt-export" --checkpoint "$HF_TINY" --format llmc --out "$work/model.bin"
head -c 5000 "$work/model.bin" >"$work/short.bin"
expect_error "truncated llm.c file" "short.bin: size 5000 bytes, the header implies" \
  "$BIN/gpt-export" --checkpoint "$work/short.bin" --format hf --out "$work/never"
[[ ! -e $work/never ]] && ok "the failed commands wrote nothing" || bad "a failed command wrote $work/never"

finish
