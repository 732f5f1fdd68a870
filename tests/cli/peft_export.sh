#!/usr/bin/env bash
# gpt-export's ways back without Python (docs/models.md, "Export a model and its adapter"):
#   1. an hf export of a hub directory (tests/fixtures/hub/qwen2, bf16) carries its tokenizer files
#      and, with --dtype bf16, the same tensors bit for bit; one of a LoRA checkpoint takes the
#      files the checkpoint lacks from the run's --init when the tokenizer.json is the same, and
#      says that the adapter is not in the base weights;
#   2. --format peft writes adapter_config.json + adapter_model.safetensors, in bf16 with --dtype;
#   3. what cannot be exported is refused in one line: a class head, a checkpoint without an
#      adapter, bf16 llm.c files, flags of another format.
# tests/reference/check_peft_export.py loads the results in transformers and PEFT.
# Usage: peft_export.sh BIN_DIR INTEROP_TOOL
source "$(dirname "$0")/lib.sh"
BIN=$1
TOOL=$2
SRC=$(cd "$(dirname "$0")/../.." && pwd)
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=2

# A hub-style Qwen2 directory (q/k/v biases: --qkv-bias) made by the engine, with tokenizer files.
fox_text 120 "$work/text.txt"
"$BIN/gpt-prepare" --tokenizer bytes --input "$work/text.txt" --out "$work/data" 2>/dev/null || die gpt-prepare
"$BIN/gpt-pretrain" --train-data "$work/data/train_*.bin" --device cpu --threads 2 --family llama \
  --n-layer 2 --n-head 4 --n-kv-head 2 --n-embd 32 --mlp-hidden 48 --qkv-bias true --max-seq-len 32 \
  --seq-len 8 --batch-size 2 --steps 1 --out "$work/pre" 2>"$work/pre.err" || die "gpt-pretrain: $(tail -2 "$work/pre.err")"
"$BIN/gpt-export" --checkpoint "$work/pre/latest" --format hf --out "$work/hub" 2>/dev/null || die "export the hub model"
echo '{"version": "1.0", "model": {"type": "BPE"}}' >"$work/hub/tokenizer.json"
echo '{"eos_token": "<|endoftext|>", "chat_template": "{{ messages }}"}' >"$work/hub/tokenizer_config.json"
echo '{"eos_token": "<|endoftext|>"}' >"$work/hub/special_tokens_map.json"
echo '{"eos_token_id": 256}' >"$work/hub/generation_config.json"
# has_tokenizer_files NAME SOURCE DIR: DIR holds SOURCE's tokenizer files, byte for byte.
has_tokenizer_files() {
  local f missing=""
  for f in tokenizer.json tokenizer_config.json special_tokens_map.json generation_config.json; do
    cmp -s "$2/$f" "$3/$f" || missing+=" $f"
  done
  [[ -z $missing ]] && ok "$1" || bad "$1: not copied:$missing"
}

# ---- 1. tokenizer files ----------------------------------------------------------------------------
fixture=$SRC/tests/fixtures/hub/qwen2
"$BIN/gpt-export" --checkpoint "$fixture" --format hf --dtype bf16 --out "$work/qwen2" 2>"$work/e.err" ||
  die "gpt-export of a hub directory: $(cat "$work/e.err")"
has_tokenizer_files "an hf export carries the source's tokenizer files" "$fixture" "$work/qwen2"
# st-dump: every tensor's dtype, shape and SHA-256, sorted by name.
if diff <("$TOOL" st-dump "$fixture/model.safetensors") <("$TOOL" st-dump "$work/qwen2/model.safetensors") >/dev/null; then
  ok "a bf16 hub model exported with --dtype bf16: the same tensors bit for bit"
else bad "the bf16 export of $fixture differs from it"; fi

cp "$work/hub/tokenizer.json" "$work/data/"  # as if prepared with the model's own tokenizer
ft=(--init "$work/hub" --task lm --method lora --lora-targets q_proj,k_proj,v_proj,down_proj
    --train-data "$work/data/train_*.bin" --seq-len 8 --batch-size 2 --steps 2 --device cpu --threads 2)
"$BIN/gpt-finetune" "${ft[@]}" --out "$work/run" 2>"$work/ft.err" || die "gpt-finetune: $(tail -2 "$work/ft.err")"
"$BIN/gpt-export" --checkpoint "$work/run/latest" --format hf --out "$work/base" 2>"$work/e.err" ||
  bad "hf export of a LoRA checkpoint: $(cat "$work/e.err")"
has_tokenizer_files "a LoRA checkpoint's hf export takes the --init's tokenizer files" "$work/hub" "$work/base"
grep -q "note: these are the checkpoint's base weights, without its LoRA adapter" "$work/e.err" &&
  ok "the hf export says the adapter is not in it" || bad "no note about the adapter: $(cat "$work/e.err")"

# ---- 2. PEFT ---------------------------------------------------------------------------------------
for dtype in f32 bf16; do
  out=$work/adapter_$dtype
  if "$BIN/gpt-export" --checkpoint "$work/run" --format peft --dtype "$dtype" --out "$out" 2>"$work/e.err" &&
     grep -q '"target_modules": \[' "$out/adapter_config.json" &&
     grep -q '"down_proj"' "$out/adapter_config.json" && grep -q '"peft_type": "LORA"' "$out/adapter_config.json" &&
     grep -q "\"base_model_name_or_path\": \"$work/hub\"" "$out/adapter_config.json" &&
     head -c 2000 "$out/adapter_model.safetensors" | grep -q "layers.0.self_attn.k_proj.lora_B.weight"; then
    ok "--format peft --dtype $dtype: $(tail -1 "$work/e.err")"
  else bad "--format peft --dtype $dtype: $(cat "$work/e.err")"; fi
done
head -c 300 "$work/adapter_bf16/adapter_model.safetensors" | grep -q '"dtype":"BF16"' &&
  ok "bf16 adapter tensors" || bad "the bf16 adapter is not BF16"

# ---- 3. refusals -----------------------------------------------------------------------------------
for i in $(seq 1 16); do
  echo "{\"text\": \"a good film, number $i\", \"label\": 1}"; echo "{\"text\": \"bad film $i\", \"label\": 0}"
done >"$work/cls.jsonl"
"$BIN/gpt-prepare" --task classify --format jsonl --tokenizer bytes --input "$work/cls.jsonl" --seq-len 32 \
  --out "$work/cls" 2>/dev/null || die "prepare classify"
"$BIN/gpt-finetune" "${ft[@]}" --task classify --train-data "$work/cls/train_*.bin" --seq-len 32 \
  --out "$work/cls_run" 2>"$work/ft.err" || die "gpt-finetune classify: $(tail -2 "$work/ft.err")"
expect_error "a class head has no PEFT form" "has a class head (head.safetensors), which a PEFT CAUSAL_LM adapter cannot carry" \
  "$BIN/gpt-export" --checkpoint "$work/cls_run" --format peft --out "$work/never"
expect_error "no adapter to export" "no LoRA adapter (adapter.safetensors) to export" \
  "$BIN/gpt-export" --checkpoint "$work/hub" --format peft --out "$work/never"
expect_error "bf16 llm.c" "format llmc writes f32 only" \
  "$BIN/gpt-export" --checkpoint "$SRC/tests/fixtures/hf_tiny" --format llmc --dtype bf16 --out "$work/never.bin"
expect_error "unknown dtype" "'f16': expected f32 or bf16" \
  "$BIN/gpt-export" --checkpoint "$work/hub" --format hf --dtype f16 --out "$work/never"
expect_error "--adapter with --format hf" "adapter is for --format peft" \
  "$BIN/gpt-export" --checkpoint "$work/hub" --format hf --adapter "$work/run/adapter.safetensors" --out "$work/never"
[[ ! -e $work/never && ! -e $work/never.bin ]] && ok "nothing written on refusal" || bad "a refused export wrote --out"
finish
