#!/usr/bin/env bash
# Writes the fuzz targets' seed corpora (tests/fuzz/corpus/TARGET) from real files made by the
# apps: a byte-level and a BPE gpt-prepare run, a tiny gpt-pretrain checkpoint and its Hugging Face
# and llm.c exports, the project's configs, and small fine-tuning files in every format.
# Multi-file seeds use fuzz_common.h's archive format ("=== NAME" lines). Every seed is small; the
# whole corpus stays far under 2 MiB.  Usage: make_seeds.sh BIN_DIR [OUT_DIR]
set -euo pipefail
BIN=$1
SRC=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${2:-$SRC/tests/fuzz/corpus}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=1
pack() {  # pack OUT_FILE DIR NAME... : the named files of DIR as one archive
  local out=$1 dir=$2
  shift 2
  : >"$out"
  for n in "$@"; do printf '=== %s\n' "$n" >>"$out"; cat "$dir/$n" >>"$out"; printf '\n' >>"$out"; done
}
for t in safetensors shard checkpoint config tokenizer finetune_data llmc bpe_encode; do
  rm -rf "${OUT:?}/$t"; mkdir -p "$OUT/$t"
done

for i in $(seq 1 300); do echo "line $i: the quick brown fox, $((i * 31 % 97)) naïve cafés; 東京 <|endoftext|>"; done >"$work/text.txt"
"$BIN/gpt-prepare" --tokenizer bytes --input "$work/text.txt" --out "$work/bytes" 2>/dev/null
"$BIN/gpt-prepare" --train-tokenizer --vocab-size 300 --input "$work/text.txt" --out "$work/bpe" 2>/dev/null
"$BIN/gpt-pretrain" --train-data "$work/bytes/train_*.bin" --val-data "$work/bytes/val_*.bin" --device cpu \
  --n-layer 1 --n-head 1 --n-embd 8 --max-seq-len 8 --seq-len 8 --batch-size 2 --steps 2 --eval-every 2 \
  --warmup-steps 1 --threads 1 --out "$work/run" 2>/dev/null
"$BIN/gpt-export" --checkpoint "$work/run/latest" --format hf --out "$work/hf" 2>/dev/null
"$BIN/gpt-export" --checkpoint "$work/run/latest" --format llmc --out "$work/model.bin" 2>/dev/null
ck=$(cd "$work/run" && cat latest)

# safetensors: model, optimizer, the HF export
cp "$work/run/$ck/model.safetensors" "$OUT/safetensors/model.safetensors"
cp "$work/run/$ck/optimizer.safetensors" "$OUT/safetensors/optimizer.safetensors"
cp "$work/hf/model.safetensors" "$OUT/safetensors/hf.safetensors"
# shard: mode byte (bit 0 mask shard, bits 1-2 vocabulary) + the file
{ printf '\x02'; head -c 2048 "$(ls "$work/bytes"/train_*.bin | head -n 1)"; } >"$OUT/shard/u16_vocab256"
{ printf '\x04'; head -c 2048 "$(ls "$work/bpe"/train_*.bin | head -n 1)"; } >"$OUT/shard/u16_bpe"
# checkpoint: mode byte (bit 0: fix the checksums) + archive of the run folder / the HF folder
( cd "$work/run" && { printf '\x00'; pack /dev/stdout . latest "$ck/trainer_state.json" "$ck/model.safetensors" "$ck/optimizer.safetensors"; } ) >"$OUT/checkpoint/run"
( cd "$work/run" && { printf '\x01'; pack /dev/stdout . "$ck/trainer_state.json" "$ck/model.safetensors"; } ) >"$OUT/checkpoint/checkpoint_dir"
( cd "$work/hf" && { printf '\x00'; pack /dev/stdout . config.json model.safetensors; } ) >"$OUT/checkpoint/hf"
# config: the project's configs and what a run writes
for c in "$SRC"/configs/*.json; do cp "$c" "$OUT/config/$(basename "$c")"; done
cp "$work/run/config.json" "$OUT/config/run_config.json"
cp "$work/hf/config.json" "$OUT/config/hf_config.json"
# tokenizer: the three layouts of the trained BPE
tokdir=$work/bpe/tokenizer
pack "$OUT/tokenizer/tokenizer_json" "$tokdir" tokenizer.json
pack "$OUT/tokenizer/vocab_merges" "$tokdir" vocab.json merges.txt
# and the Hugging Face families' pipelines (Split regexes, NFC, Digits, a template)
for family in llama3 qwen2 smollm2; do
  pack "$OUT/tokenizer/hub_$family" "$SRC/tests/fixtures/hub/$family" tokenizer.json
done
cp "$tokdir/vocab.json" "$work/encoder.json"
{ echo "#version: 0.2"; grep -v '^#' "$tokdir/merges.txt"; } >"$work/vocab.bpe"
pack "$OUT/tokenizer/encoder_bpe" "$work" encoder.json vocab.bpe
# finetune_data: mode byte (bits 0-2 format: jsonl gsm8k seed-tasks dialogsum multi30k sst2 uci,
# bit 3 classify, bit 4 label words) + archive of the input files
f=$work/ft; mkdir -p "$f"
printf '{"prompt": "Translate: cat", "completion": " Katze"}\n{"prompt": "2+2=", "completion": " 4"}\n' >"$f/sft.jsonl"
printf '{"text": "a fine film", "label": 1}\n{"text": "dull and long", "label": 0}\n' >"$f/cls.jsonl"
printf '{"text": "a fine film", "label": "positive"}\n{"text": "dull", "label": "negative"}\n' >"$f/words.jsonl"
printf '{"question": "Tom has 3 apples and eats 1. How many are left?", "answer": "3 - 1 = <<3-1=2>>2\\n#### 2"}\n' >"$f/gsm8k.jsonl"
printf '{"id": "seed_task_0", "name": "x", "instruction": "Name a color.", "instances": [{"input": "", "output": "Blue."}], "is_classification": false}\n' >"$f/seed.jsonl"
printf '{"fname": "train_1", "dialogue": "#Person1#: Hi.\\n#Person2#: Hello.", "summary": "They greet.", "topic": "greeting"}\n' >"$f/dialogsum.jsonl"
printf 'A man rides a bike.\nTwo dogs play.\n' >"$f/data.en"; printf 'Ein Mann fährt Rad.\nZwei Hunde spielen.\n' >"$f/data.de"
printf 'sentence\tlabel\na fine film\t1\ndull and long\t0\n' >"$f/sst2.tsv"
printf 'Great phone, works well.\t1\nBattery died in a day.\t0\n' >"$f/uci.txt"
{ printf '\x00'; pack /dev/stdout "$f" sft.jsonl; } >"$OUT/finetune_data/jsonl_sft"
{ printf '\x08'; pack /dev/stdout "$f" cls.jsonl; } >"$OUT/finetune_data/jsonl_classify"
{ printf '\x18'; pack /dev/stdout "$f" words.jsonl; } >"$OUT/finetune_data/jsonl_label_words"
{ printf '\x01'; pack /dev/stdout "$f" gsm8k.jsonl; } >"$OUT/finetune_data/gsm8k"
{ printf '\x02'; pack /dev/stdout "$f" seed.jsonl; } >"$OUT/finetune_data/seed_tasks"
{ printf '\x03'; pack /dev/stdout "$f" dialogsum.jsonl; } >"$OUT/finetune_data/dialogsum"
{ printf '\x04'; pack /dev/stdout "$f" data.en data.de; } >"$OUT/finetune_data/multi30k"
{ printf '\x0d'; pack /dev/stdout "$f" sst2.tsv; } >"$OUT/finetune_data/sst2"
{ printf '\x0e'; pack /dev/stdout "$f" uci.txt; } >"$OUT/finetune_data/uci"
# llmc: the llm.c export (fp32, version 3)
cp "$work/model.bin" "$OUT/llmc/model.bin"
# bpe_encode: text with specials, invalid UTF-8, long runs
head -c 1500 "$work/text.txt" >"$OUT/bpe_encode/text"
printf 'ok \xff\xfe broken \xc3 utf-8 <|endoftext|><|endoftext|>    \n\n\t 123456789 ' >"$OUT/bpe_encode/odd_bytes"
printf '%0300d' 0 >"$OUT/bpe_encode/long_run"
du -sh "$OUT"
