#!/usr/bin/env bash
# Chat formats and conversation SFT on the hub-style fixtures (tests/fixtures/hub), as a user runs
# them (docs/data.md "Conversations", docs/models.md "Chat with it"):
#   1. gpt-prepare --task sft --format chat renders TRL-style conversations with the model's chat
#      template and masks all but the assistant turns; malformed conversations are refused naming
#      the line and the field;
#   2. gpt-finetune --task sft on them with full, --method lora and freeze: the training loss falls;
#   3. gpt-generate --chat [--system] --temperature 0 prints transformers' greedy completion
#      (tests/fixtures/chat_reference.json, written by tests/reference/make_chat_reference.py) for
#      each hub fixture, and stops at an end token of generation_config.json without printing it.
# Usage: chat.sh BIN_DIR
source "$(dirname "$0")/lib.sh"
BIN=$1
HUB=$(cd "$(dirname "$0")/../fixtures/hub" && pwd)
REF=$(cd "$(dirname "$0")/../fixtures" && pwd)/chat_reference.json
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=2

# ---- 1. conversations -> masked shards ---------------------------------------------------------
for i in $(seq 1 60); do
  if ((i % 3 == 0)); then
    echo "{\"messages\": [{\"role\": \"system\", \"content\": \"Count.\"}, {\"role\": \"user\", \"content\": \"After $i?\"}, {\"role\": \"assistant\", \"content\": \"$((i + 1))\"}, {\"role\": \"user\", \"content\": \"And then?\"}, {\"role\": \"assistant\", \"content\": \"$((i + 2))\"}]}"
  else
    echo "{\"messages\": [{\"role\": \"user\", \"content\": \"What is $i plus one?\"}, {\"role\": \"assistant\", \"content\": \"It is $((i + 1)).\"}]}"
  fi
done >"$work/chats.jsonl"
qwen=$HUB/qwen2
if "$BIN/gpt-prepare" --task sft --format chat --tokenizer "$qwen" --input "$work/chats.jsonl" --val-docs 8 \
     --out "$work/data" >"$work/prepare.out" 2>&1 &&
   grep -q '"chat_template": "chatml"' "$work/data/meta.json"; then
  ok "gpt-prepare --format chat: $(tail -1 "$work/prepare.out" | sed 's/^gpt-prepare: //')"
else die "prepare chat: $(tail -3 "$work/prepare.out")"; fi
# The trained tokens of the first example are exactly "It is 2.<|im_end|>".
trained=$(python3 - "$work/data" "$qwen" <<'PY'
import json, struct, sys
d, m = sys.argv[1], sys.argv[2]
raw = open(d + "/train_000000.bin", "rb").read()
n = struct.unpack("<256i", raw[:1024])[2]
width = (len(raw) - 1024) // n
toks = struct.unpack("<%d%s" % (n, "H" if width == 2 else "I"), raw[1024:1024 + width * n])
flags = open(d + "/train_000000.mask", "rb").read()[1024:1024 + n]
vocab = {v: k for k, v in json.load(open(m + "/tokenizer.json"))["model"]["vocab"].items()}
added = {t["id"]: t["content"] for t in json.load(open(m + "/tokenizer.json"))["added_tokens"]}
# GPT-2's byte-to-unicode table, inverted.
bs = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
cs, k = bs[:], 0
for b in range(256):
    if b not in bs:
        bs.append(b); cs.append(256 + k); k += 1
dec = {chr(c): b for b, c in zip(bs, cs)}
out, starts = b"", 0
for t, f in zip(toks, flags):
    if f & 2:
        starts += 1
        if starts == 2: break
    if f & 1:
        out += added[t].encode() if t in added else bytes(dec[c] for c in vocab[t])
print(out.decode())
PY
)
if [[ $trained == "It is 2.<|im_end|>" ]]; then ok "only the assistant turn and its <|im_end|> carry the loss"
else bad "trained tokens of example 0: '$trained'"; fi
printf '%s\n' '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}' \
  '{"messages": [{"role": "user", "content": "hi"}, {"role": "robot", "content": "yo"}]}' >"$work/bad.jsonl"
expect_error "an unknown role is refused naming line and field" "bad.jsonl:2: field 'messages\[1\].role': unknown role 'robot'" \
  "$BIN/gpt-prepare" --task sft --format chat --tokenizer "$qwen" --input "$work/bad.jsonl" --out "$work/bad"
printf '%s\n' '{"messages": [{"role": "user", "content": "hi"}]}' >"$work/bad2.jsonl"
expect_error "a conversation without an assistant turn is refused" "bad2.jsonl:1: the conversation has no assistant turn" \
  "$BIN/gpt-prepare" --task sft --format chat --tokenizer "$qwen" --input "$work/bad2.jsonl" --out "$work/bad"
expect_error "conversations need the model's template" "conversations need --tokenizer DIR" \
  "$BIN/gpt-prepare" --task sft --format chat --tokenizer bytes --input "$work/chats.jsonl" --out "$work/bad"

# ---- 2. SFT: full, LoRA, freeze -----------------------------------------------------------------
first_last() {  # mean training loss of a run's first and last 3 steps (log.jsonl)
  python3 -c 'import json,sys
t=[x["train_loss"] for x in map(json.loads, open(sys.argv[1])) if "train_loss" in x]
print("%.3f %.3f" % (sum(t[:3]) / 3, sum(t[-3:]) / 3))' "$1/log.jsonl"
}
ft=(--init "$qwen" --task sft --train-data "$work/data/train_*.bin" --val-data "$work/data/val_*.bin"
    --batch-size 8 --seq-len 64 --device cpu --steps 30 --warmup-steps 2 --eval-every 30)
for method in full lora freeze; do
  extra=()
  case $method in
    full) extra=(--lr 3e-3) ;;
    lora) extra=(--method lora --lora-targets q_proj,k_proj,v_proj,o_proj --lr 1e-2 --merge-lora true) ;;
    freeze) extra=(--method freeze --train-top 1 --lr 3e-3) ;;
  esac
  if "$BIN/gpt-finetune" "${ft[@]}" "${extra[@]}" --out "$work/ft-$method" >"$work/ft-$method.out" 2>&1 &&
     read -r a b < <(first_last "$work/ft-$method") &&
     python3 -c 'import sys; sys.exit(0 if float(sys.argv[2]) < 0.8 * float(sys.argv[1]) else 1)' "$a" "$b"; then
    ok "gpt-finetune --task sft ($method) on conversations: loss $a -> $b"
  else bad "sft $method: ${a:-?} -> ${b:-?}: $(tail -3 "$work/ft-$method.out")"; fi
done

# A LoRA checkpoint chats with its adapter: the same greedy ids as the merged weights
# (gpt-finetune --merge-lora), not the base model's.
chat_ids() {  # MODEL
  "$BIN/gpt-generate" --model "$1" --chat "What is 1 + 1?" --temperature 0 --max-new-tokens 12 \
    --tokenizer "$qwen" --device cpu --jsonl 2>>"$work/gen.err" |
    python3 -c 'import json,sys; print(json.loads(sys.stdin.readline())["ids"])'
}
lora_ids=$(chat_ids "$work/ft-lora/best")
merged_ids=$(chat_ids "$(ls -d "$work"/ft-lora/merged/ckpt_* | tail -1)")
base_ids=$(chat_ids "$qwen")
if [[ -n $lora_ids && $lora_ids == "$merged_ids" && $lora_ids != "$base_ids" ]]; then
  ok "gpt-generate on a LoRA checkpoint applies its adapter (= the merged weights, not the base)"
else bad "LoRA chat $lora_ids, merged $merged_ids, base $base_ids"; fi

# ---- 3. gpt-generate --chat == transformers' greedy completion ---------------------------------
for name in llama3 qwen2 qwen3 smollm2; do
  n=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["templates"][sys.argv[2]]["greedy"]))' "$REF" "$name")
  for ((k = 0; k < n; k++)); do
    args=$(python3 -c 'import json,sys
g=json.load(open(sys.argv[1]))["templates"][sys.argv[2]]["greedy"][int(sys.argv[3])]
print(json.dumps({"system": g["system"] or "", "user": g["user"], "ids": g["ids"]}))' "$REF" "$name" "$k")
    user=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["user"])' "$args")
    system=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["system"])' "$args")
    want=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["ids"])' "$args")
    sys_flag=()
    [[ -n $system ]] && sys_flag=(--system "$system")
    got=$("$BIN/gpt-generate" --model "$HUB/$name" --chat "$user" "${sys_flag[@]}" --temperature 0 \
            --max-new-tokens 24 --device cpu --jsonl 2>"$work/gen.err" |
          python3 -c 'import json,sys; print(json.loads(sys.stdin.readline())["ids"])')
    if [[ -n $got && $got == "$want" ]]; then ok "hub/$name chat $k: gpt-generate --chat prints transformers' greedy ids"
    else bad "hub/$name chat $k: got $got, transformers $want $(tail -1 "$work/gen.err")"; fi
  done
done
# Stopping: with the 4th greedy token of hub/qwen2's first chat made an end token, the completion is
# the 3 tokens before it.
cp -r "$HUB/qwen2" "$work/qwen2-stop"
python3 - "$work/qwen2-stop/generation_config.json" "$REF" <<'PY'
import json, sys
g = json.load(open(sys.argv[1]))
ids = json.load(open(sys.argv[2]))["templates"]["qwen2"]["greedy"][0]["ids"]
stop = next(t for t in ids if t not in ids[:3])
g["eos_token_id"] = [stop]
json.dump(g, open(sys.argv[1], "w"))
PY
got=$("$BIN/gpt-generate" --model "$work/qwen2-stop" --chat "What is 2 + 2?" --temperature 0 --max-new-tokens 24 \
        --device cpu --jsonl 2>/dev/null | python3 -c 'import json,sys; print(json.loads(sys.stdin.readline())["ids"])')
want=$(python3 -c 'import json,sys
ids=json.load(open(sys.argv[1]))["templates"]["qwen2"]["greedy"][0]["ids"]
stop=next(t for t in ids if t not in ids[:3]); print(ids[:ids.index(stop)])' "$REF")
if [[ $got == "$want" ]]; then ok "generation stops at generation_config.json's eos id and leaves it out"
else bad "stop: got $got, want $want"; fi
expect_error "--chat needs a template" "needs the model's chat template" \
  "$BIN/gpt-generate" --model "$HUB/qwen2" --tokenizer bytes --chat hi --device cpu

finish
