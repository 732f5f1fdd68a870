#!/usr/bin/env bash
# Data parallel as a user launches it (docs/distributed.md), with real OpenMPI ranks on the CPU:
#   1. mpirun -np 1/2/3/4 gpt-pretrain == one process at the same global batch, bit for bit
#      (log.jsonl without timing and traffic fields, and the final weights);
#   2. gpt-finetune classify with LoRA and with full fine-tuning at 2 and 4 ranks == one process;
#   3. ZeRO-1: each rank holds 1/N of the optimizer state (the shard files and the printed layout);
#   4. resume at 2 ranks from a 4-rank checkpoint, and at 1 rank from a 3-rank one == continuing at
#      the original size (gpt-pretrain; gpt-finetune LoRA 4 -> 2);
#   5. SIGTERM to mpirun: every rank stops after the same step, one complete checkpoint, which
#      resumes on 2 ranks to the uninterrupted run's bits;
#   6. a rank killed with -9, a rank that throws, a rank that hangs (--dist-timeout): the job ends
#      non-zero in bounded time with a message naming the rank.
# Exits 77 (skipped) when mpirun or the MPI build is missing.
# Usage: distributed.sh BIN_DIR
source "$(dirname "$0")/lib.sh"
BIN=$1
if ! command -v mpirun >/dev/null; then echo "SKIP: no mpirun (apt install openmpi-bin)"; exit 77; fi
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=1
# OpenMPI refuses root unless told; CI containers run as root.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

fox_text 400 "$work/text.txt"
"$BIN/gpt-prepare" --tokenizer bytes --input "$work/text.txt" --out "$work/data" 2>/dev/null || die gpt-prepare

# 12 micro-batches of 4x32 per step: divisible by 1, 2, 3 and 4 ranks.
common=(--train-data "$work/data/train_*.bin" --val-data "$work/data/val_*.bin" --device cpu --n-layer 2
        --n-head 2 --n-embd 32 --max-seq-len 32 --seq-len 32 --batch-size 4 --total-batch-tokens 1536
        --warmup-steps 2 --lr 0.01 --eval-every 3 --val-max-batches 6 --threads 1)
mpi() { # mpi N ARGS...: run ARGS on N ranks
  local n=$1; shift
  mpirun --oversubscribe --bind-to none -np "$n" "$@"
}
if ! mpi 1 "$BIN/gpt-pretrain" --help 2>&1 | grep -q -- "--dist"; then
  echo "SKIP: mpirun cannot start gpt-pretrain here"; exit 77
fi
why() { diff <(losses "$1/log.jsonl") <(losses "$2/log.jsonl") | head -4; }

# ---- 1. pretrain at 1-4 ranks == one process -------------------------------------------------------
"$BIN/gpt-pretrain" "${common[@]}" --steps 6 --out "$work/p1" 2>"$work/p1.err" || die "single run: $(tail -2 "$work/p1.err")"
for n in 1 2 3 4; do
  if mpi "$n" "$BIN/gpt-pretrain" "${common[@]}" --steps 6 --out "$work/pn$n" 2>"$work/pn$n.err" >/dev/null &&
     same_run "$work/p1" "$work/pn$n"; then
    ok "pretrain: mpirun -np $n gives one process's losses and weights bit for bit"
  else bad "pretrain at $n ranks differs: $(tail -2 "$work/pn$n.err")"; why "$work/p1" "$work/pn$n"; fi
done
if grep -q '^ranks: 4 (mpi communicator, launched by openmpi)' "$work/pn4.err" &&
   [[ $(grep -c '"train_loss"' "$work/pn4/log.jsonl") -eq 6 ]] &&
   [[ $(grep -c 'step ' "$work/pn4.err") -ge 6 && $(grep -c '^step *1 ' "$work/pn4.err") -le 1 ]]; then
  ok "4 ranks: one log, printed once, naming the communicator and the launcher"
else bad "4-rank output: $(grep -m2 'ranks\|step' "$work/pn4.err")"; fi
if grep -q '"comm_bytes":[1-9]' "$work/pn4/log.jsonl" && ! grep -q '"comm_bytes"' "$work/p1/log.jsonl"; then
  ok "log.jsonl records the bytes each step moved (only when there are several ranks)"
else bad "comm_bytes in log.jsonl"; fi

# ---- 3. ZeRO-1: 1/N of the optimizer state per rank ------------------------------------------------
mpi 4 "$BIN/gpt-pretrain" "${common[@]}" --steps 2 --save-every 2 --out "$work/z4" 2>"$work/z4.err" >/dev/null
line=$(grep -m1 '^ranks: 4' "$work/z4.err")
if [[ $line =~ ZeRO-1:\ optimizer\ state\ [0-9.]+\ MiB\ on\ rank\ 0\ \(([0-9]+)\ of\ ([0-9]+)\ trainable ]]; then
  shard=${BASH_REMATCH[1]} total=${BASH_REMATCH[2]}
  # The shard is ceil(P/N) rounded up to the norm block (2048 elements), the last one padded.
  if (( shard * 4 >= total && shard < total / 4 + 2048 )); then ok "ZeRO-1: each of 4 ranks keeps $shard of $total elements"
  else bad "ZeRO-1 shard $shard of $total is not 1/4"; fi
else bad "no ZeRO-1 layout line: $line"; fi
ck=$work/z4/ckpt_000002
# Shard file r holds m and v for elements [r*S, min((r+1)*S, P)): the padding of the last is not stored.
if python3 - "$ck" <<'PY'
import json, struct, sys, glob
ck = sys.argv[1]
files = sorted(glob.glob(ck + "/optimizer-*-of-00004.safetensors"))
o = json.load(open(ck + "/trainer_state.json"))["optimizer"]
counts = []
for f in files:
    with open(f, "rb") as h:
        n = struct.unpack("<Q", h.read(8))[0]
        head = json.loads(h.read(n))
    total = 0
    for k, t in head.items():
        if k == "__metadata__": continue
        c = 1
        for d in t["shape"]: c *= d
        total += c
    counts.append(total)
S, P = o["shard_elements"], o["flat_elements"]
want = [2 * max(0, min(S, P - r * S)) for r in range(4)]
ok = len(files) == 4 and counts == want and o["world_size"] == 4 and o["zero"] == 1 and 4 * S >= P > 3 * S
if not ok: print("optimizer shards hold", counts, "elements, expected", want)
sys.exit(0 if ok else 1)
PY
then
  [[ -f $ck/optimizer.safetensors ]] && bad "a 4-rank checkpoint also has optimizer.safetensors"
  ok "a 4-rank checkpoint holds the model once and 4 optimizer shards of 1/4 each, with their layout"
else bad "4-rank checkpoint layout: $(ls "$ck")"; fi
mpi 2 "$BIN/gpt-pretrain" "${common[@]}" --steps 2 --zero 0 --out "$work/nz" 2>"$work/nz.err" >/dev/null
if same_run "$work/z4" "$work/nz" && grep -q 'no ZeRO' "$work/nz.err"; then ok "--zero 0 (every rank keeps all the state) gives the same bits"
else bad "--zero 0 differs: $(tail -2 "$work/nz.err")"; fi

# ---- 2. finetune: LoRA and full, classify, at 2 and 4 ranks ----------------------------------------
"$BIN/gpt-pretrain" "${common[@]}" --steps 3 --out "$work/base" 2>/dev/null
for i in $(seq 1 48); do
  echo "{\"text\": \"a good film, number $i of them\", \"label\": 1}"; echo "{\"text\": \"bad film $i\", \"label\": 0}"
done >"$work/cls.jsonl"
"$BIN/gpt-prepare" --task classify --format jsonl --tokenizer bytes --input "$work/cls.jsonl" --val-fraction 0.25 \
  --seq-len 32 --out "$work/cls" 2>/dev/null || bad "prepare classify"
ft=(--init "$work/base" --task classify --train-data "$work/cls/train_*.bin" --val-data "$work/cls/val_*.bin"
    --batch-size 4 --seq-len 32 --total-batch-tokens 512 --device cpu --threads 1 --eval-every 2 --steps 4
    --group-by-length true --replay-data "$work/data/train_*.bin" --replay-ratio 0.25)
for method in lora full; do
  "$BIN/gpt-finetune" "${ft[@]}" --method "$method" --lr 3e-3 --out "$work/ft-$method-1" 2>"$work/ft1.err" || bad "finetune $method: $(tail -2 "$work/ft1.err")"
  for n in 2 4; do
    d=$work/ft-$method-$n
    if mpi "$n" "$BIN/gpt-finetune" "${ft[@]}" --method "$method" --lr 3e-3 --out "$d" 2>"$d.err" >/dev/null &&
       diff <(losses "$work/ft-$method-1/log.jsonl") <(losses "$d/log.jsonl") >/dev/null &&
       for f in adapter.safetensors model.safetensors; do
         [[ ! -f $work/ft-$method-1/$f ]] || cmp -s "$work/ft-$method-1/$f" "$d/$f" || exit 1
       done; then
      ok "finetune classify ($method, replay, grouped by length): $n ranks == one process bit for bit"
    else bad "finetune $method at $n ranks differs: $(tail -2 "$d.err")"; why "$work/ft-$method-1" "$d"; fi
  done
done

# ---- 4. resume at another world size == continuing at the original one ------------------------------
for pair in "4 2" "3 1"; do
  read -r from to <<<"$pair"
  mpi "$from" "$BIN/gpt-pretrain" "${common[@]}" --steps 8 --save-every 4 --out "$work/r$from" 2>/dev/null >/dev/null
  cp -r "$work/r$from" "$work/r$from-$to"
  rm -rf "$work/r$from-$to/ckpt_000008" "$work/r$from-$to/model.safetensors"
  if [[ $to -eq 1 ]]; then launch=(); else launch=(mpirun --oversubscribe --bind-to none -np "$to"); fi
  if "${launch[@]}" "$BIN/gpt-pretrain" --resume "$work/r$from-$to/ckpt_000004" --out "$work/r$from-$to" --threads 1 \
       2>"$work/r$from-$to.err" >/dev/null && same_run "$work/r$from" "$work/r$from-$to"; then
    ok "a $from-rank checkpoint resumed on $to rank(s): the next losses and the weights equal $from ranks continuing"
  else bad "resume $from -> $to differs: $(tail -2 "$work/r$from-$to.err")"; why "$work/r$from" "$work/r$from-$to"; fi
done

# gpt-finetune too: a 4-rank LoRA checkpoint (classify, replay, grouped) resumed on 2 ranks.
mpi 4 "$BIN/gpt-finetune" "${ft[@]}" --method lora --lr 3e-3 --save-every 2 --keep-last 0 --out "$work/fr4" 2>/dev/null >/dev/null
cp -r "$work/fr4" "$work/fr4-2"
rm -rf "$work/fr4-2/ckpt_000004" "$work/fr4-2/adapter.safetensors"
cp "$work/fr4-2/ckpt_000002/adapter.safetensors" "$work/fr4-2/"
printf 'ckpt_000002' >"$work/fr4-2/latest"
printf 'ckpt_000002' >"$work/fr4-2/best"
if mpi 2 "$BIN/gpt-finetune" --resume latest --out "$work/fr4-2" --threads 1 2>"$work/fr4-2.err" >/dev/null &&
   diff <(losses "$work/fr4/log.jsonl") <(losses "$work/fr4-2/log.jsonl") >/dev/null &&
   cmp -s "$work/fr4/ckpt_000004/adapter.safetensors" "$work/fr4-2/ckpt_000004/adapter.safetensors"; then
  ok "gpt-finetune: a 4-rank LoRA checkpoint resumed on 2 ranks == 4 ranks continuing"
else bad "finetune resume 4 -> 2: $(tail -2 "$work/fr4-2.err")"; why "$work/fr4" "$work/fr4-2"; fi

# ---- 5. SIGTERM to the launcher --------------------------------------------------------------------
# A flat learning rate after warmup, so that a run of 400 steps and one of s+2 steps agree up to s+2.
flat=(--min-lr 0.01 --eval-every 0 --save-every 0)
long=("${common[@]}" --steps 400 "${flat[@]}")
mpirun --oversubscribe --bind-to none -np 4 "$BIN/gpt-pretrain" "${long[@]}" --out "$work/sig" 2>"$work/sig.err" >/dev/null &
pid=$!
wait_for_log "$work/sig/log.jsonl" 4 $pid . 6000
kill -TERM $pid
wait $pid
stopped=$(sed -nE 's/.*SIGTERM: stopped after step ([0-9]+).*/\1/p' "$work/sig.err" | sort -u)
ckpts=$(ls -d "$work"/sig/ckpt_* 2>/dev/null | wc -l)
if [[ $(echo "$stopped" | grep -c .) -eq 1 && $ckpts -eq 1 && -f $work/sig/ckpt_$(printf %06d "$stopped")/model.safetensors ]]; then
  ok "SIGTERM: every rank stopped after step $stopped, one complete checkpoint"
  s=$stopped
  mpi 4 "$BIN/gpt-pretrain" "${common[@]}" --steps $((s + 2)) "${flat[@]}" --out "$work/sig-ref" 2>/dev/null >/dev/null
  if mpi 2 "$BIN/gpt-pretrain" --resume latest --steps $((s + 2)) --out "$work/sig" --threads 1 2>"$work/sig2.err" >/dev/null &&
     same_run "$work/sig-ref" "$work/sig"; then
    ok "the 4-rank SIGTERM checkpoint resumes on 2 ranks to the uninterrupted run's bits"
  else bad "SIGTERM resume on 2 ranks: $(tail -2 "$work/sig2.err")"; why "$work/sig-ref" "$work/sig"; fi
else bad "SIGTERM: stopped at '$stopped', $ckpts checkpoints: $(tail -3 "$work/sig.err")"; fi

# ---- 6. faults end the job in bounded time, naming the rank ---------------------------------------
bounded() { # bounded SECONDS CMD...: run, fail if it takes longer
  timeout -k 5 "$1" "${@:2}"
}
start=$SECONDS
GPT_TEST_FAIL_RANK=1:3 bounded 120 mpirun --oversubscribe --bind-to none -np 3 -x GPT_TEST_FAIL_RANK \
  "$BIN/gpt-pretrain" "${long[@]}" --out "$work/throw" 2>"$work/throw.err" >/dev/null
rc=$?
if [[ $rc -ne 0 && $rc -ne 124 ]] && grep -q "error: rank 1 of 3: injected failure" "$work/throw.err"; then
  ok "a rank that throws at step 3 ends the job (rc $rc, $((SECONDS - start)) s): $(grep -m1 'rank 1 of 3' "$work/throw.err" | cut -c1-90)"
else bad "throwing rank: rc $rc: $(tail -3 "$work/throw.err")"; fi

# signal_a_rank NAME RANKS SIGNAL ARGS...: start NAME on RANKS ranks, send SIGNAL to one rank after
# 3 steps, wait (60 s at most) for the job to end; sets rc and took (seconds), or rc=timeout.
signal_a_rank() {
  local name=$1 n=$2 sig=$3
  shift 3
  mpirun --oversubscribe --bind-to none -np "$n" "$BIN/gpt-pretrain" "${long[@]}" "$@" --out "$work/$name" \
    2>"$work/$name.err" >/dev/null &
  local pid=$! victim _ t0
  wait_for_log "$work/$name/log.jsonl" 3 $pid . 6000
  victim=$(pgrep -f -- "--out $work/$name" | grep -v "^$pid\$" | while read -r p; do
    [[ $(ps -o comm= -p "$p") == gpt-pretrain ]] && echo "$p"; done | tail -n 1)
  t0=$SECONDS
  kill "-$sig" "$victim"
  for _ in $(seq 1 600); do kill -0 $pid 2>/dev/null || break; sleep 0.1; done
  took=$((SECONDS - t0))
  if kill -0 $pid 2>/dev/null; then
    rc=timeout
    pkill -9 -f -- "--out $work/$name"
  else
    wait $pid
    rc=$?
  fi
  pkill -9 -f -- "--out $work/$name" 2>/dev/null
}

signal_a_rank kill 3 KILL
if [[ $rc == timeout ]]; then bad "kill -9 of a rank: the job still runs after 60 s"
elif [[ $rc -ne 0 ]] && grep -qE "rank [0-9]+.*(signal 9|Killed)" "$work/kill.err"; then
  ok "kill -9 of one rank ends the job in $took s (rc $rc): $(grep -m1 -E 'signal 9|Killed' "$work/kill.err" | sed 's/^ *//' | cut -c1-90)"
else bad "kill -9: rc $rc: $(tail -4 "$work/kill.err")"; fi

signal_a_rank hang 2 STOP --dist-timeout 5
if [[ $rc == timeout ]]; then bad "a hung rank: the job still runs after 60 s"
elif [[ $rc -ne 0 ]] && grep -qE "rank [0-9]: error: collective '[a-z_]+' has waited 5 s" "$work/hang.err"; then
  ok "a hung rank: the watchdog ends the job in $took s (rc $rc): $(grep -m1 'has waited' "$work/hang.err" | cut -c1-90)"
else bad "hung rank: rc $rc: $(tail -3 "$work/hang.err")"; fi


finish "all distributed checks passed"
