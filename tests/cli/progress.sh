#!/usr/bin/env bash
# The progress line as a person sees it (engine/progress.h): gpt-pretrain, gpt-finetune, gpt-prepare
# and gpt-eval run on a real terminal (a detached tmux pane) and the screen is read back with
# capture-pane: one step line redrawn in place (no line per step), validations as lines of their
# own above it, nothing wider than the pane (also a narrow one), the final state left on screen;
# and off a terminal, plain lines every --log-every steps. Skips (77) without tmux.
# Usage: progress.sh BIN_DIR
source "$(dirname "$0")/lib.sh"
BIN=$(cd "$1" && pwd)
command -v tmux >/dev/null || { echo "skip: tmux not installed (scripts/setup.sh installs it)"; exit 77; }
sock="gpt-progress-$$"
at_exit() { tmux -L "$sock" kill-server 2>/dev/null; }
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=2

# on_terminal NAME WIDTH COMMAND...: runs COMMAND in a WIDTH-column pane, waits for it, and leaves
# the screen (with its scroll-back) in $work/NAME.screen and the exit status in $work/NAME.rc.
on_terminal() {
  local name=$1 width=$2; shift 2
  printf '%q ' "$@" >"$work/$name.cmd"
  tmux -L "$sock" kill-server 2>/dev/null
  tmux -L "$sock" -f /dev/null new-session -d -x "$width" -y 40 \
    "bash -c '$(cat "$work/$name.cmd") >$work/$name.stdout; echo \$? >$work/$name.rc; sleep 600'"
  tmux -L "$sock" set-option -g history-limit 5000 >/dev/null
  for _ in $(seq 1 600); do [[ -s $work/$name.rc ]] && break; sleep 0.2; done
  sleep 0.3
  tmux -L "$sock" capture-pane -p -S -5000 -t 0 | sed -e 's/[[:space:]]*$//' | sed -e '/./,$!d' >"$work/$name.screen"
  tmux -L "$sock" kill-server 2>/dev/null
  [[ -s $work/$name.rc ]] || echo timeout >"$work/$name.rc"
}
widest() { awk '{ if (length($0) > w) w = length($0) } END { print w + 0 }' "$1"; }

fox_text 400 "$work/text.txt"

# 1. gpt-prepare: one "tokenizing" line, finished at 100%.
on_terminal prepare 100 "$BIN/gpt-prepare" --tokenizer bytes --input "$work/text.txt" --out "$work/data"
n=$(grep -c 'tokenizing' "$work/prepare.screen")
if [[ $(cat "$work/prepare.rc") == 0 && $n == 1 ]] && grep -q 'tokenizing 100.0%' "$work/prepare.screen"; then
  ok "gpt-prepare on a terminal: $(grep tokenizing "$work/prepare.screen")"
else
  bad "gpt-prepare on a terminal (rc $(cat "$work/prepare.rc"), $n tokenizing lines):"; cat "$work/prepare.screen"
fi

common=(--train-data "$work/data/train_*.bin" --val-data "$work/data/val_*.bin" --device cpu --n-layer 2
        --n-head 2 --n-embd 32 --max-seq-len 32 --seq-len 32 --batch-size 4 --warmup-steps 2 --lr 0.01)
# 2. gpt-pretrain, 30 steps, validation every 10: on a 120-column terminal one step line, the four
# validation lines (steps 0, 10, 20, 30) above it, the done line below.
on_terminal pretrain 120 "$BIN/gpt-pretrain" "${common[@]}" --steps 30 --eval-every 10 --out "$work/run"
steps=$(grep -cE '^step +[0-9]+/30 \| loss' "$work/pretrain.screen")
vals=$(grep -cE '^step +[0-9]+/30 \| val loss' "$work/pretrain.screen")
line=$(grep -E '^step +[0-9]+/30 \| loss' "$work/pretrain.screen")
if [[ $(cat "$work/pretrain.rc") == 0 && $steps == 1 && $vals == 4 && $line == "step    30/30 "* && $line == *"| val "*" @ 30"* ]] &&
   grep -q '^done: 30 steps' "$work/pretrain.screen" && (($(widest "$work/pretrain.screen") <= 120)); then
  ok "gpt-pretrain on a terminal: one step line ($line), $vals validation lines"
else
  bad "gpt-pretrain on a terminal (rc $(cat "$work/pretrain.rc"), $steps step lines, $vals validation lines):"
  cat "$work/pretrain.screen"
fi
# log.jsonl still has every step.
[[ $(grep -c '"train_loss"' "$work/run/log.jsonl") == 30 ]] && ok "log.jsonl has all 30 steps" || bad "log.jsonl: $(grep -c train_loss "$work/run/log.jsonl") steps"

# 3. a 50-column terminal: the line is cut, never wrapped (a wrapped line could not be redrawn).
on_terminal narrow 50 "$BIN/gpt-pretrain" "${common[@]}" --steps 12 --eval-every 0 --out "$work/narrow"
steps=$(grep -cE '^step +[0-9]+/12 \| loss' "$work/narrow.screen")
if [[ $(cat "$work/narrow.rc") == 0 && $steps == 1 ]] && ! grep -qE '^(lr|norm|[0-9. ]+tok/s)' "$work/narrow.screen"; then
  ok "50 columns: one step line, cut to $(grep -E '^step +[0-9]+/12 \| loss' "$work/narrow.screen" | awk '{ print length($0) }') columns"
else
  bad "50 columns ($steps step lines):"; cat "$work/narrow.screen"
fi

# 4. gpt-finetune (LoRA, continued pretraining) shares the line; its own messages stay above it.
on_terminal finetune 120 "$BIN/gpt-finetune" --init "$work/run" --task lm --method lora --steps 12 --eval-every 6 \
  --train-data "$work/data/train_*.bin" --val-data "$work/data/val_*.bin" --seq-len 32 --batch-size 4 \
  --out "$work/ft" --device cpu
steps=$(grep -cE '^step +[0-9]+/12 \| loss' "$work/finetune.screen")
if [[ $(cat "$work/finetune.rc") == 0 && $steps == 1 ]] && grep -q '^done: 12 steps' "$work/finetune.screen"; then
  ok "gpt-finetune on a terminal: one step line"
else
  bad "gpt-finetune on a terminal (rc $(cat "$work/finetune.rc"), $steps step lines):"; cat "$work/finetune.screen"
fi

# 5. gpt-eval: one progress line, finished.
on_terminal eval 120 "$BIN/gpt-eval" --model "$work/run" --task lm --data "$work/data/val_*.bin" --device cpu --batch-size 1
n=$(grep -c '^gpt-eval: lm ' "$work/eval.screen")
if [[ $(cat "$work/eval.rc") == 0 && $n == 1 ]] && grep -q '(100%)' "$work/eval.screen"; then
  ok "gpt-eval on a terminal: $(grep '^gpt-eval: lm ' "$work/eval.screen")"
else
  bad "gpt-eval on a terminal (rc $(cat "$work/eval.rc"), $n progress lines):"; cat "$work/eval.screen"
fi

# 6. off a terminal: plain lines for the first step, every --log-every steps and the last.
"$BIN/gpt-pretrain" "${common[@]}" --steps 12 --eval-every 0 --log-every 5 --out "$work/plain" 2>"$work/plain.log"
got=$(grep -oE '^step +[0-9]+/12 \| loss' "$work/plain.log" | grep -oE '[0-9]+/' | tr -d '/' | tr '\n' ' ')
[[ $got == "1 5 10 12 " ]] && ok "plain, --log-every 5: steps $got" || bad "plain, --log-every 5: steps '$got'"
grep -q $'\r' "$work/plain.log" && bad "plain output holds a carriage return" || ok "plain output has no carriage return"
# --progress line forced into a file: redraws with \r, one line per redraw at most.
"$BIN/gpt-pretrain" "${common[@]}" --steps 5 --eval-every 0 --progress line --out "$work/forced" 2>"$work/forced.log"
grep -q $'\r' "$work/forced.log" && ok "--progress line redraws with a carriage return" || bad "--progress line: no redraw"

# 7. a bad value is refused, naming the flag.
err=$("$BIN/gpt-pretrain" "${common[@]}" --steps 1 --progress bar --out "$work/bad" 2>&1 >/dev/null)
[[ $err == *"--progress 'bar'"* ]] && ok "refused: $err" || bad "--progress bar: '$err'"
err=$("$BIN/gpt-pretrain" "${common[@]}" --steps 1 --log-every 0 --out "$work/bad" 2>&1 >/dev/null)
[[ $err == *"--log-every"* ]] && ok "refused: $err" || bad "--log-every 0: '$err'"

finish
