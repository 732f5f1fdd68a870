#!/usr/bin/env bash
# The apps as a user meets them: bad input gives one line naming the problem and a non-zero exit.
# Usage: pretrain_errors.sh BIN_DIR
source "$(dirname "$0")/lib.sh"
BIN=$1

printf 'hello world, this is a tiny corpus for the error tests.\n%.0s' {1..40} >"$work/text.txt"
"$BIN/gpt-prepare" --tokenizer bytes --input "$work/text.txt" --out "$work/data" 2>/dev/null || die "gpt-prepare on a valid file"

common=(--train-data "$work/data/train_*.bin" --out "$work/run" --device cpu --n-layer 1 --n-head 1
        --n-embd 8 --max-seq-len 8 --seq-len 8 --batch-size 2 --steps 1)

echo '{"n_layer": 2, "n_heads": 4}' >"$work/unknown.json"
expect_error "unknown config key" "unknown key 'n_heads'" "$BIN/gpt-pretrain" --config "$work/unknown.json" "${common[@]}"
echo '{"n_layer": "two"}' >"$work/type.json"
expect_error "wrong config type" "key 'n_layer': expected an integer" "$BIN/gpt-pretrain" --config "$work/type.json" "${common[@]}"
echo '{"n_layer": 2,' >"$work/broken.json"
expect_error "malformed config" "malformed JSON" "$BIN/gpt-pretrain" --config "$work/broken.json" "${common[@]}"
expect_error "bad flag value" "expected a number" "$BIN/gpt-pretrain" "${common[@]}" --lr fast

# A shard with a bad magic, a truncated shard, and a vocabulary too small for the data.
cp "$work/data/train_000000.bin" "$work/bad_magic.bin"
printf '\x01\x02\x03\x04' | dd of="$work/bad_magic.bin" bs=1 seek=0 conv=notrunc 2>/dev/null
expect_error "bad magic" "bad_magic.bin: bad magic" "$BIN/gpt-pretrain" "${common[@]}" --train-data "$work/bad_magic.bin" --vocab-size 257
head -c 2000 "$work/data/train_000000.bin" >"$work/truncated.bin"
expect_error "truncated shard" "truncated.bin: size mismatch" "$BIN/gpt-pretrain" "${common[@]}" --train-data "$work/truncated.bin" --vocab-size 257
expect_error "vocab too small" "out of range for vocab_size 100" "$BIN/gpt-pretrain" "${common[@]}" --vocab-size 100
expect_error "no shards" "no files match" "$BIN/gpt-pretrain" "${common[@]}" --train-data "$work/none_*.bin" --vocab-size 257
expect_error "seq_len > max_seq_len" "exceeds max_seq_len" "$BIN/gpt-pretrain" "${common[@]}" --seq-len 16
expect_error "no meta.json and no vocab" "set --vocab-size" "$BIN/gpt-pretrain" "${common[@]}" --train-data "$work/bad_magic.bin"
expect_error "uneven total batch" "must be a multiple of batch_size" "$BIN/gpt-pretrain" "${common[@]}" --total-batch-tokens 20
expect_error "missing input" "nothing.txt: cannot open" "$BIN/gpt-prepare" --input "$work/nothing.txt" --out "$work/x"

# And a valid run succeeds and writes its outputs.
if "$BIN/gpt-pretrain" "${common[@]}" --val-data "$work/data/val_*.bin" 2>/dev/null &&
   [[ -s "$work/run/log.jsonl" && -s "$work/run/model.safetensors" && -s "$work/run/config.json" ]]; then
  ok "valid run writes log.jsonl, config.json, model.safetensors"
else
  bad "valid run"
fi
finish
