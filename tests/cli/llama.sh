#!/usr/bin/env bash
# The Llama family as a user runs it (docs/models.md), on tiny synthetic data:
#   1. gpt-pretrain --family llama: 12 steps in one go == 6, a checkpoint, and 6 more in a new
#      process, bit for bit; 2 and 3 OpenMP threads give the same bits; mpirun -np 2 (ZeRO-1)
#      gives one process's bits (when MPI is here);
#   2. gpt-plan's planned peak for the run equals the peak the run measured;
#   3. gpt-finetune: LoRA on Hugging Face's target names (q_proj,k_proj,v_proj,o_proj), a partial
#      fused set refused saying why; freeze of the top block; SFT with masked prompts;
#   4. gpt-generate samples from the checkpoint; gpt-eval lm on it;
#   5. gpt-export --format hf writes LlamaForCausalLM, which gpt-eval reads back to the same loss;
#      --format llmc is refused.
# Usage: llama.sh BIN_DIR
source "$(dirname "$0")/lib.sh"
BIN=$1
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=2

fox_text 300 "$work/text.txt"
"$BIN/gpt-prepare" --tokenizer bytes --input "$work/text.txt" --out "$work/data" 2>/dev/null || die gpt-prepare

common=(--train-data "$work/data/train_*.bin" --val-data "$work/data/val_*.bin" --device cpu
        --family llama --n-layer 2 --n-head 4 --n-kv-head 2 --n-embd 32 --head-dim 8 --mlp-hidden 48
        --rope-theta 10000 --max-seq-len 32 --seq-len 32 --batch-size 4 --warmup-steps 3 --lr 0.01)
pretrain() { "$BIN/gpt-pretrain" "$@" 2>>"$work/stderr.log"; }

# ---- 1. exact resume, threads, ranks ------------------------------------------------------------
for t in 2 3; do
  "$BIN/gpt-pretrain" "${common[@]}" --steps 12 --eval-every 6 --threads "$t" --out "$work/straight$t" \
    >"$work/straight$t.out" 2>&1
done
pretrain "${common[@]}" --steps 12 --eval-every 6 --threads 2 --out "$work/saved" --save-every 6 >/dev/null
cp -r "$work/saved" "$work/resumed"
rm -rf "$work/resumed/ckpt_000012" "$work/resumed/model.safetensors"
pretrain --resume "$work/resumed/ckpt_000006" --out "$work/resumed" --threads 2 >/dev/null
if grep -q "model: llama, 2 layers, 4 heads (2 key/value) of 8, MLP 48" "$work/straight2.out" &&
   grep -q '"family": *"llama"' "$work/straight2/config.json"; then
  ok "the run is a llama model and says so"
else bad "model line: $(grep model: "$work/straight2.out")"; fi
if same "$work/straight2" "$work/resumed"; then
  ok "12 steps == 6 + checkpoint + 6 (log.jsonl, weights, optimizer state bit for bit)"
else bad "resumed llama run differs"; diff <(losses "$work/straight2/log.jsonl") <(losses "$work/resumed/log.jsonl") | head -4; fi
if same "$work/straight2" "$work/straight3"; then ok "2 and 3 threads give the same bits"; else bad "2 vs 3 threads differ"; fi
if command -v mpirun >/dev/null; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
  dp=(--total-batch-tokens 256 --threads 1 --steps 4 --eval-every 2)
  OMP_NUM_THREADS=1 pretrain "${common[@]}" "${dp[@]}" --out "$work/r1" >/dev/null
  if OMP_NUM_THREADS=1 mpirun --oversubscribe --bind-to none -np 2 "$BIN/gpt-pretrain" "${common[@]}" "${dp[@]}" \
       --zero 1 --out "$work/r2" >/dev/null 2>>"$work/stderr.log" && same_run "$work/r1" "$work/r2"; then
    ok "mpirun -np 2 with ZeRO-1 gives one process's losses and weights bit for bit"
  else bad "llama at 2 ranks differs: $(tail -2 "$work/stderr.log")"; fi
else
  echo "skip mpirun: not installed"
fi

# ---- 2. gpt-plan == the measured peak ------------------------------------------------------------
planned=$("$BIN/gpt-plan" --device cpu --family llama --n-layer 2 --n-head 4 --n-kv-head 2 --n-embd 32 \
  --head-dim 8 --mlp-hidden 48 --block-size 32 --seq-len 32 --batch 4 --vocab 257 --json 2>/dev/null |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["bytes"]["peak"])')
measured=$(grep -o 'peak memory [0-9.]* MiB ([0-9]* bytes)' "$work/straight2.out" | grep -o '([0-9]*' | tr -d '(')
if [[ -n $planned && $planned == "$measured" ]]; then ok "gpt-plan's peak equals the measured peak ($planned bytes)"
else bad "gpt-plan planned '$planned', the run measured '$measured'"; fi

# ---- 3. fine-tuning ------------------------------------------------------------------------------
base=$(final "$work/straight2")
for i in $(seq 1 40); do
  echo "{\"text\": \"good film number $i\", \"label\": 1}"; echo "{\"text\": \"bad film number $i\", \"label\": 0}"
done > "$work/cls.jsonl"
"$BIN/gpt-prepare" --task classify --format jsonl --input "$work/cls.jsonl" --tokenizer bytes --val-fraction 0.25 \
  --seq-len 32 --out "$work/cls" 2>/dev/null || die "prepare classify"
ft=(--init "$base" --task classify --train-data "$work/cls/train_*.bin" --val-data "$work/cls/val_*.bin"
    --batch-size 4 --seq-len 32 --device cpu --eval-every 2 --steps 4 --lr 3e-3)
if "$BIN/gpt-finetune" "${ft[@]}" --method lora --lora-targets q_proj,k_proj,v_proj,o_proj --out "$work/lora" \
     >"$work/lora.out" 2>&1 && [[ -f $work/lora/$(cat "$work/lora/best")/adapter.safetensors ]]; then
  ok "LoRA on q_proj,k_proj,v_proj,o_proj trains and saves an adapter"
else bad "LoRA: $(tail -3 "$work/lora.out")"; fi
expect_error "a partial fused set is refused" "q_proj, k_proj, v_proj are one fused matrix (qkv) here" \
  "$BIN/gpt-finetune" "${ft[@]}" --method lora --lora-targets q_proj --out "$work/lora-q"
if "$BIN/gpt-finetune" "${ft[@]}" --method freeze --train-top 1 --out "$work/freeze" >"$work/freeze.out" 2>&1; then
  ok "freeze --train-top 1 trains"
else bad "freeze: $(tail -3 "$work/freeze.out")"; fi
for i in $(seq 1 30); do
  echo "{\"prompt\": \"Q: what is $i plus one?\nA:\", \"completion\": \" $((i + 1)).\"}"
done > "$work/sft.jsonl"
"$BIN/gpt-prepare" --task sft --format jsonl --input "$work/sft.jsonl" --tokenizer bytes --val-fraction 0.2 \
  --seq-len 32 --out "$work/sft" 2>/dev/null || die "prepare sft"
if "$BIN/gpt-finetune" --init "$base" --task sft --train-data "$work/sft/train_*.bin" --val-data "$work/sft/val_*.bin" \
     --batch-size 4 --seq-len 32 --device cpu --steps 3 --eval-every 3 --method full --lr 1e-3 \
     --out "$work/sft-run" >"$work/sft.out" 2>&1; then
  ok "SFT with masked prompts trains"
else bad "sft: $(tail -3 "$work/sft.out")"; fi

# ---- 4. generation and evaluation ----------------------------------------------------------------
if out=$("$BIN/gpt-generate" --model "$base" --prompt "the quick" --max-new-tokens 8 --device cpu --seed 1 2>&1) &&
   [[ -n $out ]]; then ok "gpt-generate samples from the llama checkpoint"
else bad "generate: $out"; fi
loss_of() {
  "$BIN/gpt-eval" --model "$1" --task lm --data "$work/data/val_*.bin" --seq-len 32 --device cpu \
    --out-json "$work/eval.json" >/dev/null 2>&1 &&
    python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["metrics"]["loss"])' "$work/eval.json"
}
a=$(loss_of "$base")
if [[ -n $a ]]; then ok "gpt-eval lm on the checkpoint: loss $a"; else bad "gpt-eval lm gave no loss"; fi

# ---- 5. export to Hugging Face and back ------------------------------------------------------------
if "$BIN/gpt-export" --checkpoint "$base" --format hf --out "$work/hf" 2>"$work/export.err" &&
   grep -q '"LlamaForCausalLM"' "$work/hf/config.json"; then
  b=$(loss_of "$work/hf")
  if [[ -n $b && $a == "$b" ]]; then ok "exported LlamaForCausalLM reads back to the same loss ($b)"
  else bad "loss after export $b, before $a"; fi
else bad "export: $(cat "$work/export.err")"; fi
expect_error "llm.c's format is refused" "has no llm.c format" \
  "$BIN/gpt-export" --checkpoint "$base" --format llmc --out "$work/x.bin"

finish
