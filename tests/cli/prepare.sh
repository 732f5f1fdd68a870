#!/usr/bin/env bash
# gpt-prepare as docs/data.md shows it, on the shared data sets: a trained tokenizer on
# tinyshakespeare that gpt-pretrain then trains on, identical output for 1 and 2 threads, SST-2 for
# classification, GSM8K for instruction tuning, and one-line errors naming file and line.
# Usage: prepare.sh BIN_DIR DATA_DIR   (exits 77 = skipped when DATA_DIR has no tinyshakespeare)
source "$(dirname "$0")/lib.sh"
BIN=$1
DATA=$2
if [[ ! -f $DATA/tinyshakespeare/input.txt ]]; then
  echo "skip: no $DATA/tinyshakespeare/input.txt"
  exit 77
fi
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
export GPT_TOKENIZER_DIR=$DATA/gpt2

# ---- pretraining with a trained tokenizer, then 5 steps of gpt-pretrain on it ----------------------
run "prepare tinyshakespeare, --train-tokenizer --vocab-size 4096" \
  "$BIN/gpt-prepare" --train-tokenizer --vocab-size 4096 --input "$DATA/tinyshakespeare/input.txt" --out "$work/ts"
if grep -q '"vocab_size": 4096' "$work/ts/meta.json" && grep -q '"val_bytes"' "$work/ts/meta.json" &&
   [[ -s $work/ts/tokenizer/vocab.json && -s $work/ts/tokenizer/merges.txt && -s $work/ts/tokenizer/tokenizer.json ]]; then
  ok "meta.json and tokenizer/ written"
else
  bad "meta.json or tokenizer/ missing: $(cat "$work/ts/meta.json" 2>&1 | head -5)"
fi
run "gpt-pretrain trains 5 steps on the BPE shards" \
  "$BIN/gpt-pretrain" --train-data "$work/ts/train_*.bin" --val-data "$work/ts/val_*.bin" --out "$work/run" \
  --device cpu --n-layer 2 --n-head 2 --n-embd 32 --seq-len 64 --max-seq-len 64 --batch-size 4 --steps 5
if [[ $(grep -c '"step"' "$work/run/log.jsonl" 2>/dev/null) -ge 5 ]] && grep -q '"val_bpb"' "$work/run/log.jsonl"; then
  ok "log.jsonl has 5 steps and bits per byte"
else
  bad "log.jsonl: $(tail -2 "$work/run/log.jsonl" 2>&1)"
fi

# ---- the same output for 1 and 2 threads -------------------------------------------------------------
for t in 1 2; do
  "$BIN/gpt-prepare" --tokenizer gpt2 --input "$DATA/tinyshakespeare/input.txt" --out "$work/threads$t" \
    --threads "$t" --shard-tokens 100000 2>/dev/null || bad "gpt-prepare --threads $t"
done
if diff -r "$work/threads1" "$work/threads2" >/dev/null; then ok "1 and 2 threads: identical files"; else bad "1 and 2 threads differ"; fi

# ---- fine-tuning data sets ------------------------------------------------------------------------
run "prepare SST-2 for classification" \
  "$BIN/gpt-prepare" --task classify --format sst2 --label-words negative,positive --tokenizer gpt2 \
  --input "$DATA/sst2/dev.tsv" --out "$work/sst2"
run "prepare GSM8K for instruction tuning" \
  "$BIN/gpt-prepare" --task sft --format gsm8k --tokenizer gpt2 --input "$DATA/gsm8k/test.jsonl" \
  --out "$work/gsm8k" --seq-len 1024
for d in sst2 gsm8k; do
  if [[ -s $work/$d/train_000000.bin && -s $work/$d/train_000000.mask && -s $work/$d/val_000000.mask &&
        -s $work/$d/tokenizer/tokenizer.json ]]; then
    ok "$d: token shards, mask shards and tokenizer/"
  else
    bad "$d: outputs missing: $(ls "$work/$d" 2>&1)"
  fi
done

# ---- errors: one line naming the file and the line, nothing written --------------------------------
head -3 "$DATA/gsm8k/test.jsonl" >"$work/bad.jsonl"
echo '{"question": "How many?", "answer": ' >>"$work/bad.jsonl"
expect_error "malformed JSONL" "bad.jsonl:4: malformed JSON" \
  "$BIN/gpt-prepare" --task sft --format gsm8k --input "$work/bad.jsonl" --out "$work/bad"
printf 'label\tsentence\n1\tfine\n7\twhat\n' >"$work/bad.tsv"
expect_error "label outside the label set" "bad.tsv:3: label '7' is not in the label set" \
  "$BIN/gpt-prepare" --task classify --format sst2 --label-words negative,positive --input "$work/bad.tsv" --out "$work/bad"
echo '{"question": "q", "answer": 42}' >"$work/type.jsonl"
expect_error "wrong JSON type" "type.jsonl:1: field 'answer': expected a string" \
  "$BIN/gpt-prepare" --task sft --format gsm8k --input "$work/type.jsonl" --out "$work/bad"
expect_error "missing input" "nothing.txt: cannot open" "$BIN/gpt-prepare" --input "$work/nothing.txt" --out "$work/bad"
expect_error "unknown format" "not a fine-tuning format" \
  "$BIN/gpt-prepare" --task sft --format csv --input "$work/bad.tsv" --out "$work/bad"
if [[ -e $work/bad ]]; then bad "a failed prepare wrote $work/bad"; else ok "failed runs wrote nothing"; fi

if "$BIN/gpt-prepare" --help | grep -q -- "--label-words"; then ok "--help"; else bad "--help"; fi
finish
