#!/usr/bin/env bash
# gpt-pretrain --device cuda --dist nccl as a user runs it, in the emulated build (GPT_CUDA_EMU),
# against the fake libnccl (tests/fake_nccl): NCCL's init, every collective and the finalize answer
# ncclInProgress several times. The run must
#   1. train 2 steps and exit 0 (the communicator polls instead of dying on ncclInProgress);
#   2. match a --dist single run on the same emulated GPU bit for bit (log.jsonl without timings,
#      and the final weights): one rank through NCCL's reduce-scatter and all-gather changes nothing;
#   3. enqueue its reduce-scatters and all-gathers on one stream that is neither the legacy default
#      stream nor the one the host collectives use (the backend's), as the fake's log records.
# Usage: pretrain_nccl.sh BIN_DIR
source "$(dirname "$0")/../cli/lib.sh"
BIN=$1
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
# One schedule per launch is enough here: the kernels' schedules are the kernel tests' business.
export GPT_CUDA_EMU_SCHEDULES=${GPT_CUDA_EMU_SCHEDULES:-index:lockstep:issue:1}

fox_text 200 "$work/text.txt"
"$BIN/gpt-prepare" --tokenizer bytes --input "$work/text.txt" --out "$work/data" 2>/dev/null || die gpt-prepare

common=(--train-data "$work/data/train_*.bin" --val-data "$work/data/val_*.bin" --device cuda
        --n-layer 1 --n-head 2 --n-embd 32 --max-seq-len 16 --seq-len 16 --batch-size 2
        --total-batch-tokens 64 --warmup-steps 1 --lr 0.01 --steps 2 --eval-every 2
        --val-max-batches 1 --progress plain)

if ! "$BIN/gpt-pretrain" "${common[@]}" --dist single --out "$work/single" 2>"$work/single.err" >/dev/null; then
  die "--dist single on the emulated GPU: $(tail -3 "$work/single.err")"
fi

export GPT_FAKE_NCCL_IN_PROGRESS=3 GPT_FAKE_NCCL_LOG=$work/nccl.log
if "$BIN/gpt-pretrain" "${common[@]}" --dist nccl --out "$work/nccl" 2>"$work/nccl.err" >/dev/null &&
   [[ $(grep -c '"train_loss"' "$work/nccl/log.jsonl") -eq 2 ]]; then
  ok "--dist nccl trains 2 steps while NCCL answers ncclInProgress"
else bad "--dist nccl: $(tail -3 "$work/nccl.err")"; fi
if grep -q '^ranks: 1 (nccl communicator' "$work/nccl.err"; then ok "the run names the nccl communicator"
else bad "no 'ranks: 1 (nccl communicator' line: $(grep -m1 '^ranks' "$work/nccl.err")"; fi

if grep -q '^ncclCommInitRankConfig blocking=0' "$work/nccl.log" &&
   grep -q '^ncclCommInitRankConfig answered ncclInProgress' "$work/nccl.log" &&
   grep -q '^ncclCommFinalize answered ncclInProgress' "$work/nccl.log" &&
   grep -q '^reduce_scatter .* -> NCCL operation in progress' "$work/nccl.log" &&
   grep -q '^all_gather .* -> NCCL operation in progress' "$work/nccl.log" &&
   [[ $(grep -c '^ncclCommGetAsyncError answered ncclInProgress' "$work/nccl.log") -ge 6 ]] &&
   ! grep -q '^error' "$work/nccl.log"; then
  ok "init, collectives and finalize answered ncclInProgress and were polled through, no misuse"
else bad "the fake's log: $(grep -m3 'error\|Init' "$work/nccl.log")"; fi

if same_run "$work/single" "$work/nccl"; then
  ok "--dist nccl gives --dist single's losses and weights bit for bit"
else bad "--dist nccl differs from --dist single:"; diff <(losses "$work/single/log.jsonl") <(losses "$work/nccl/log.jsonl") | head -4; fi

stream_of() { grep -E "^($1) stream=" "$work/nccl.log" | sed -E 's/.* stream=([^ ]+) .*/\1/' | sort -u; }
data=$(stream_of 'reduce_scatter|all_gather')
host=$(stream_of 'all_reduce|broadcast')
if [[ -n $data && $(wc -l <<<"$data") -eq 1 && $data != "(nil)" && $data != 0x0 && -n $host &&
      $data != "$host" ]]; then
  ok "reduce-scatter and all-gather ran on one stream of their own ($data; host collectives: $host)"
else bad "data-path streams '$data', host streams '$host'"; fi

finish "all fake-NCCL pretrain checks passed"
