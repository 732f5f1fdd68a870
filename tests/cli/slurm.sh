#!/usr/bin/env bash
# Data parallel under a real Slurm (docs/distributed.md): scripts/slurm_local.sh brings up a
# one-node cluster (munged, slurmctld, slurmd from Debian's slurm-wlm), then
#   1. srun -n 2 --overcommit --mpi=pmix gpt-pretrain == mpirun -np 2 == one process, bit for bit;
#   2. sbatch scripts/slurm/pretrain.sbatch (the multi-node GPU script, its #SBATCH lines
#      overridden for 2 CPU ranks) gives the same bits;
#   3. a rank that fails under srun ends the step non-zero in bounded time, naming the rank.
# Exits 77 (skipped, with the reason) when the cluster cannot start here (not root, no packages,
# a daemon that does not come up) or mpirun is missing. Stops the daemons it started.
# Usage: slurm.sh BIN_DIR
source "$(dirname "$0")/lib.sh"
BIN=$(cd "$1" && pwd)
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=1
command -v mpirun >/dev/null || { echo "SKIP: no mpirun (apt install openmpi-bin)"; exit 77; }

dir=${SLURM_LOCAL_DIR:-/tmp/gpt-slurm}
started=0
state=$(bash "$ROOT/scripts/slurm_local.sh" status 2>/dev/null)
[[ $state == *"slurmctld: running"* ]] || started=1
bash "$ROOT/scripts/slurm_local.sh" start >"$work/start.log" 2>&1
rc=$?
if [[ $rc -eq 77 ]]; then
  echo "SKIP: a one-node Slurm cannot start on this machine:"; tail -5 "$work/start.log"; exit 77
elif [[ $rc -ne 0 ]]; then
  echo "FAIL scripts/slurm_local.sh start (rc $rc):"; tail -20 "$work/start.log"; exit 1
fi
at_exit() {
  if [[ $started -eq 1 ]]; then bash "$ROOT/scripts/slurm_local.sh" stop >/dev/null 2>&1; fi
}
# shellcheck disable=SC1091
source "$dir/env.sh"
echo "ok   one-node Slurm up: $(sinfo -h -o '%P %a %D %t %N' 2>/dev/null)"

fox_text 400 "$work/text.txt"
"$BIN/gpt-prepare" --tokenizer bytes --input "$work/text.txt" --out "$work/data" 2>/dev/null || die gpt-prepare
common=(--train-data "$work/data/train_*.bin" --val-data "$work/data/val_*.bin" --device cpu --n-layer 2
        --n-head 2 --n-embd 32 --max-seq-len 32 --seq-len 32 --batch-size 4 --total-batch-tokens 1024
        --warmup-steps 2 --lr 0.01 --eval-every 3 --val-max-batches 4 --steps 6 --threads 1)

"$BIN/gpt-pretrain" "${common[@]}" --out "$work/one" 2>"$work/one.err" || die "single run: $(tail -2 "$work/one.err")"
mpirun --oversubscribe --bind-to none -np 2 "$BIN/gpt-pretrain" "${common[@]}" --out "$work/mpi" 2>"$work/mpi.err" >/dev/null
timeout 300 srun -n 2 --overcommit --mpi=pmix --time=5 -J gpt-test "$BIN/gpt-pretrain" "${common[@]}" --out "$work/srun" \
  2>"$work/srun.err" >/dev/null
rc=$?
if [[ $rc -eq 0 ]] && grep -q '^ranks: 2 (mpi communicator, launched by slurm)' "$work/srun.err" &&
   same_run "$work/one" "$work/srun" && same_run "$work/mpi" "$work/srun"; then
  ok "srun -n 2 --mpi=pmix gpt-pretrain == mpirun -np 2 == one process (losses and weights, bit for bit)"
else
  bad "srun run (rc $rc): $(grep -m1 '^ranks' "$work/srun.err") $(tail -2 "$work/srun.err")"
  diff <(losses "$work/one/log.jsonl") <(losses "$work/srun/log.jsonl") | head -4
fi

# The sbatch script as docs/distributed.md shows it, sized down to 2 CPU ranks on one node.
( cd "$work" && GPT_BIN=$BIN timeout 300 sbatch --wait -N1 -n2 --ntasks-per-node=2 --gpus-per-node=0 \
    --cpus-per-task=1 --overcommit --time=5 -o "$work/batch.out" "$ROOT/scripts/slurm/pretrain.sbatch" \
    "${common[@]}" --out "$work/batch" >/dev/null )
rc=$?
if [[ $rc -eq 0 ]] && grep -q 'pretrain.sbatch: job [0-9]*: 2 ranks on 1 node' "$work/batch.out" && same_run "$work/one" "$work/batch"; then
  ok "sbatch scripts/slurm/pretrain.sbatch (2 ranks) == one process"
else bad "sbatch (rc $rc): $(tail -3 "$work/batch.out" 2>/dev/null)"; fi

start=$SECONDS
GPT_TEST_FAIL_RANK=1:2 timeout 120 srun -n 2 --overcommit --mpi=pmix --kill-on-bad-exit=1 --time=5 -J gpt-test-fail \
  "$BIN/gpt-pretrain" "${common[@]}" --steps 400 --out "$work/fail" 2>"$work/fail.err" >/dev/null
rc=$?
if [[ $rc -ne 0 && $rc -ne 124 ]] && grep -q 'error: rank 1 of 2: injected failure after step 2' "$work/fail.err"; then
  ok "a failing rank under srun ends the step in $((SECONDS - start)) s (rc $rc), naming rank 1"
else bad "failing rank under srun: rc $rc: $(tail -3 "$work/fail.err")"; fi

finish "all Slurm checks passed"
