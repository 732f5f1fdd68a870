#!/usr/bin/env bash
# gpt-eval as docs/evaluation.md shows it, on a tiny model trained here for 3 steps: every task
# (lm, forgetting, classify by label words and by a class head, generate, choice) gives finite,
# consistent numbers and the same output twice; bad input gives one line and a non-zero exit.
# Usage: eval.sh BIN_DIR DATA_DIR   (exits 77 = skipped when DATA_DIR has no tinyshakespeare)
source "$(dirname "$0")/lib.sh"
BIN=$1
DATA=$2
FIXTURES=$(cd "$(dirname "$0")/../fixtures" && pwd)
if [[ ! -f $DATA/tinyshakespeare/input.txt || ! -f $DATA/gsm8k/test.jsonl ]]; then
  echo "skip: no $DATA/tinyshakespeare/input.txt or $DATA/gsm8k/test.jsonl"
  exit 77
fi
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}

# eval_twice NAME ARGS...: gpt-eval twice with the same arguments; stdout and --out-json must be
# identical. The first run's outputs stay in $work/NAME.txt and $work/NAME.json.
eval_twice() {
  local name=$1
  shift
  if ! "$BIN/gpt-eval" --device cpu "$@" --out-json "$work/$name.json" >"$work/$name.txt" 2>"$work/$name.err"; then
    bad "$name: $(tail -2 "$work/$name.err")"
    return
  fi
  "$BIN/gpt-eval" --device cpu "$@" --out-json "$work/$name.2.json" >"$work/$name.2.txt" 2>/dev/null
  # The JSON repeats the settings, --out-json included: that line differs by design.
  if cmp -s "$work/$name.txt" "$work/$name.2.txt" &&
     cmp -s <(grep -v '"out_json"' "$work/$name.json") <(grep -v '"out_json"' "$work/$name.2.json"); then
    ok "$name: runs, identical stdout and JSON twice"
  else
    bad "$name: two runs differ: $(diff "$work/$name.txt" "$work/$name.2.txt" | head -4)"
  fi
}

# json_number FILE KEY: the first number written as "KEY": <number> in FILE ("" when none).
json_number() {
  grep -m1 -o "\"$2\": [-0-9.eE+]*" "$1" | sed 's/.*: //'
}

# check NAME AWK_CONDITION: the condition (awk syntax over shell-substituted numbers) must hold.
check() {
  if awk "BEGIN { exit !($2) }" 2>/dev/null; then ok "$1"; else bad "$1 ($2)"; fi
}

# ---- a tiny byte-level model --------------------------------------------------------------------
head -c 30000 "$DATA/tinyshakespeare/input.txt" >"$work/ts.txt"
run "gpt-prepare a tiny byte-level data set" "$BIN/gpt-prepare" --input "$work/ts.txt" --out "$work/data"
run "gpt-pretrain a tiny model for 3 steps" \
  "$BIN/gpt-pretrain" --train-data "$work/data/train_*.bin" --val-data "$work/data/val_*.bin" \
  --out "$work/run" --device cpu --n-layer 1 --n-head 2 --n-embd 16 --seq-len 32 --max-seq-len 64 \
  --batch-size 4 --steps 3 --eval-every 100
M=$work/run

# ---- lm -------------------------------------------------------------------------------------------
eval_twice lm --model "$M" --task lm --data "$work/data/val_*.bin"
loss=$(json_number "$work/lm.json" loss)
ppl=$(json_number "$work/lm.json" perplexity)
bpb=$(json_number "$work/lm.json" bits_per_byte)
tokens=$(json_number "$work/lm.json" tokens)
check "lm: loss $loss is finite and positive" "\"$loss\" != \"\" && $loss > 0 && $loss < 100"
check "lm: perplexity $ppl = exp(loss)" "\"$ppl\" != \"\" && ($ppl - exp($loss))^2 < (1e-9 * $ppl)^2"
check "lm: bits per byte $bpb = loss / ln 2 (1 byte per token)" "\"$bpb\" != \"\" && ($bpb - $loss / log(2))^2 < 1e-18"
check "lm: $tokens tokens scored" "\"$tokens\" != \"\" && $tokens > 2000"
# The same windows as gpt-pretrain's validation (T = 32, B = 4) give its validation loss.
"$BIN/gpt-eval" --device cpu --model "$M" --task lm --data "$work/data/val_*.bin" --seq-len 32 --batch-size 4 \
  --out-json "$work/lm32.json" >/dev/null 2>&1
ours=$(json_number "$work/lm32.json" loss)
theirs=$(grep '"val_loss"' "$M/log.jsonl" | tail -1 | grep -o '"val_loss": *[-0-9.eE+]*' | sed 's/.*: *//')
check "lm --seq-len 32: $ours equals gpt-pretrain's validation loss $theirs" \
  "\"$ours\" != \"\" && \"$theirs\" != \"\" && ($ours - $theirs)^2 < (1e-6 * $theirs)^2"
eval_twice lm_max --model "$M" --task lm --data "$work/data/val_*.bin" --max-examples 5 --batch-size 2
check "lm --max-examples 5: 5 windows" "$(json_number "$work/lm_max.json" windows) == 5"

# ---- forgetting: the same model as base changes nothing ------------------------------------------
eval_twice forgetting --model "$M" --task lm --data "$work/data/val_*.bin" --forgetting --base "$M/latest"
diff_loss=$(json_number "$work/forgetting.json" loss_difference)
check "forgetting against itself: difference $diff_loss is exactly 0" "\"$diff_loss\" != \"\" && $diff_loss == 0"
grep -q '"relative_change": 0.0' "$work/forgetting.json" && ok "forgetting: relative change 0" ||
  bad "forgetting: relative change: $(grep relative_change "$work/forgetting.json")"

# ---- generate: GSM8K test questions (longer than the 64-token context: --truncate) ---------------
eval_twice gsm8k --model "$M" --task generate --format gsm8k --data "$DATA/gsm8k/test.jsonl" \
  --max-examples 3 --max-new-tokens 8 --truncate
check "generate gsm8k: 3 generations" "$(grep -c '"completion":' "$work/gsm8k.json") == 3"
closs=$(json_number "$work/gsm8k.json" completion_loss)
check "generate gsm8k: completion loss $closs is finite" "\"$closs\" != \"\" && $closs > 0 && $closs < 100"
grep -q '"format_rate"' "$work/gsm8k.json" && ok "generate gsm8k: GSM8K answer metrics reported" ||
  bad "generate gsm8k: no format_rate in the JSON"
grep -q 'GSM8K accuracy' "$work/gsm8k.txt" && ok "generate gsm8k: table on stdout" || bad "generate gsm8k: no table"
# Short prompts that fit; sampling with a seed is deterministic too.
cat >"$work/sft.jsonl" <<'EOF'
{"prompt": "Q: What is two plus two?\nA:", "completion": " four"}
{"prompt": "ROMEO:", "completion": " O, she doth teach the torches to burn bright!"}
{"instruction": "Say hello.", "output": "Hello there."}
EOF
eval_twice sampled --model "$M" --task generate --format jsonl --data "$work/sft.jsonl" \
  --max-new-tokens 12 --temperature 0.9 --top-k 50 --top-p 0.95 --seed 7
check "generate jsonl: 3 generations" "$(grep -c '"completion":' "$work/sampled.json") == 3"

# ---- choice: the tiny HellaSwag-style fixture ----------------------------------------------------
eval_twice choice --model "$M" --task choice --data "$FIXTURES/choice_tiny.jsonl" --batch-size 3
acc=$(json_number "$work/choice.json" accuracy)
check "choice: accuracy $acc in [0, 1] over 5 items" \
  "\"$acc\" != \"\" && $acc >= 0 && $acc <= 1 && $(json_number "$work/choice.json" items) == 5"
# The batch size does not change the decisions.
"$BIN/gpt-eval" --device cpu --model "$M" --task choice --data "$FIXTURES/choice_tiny.jsonl" --batch-size 1 \
  --out-json "$work/choice1.json" >/dev/null 2>&1
[[ $(grep -A2 '"prediction"' "$work/choice.json") == $(grep -A2 '"prediction"' "$work/choice1.json") ]] &&
  ok "choice: batch size 1 and 3 predict the same" || bad "choice: batch size changes the predictions"

# ---- classify by label words ---------------------------------------------------------------------
for i in $(seq 0 23); do
  if ((i % 2)); then t=("good film" "great fun" "loved it" "a delight"); else t=("bad film" "awful" "hated it" "a bore"); fi
  printf '{"text": "%s", "label": %d}\n' "${t[$((i / 2 % 4))]}" $((i % 2))
done >"$work/cls.jsonl"
run "gpt-prepare classify with label words" "$BIN/gpt-prepare" --task classify --format jsonl \
  --label-words negative,positive --input "$work/cls.jsonl" --out "$work/cls" --val-fraction 0.5
eval_twice classify_words --model "$M" --task classify --data "$work/cls/val_*.bin"
check "classify (label words): 12 examples" "$(json_number "$work/classify_words.json" examples) == 12"
grep -q '"mode": "label_words"' "$work/classify_words.json" && grep -q 'confusion matrix' "$work/classify_words.txt" &&
  ok "classify (label words): mode, confusion matrix" || bad "classify (label words): $(head -5 "$work/classify_words.txt")"
mkdir -p "$work/nometa" && cp "$work/cls/val_"* "$work/nometa/"
eval_twice classify_flag --model "$M" --task classify --data "$work/nometa/val_*.bin" --label-words negative,positive
cmp -s <(grep -A30 '"metrics"' "$work/classify_words.json") <(grep -A30 '"metrics"' "$work/classify_flag.json") &&
  ok "classify: --label-words gives what meta.json's label words give" || bad "classify: --label-words differs"

# ---- classify with a class head (needs gpt-finetune) ---------------------------------------------
run "gpt-prepare classify for a class head" "$BIN/gpt-prepare" --task classify --format jsonl \
  --input "$work/cls.jsonl" --out "$work/clsh" --val-fraction 0.5
if [[ -x $BIN/gpt-finetune ]]; then
  run "gpt-finetune a LoRA class head for 3 steps" "$BIN/gpt-finetune" --init "$M" --task classify \
    --method lora --train-data "$work/clsh/train_*.bin" --val-data "$work/clsh/val_*.bin" \
    --out "$work/ft" --steps 3 --batch-size 4 --device cpu
  eval_twice classify_head --model "$work/ft" --task classify --data "$work/clsh/val_*.bin"
  grep -q '"mode": "class_head"' "$work/classify_head.json" &&
    check "classify (class head): 12 examples" "$(json_number "$work/classify_head.json" examples) == 12" ||
    bad "classify (class head): mode"
  eval_twice forgetting_ft --model "$work/ft" --task lm --data "$work/data/val_*.bin" --base "$M"
  d=$(json_number "$work/forgetting_ft.json" loss_difference)
  check "forgetting of the fine-tuned model: difference $d is finite" "\"$d\" != \"\" && $d < 1 && $d > -1"
  expect_error "class-head model on label-word data" "holds label-word examples" \
    "$BIN/gpt-eval" --device cpu --model "$work/ft" --task classify --data "$work/cls/val_*.bin"
else
  echo "skip class head: no $BIN/gpt-finetune"
fi

# ---- bad input: one line, non-zero exit ----------------------------------------------------------
E=("$BIN/gpt-eval" --device cpu --model "$M" --out-json "$work/never.json")
expect_error "missing data" "nothing/val_\*.bin: no files match" "${E[@]}" --task lm --data "$work/nothing/val_*.bin"
mkdir -p "$work/v300" && cp "$work/data/val_"* "$work/v300/" &&
  sed 's/"vocab_size": 257/"vocab_size": 300/' "$work/data/meta.json" >"$work/v300/meta.json"
expect_error "data vocab differs from the model's" "the data's vocab_size 300 does not match the model's vocab_size 257" \
  "${E[@]}" --task lm --data "$work/v300/val_*.bin"
expect_error "classify without class head or label words" "without a class head and without label words" \
  "${E[@]}" --task classify --data "$work/nometa/val_*.bin"
expect_error "class-head data, model without a class head" "has no class head" \
  "${E[@]}" --task classify --data "$work/clsh/val_*.bin"
expect_error "prompt longer than the context" "test.jsonl:1: prompt of [0-9]* tokens does not fit the context of 64" \
  "${E[@]}" --task generate --format gsm8k --data "$DATA/gsm8k/test.jsonl" --max-examples 3
printf '%s\n' '{"ctx": "A", "endings": ["b", "c"], "label": 1}' '{"ctx": "A", "endings": ["b", "c"], "label": 5}' >"$work/bad.jsonl"
expect_error "choice label out of range" "bad.jsonl:2: field 'label'" "${E[@]}" --task choice --data "$work/bad.jsonl"
printf '%s\n' '{"ctx": "A", "endings": "b"}' >"$work/bad2.jsonl"
expect_error "choice endings not a list" "bad2.jsonl:1: field 'endings'" "${E[@]}" --task choice --data "$work/bad2.jsonl"
expect_error "unknown task" "expected one of lm, classify, generate, choice" "${E[@]}" --task translate --data x
expect_error "seq-len beyond the context" "exceeds the context" "${E[@]}" --task lm --data "$work/data/val_*.bin" --seq-len 128
expect_error "forgetting without a base" "needs --base" "${E[@]}" --task lm --data "$work/data/val_*.bin" --forgetting
expect_error "missing model" "nothing: " "$BIN/gpt-eval" --device cpu --model "$work/nothing" --task lm --data "$work/data/val_*.bin"
expect_error "generate without --format" "needs --format" "${E[@]}" --task generate --data "$work/sft.jsonl"
[[ ! -e $work/never.json ]] || bad "an error left a JSON file"

# ---- --help documents every flag -----------------------------------------------------------------
help=$("$BIN/gpt-eval" --help)
missing=""
for f in model adapter tokenizer task data format out-json device dtype batch-size seq-len max-examples \
         label-words max-new-tokens temperature top-k top-p seed truncate forgetting base threads show-examples; do
  grep -q -- "--$f " <<<"$help" || missing+=" --$f"
done
[[ -z $missing ]] && ok "--help lists every flag" || bad "--help lacks$missing"

finish
