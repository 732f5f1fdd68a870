#!/usr/bin/env bash
# slurm_local.sh - a real one-node Slurm cluster on this machine, for the distributed tests.
#
#   scripts/slurm_local.sh start   install slurm-wlm + munge + OpenMPI (Debian packages, idempotent),
#                                  start munged (unless one already answers), write
#                                  $DIR/slurm.conf, start slurmctld and slurmd, wait until the
#                                  node is idle. Prints `export SLURM_CONF=...` and writes
#                                  $DIR/env.sh with everything srun/OpenMPI need.
#   scripts/slurm_local.sh check   compile an MPI hello-world into $DIR and run
#                                  `srun -n 2 --overcommit --mpi=pmix $DIR/hello`; verifies that
#                                  ranks 0 and 1 both see size 2.
#   scripts/slurm_local.sh stop    cancel jobs, stop the daemons this script started (pid files in
#                                  $DIR), leave nothing running.
#   scripts/slurm_local.sh status  show what is running.
#
# DIR is ${SLURM_LOCAL_DIR:-/tmp/gpt-slurm}; the conf, state, spool, logs and pid files live there.
# Tests use it like this:
#
#   scripts/slurm_local.sh start; rc=$?; [ $rc -eq 77 ] && skip    # 77: a daemon could not start
#   source "${SLURM_LOCAL_DIR:-/tmp/gpt-slurm}/env.sh"
#   srun -n 4 --overcommit --mpi=pmix build/tests/some_mpi_test
#   scripts/slurm_local.sh stop
#
# Exit status: 0 success; 77 the cluster cannot be brought up here (not root, packages cannot be
# installed, a daemon does not start or the node never becomes idle: callers treat 77 as "skip");
# anything else is a real failure. Every wait is bounded.
#
# Notes: `--mpi=pmi2` does not work with Debian's OpenMPI here; `--mpi=pmix` does (Slurm's
# mpi_pmix plugin dlopens /usr/lib/x86_64-linux-gnu/pmix2/lib/libpmix.so, hence libpmix-dev).
# Running MPI as root needs OMPI_ALLOW_RUN_AS_ROOT{,_CONFIRM}=1 (in env.sh). Node topology comes
# from the config (SlurmdParameters=config_overrides), so a container's odd CPU view is harmless.
# Environment knobs: SLURM_LOCAL_DIR, SLURM_LOCAL_CPUS (default nproc), SLURM_LOCAL_CTLD_PORT
# (6817), SLURM_LOCAL_SLURMD_PORT (6818), SLURM_LOCAL_NO_INSTALL=1 (never call apt-get).
set -euo pipefail

DIR=${SLURM_LOCAL_DIR:-/tmp/gpt-slurm}
CONF="$DIR/slurm.conf"
NODE=$(hostname -s)
# nproc alone would honour OMP_NUM_THREADS (a test that sets it to 1 would get a 1-CPU node).
CPUS=${SLURM_LOCAL_CPUS:-$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)}
CTLD_PORT=${SLURM_LOCAL_CTLD_PORT:-6817}
SLURMD_PORT=${SLURM_LOCAL_SLURMD_PORT:-6818}
PKGS=(slurm-wlm munge libpmix2 libpmix-dev openmpi-bin libopenmpi-dev)
MUNGE_SOCKET=/run/munge/munge.socket.2
MUNGE_KEY=/etc/munge/munge.key
export SLURM_CONF="$CONF"

say() { echo "slurm_local.sh: $*" >&2; }
die() { say "error: $*"; exit 1; }
STARTING=0
skip() {
    say "skip: $*"
    if [ "$STARTING" = 1 ]; then
        # Leave nothing half-started behind: callers that skip will not call `stop`.
        STARTING=0
        say "stopping what was started"
        cmd_stop >/dev/null 2>&1 || true
    fi
    exit 77
}

# Print the last lines of a log file (indented) to stderr.
log_tail() {
    if [ -s "$1" ]; then
        say "--- tail of $1 ---"
        tail -n 25 "$1" | sed 's/^/    /' >&2
    else
        say "($1 is empty or missing)"
    fi
}

# pid from a pid file if that process is alive (and, given $2, its comm matches), else nothing.
live_pid() {
    local f=$1 want=${2:-} pid comm
    [ -s "$f" ] || return 1
    pid=$(tr -dc '0-9' <"$f")
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
    if [ -n "$want" ]; then
        comm=$(cat "/proc/$pid/comm" 2>/dev/null || true)
        [ "$comm" = "$want" ] || return 1
    fi
    echo "$pid"
}

# wait_for SECONDS CMD...: retry CMD every 0.5 s until it succeeds or SECONDS have passed.
wait_for() {
    local end=$((SECONDS + $1))
    shift
    while :; do
        "$@" >/dev/null 2>&1 && return 0
        [ "$SECONDS" -ge "$end" ] && return 1
        sleep 0.5
    done
}

install_packages() {
    local missing=() p
    for p in "${PKGS[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    [ "${SLURM_LOCAL_NO_INSTALL:-0}" = 1 ] && skip "missing packages (${missing[*]}) and SLURM_LOCAL_NO_INSTALL=1"
    command -v apt-get >/dev/null || skip "missing packages (${missing[*]}) and no apt-get"
    say "installing ${missing[*]}"
    mkdir -p "$DIR/log"
    local log="$DIR/log/apt.log"
    export DEBIAN_FRONTEND=noninteractive
    if ! timeout 600 apt-get install -y --no-install-recommends -q "${missing[@]}" >"$log" 2>&1; then
        timeout 300 apt-get update -q >>"$log" 2>&1 || true
        if ! timeout 600 apt-get install -y --no-install-recommends -q "${missing[@]}" >>"$log" 2>&1; then
            log_tail "$log"
            skip "apt-get install ${missing[*]} failed"
        fi
    fi
}

munge_works() { timeout 5 munge -n -S "$MUNGE_SOCKET" </dev/null 2>/dev/null | timeout 5 unmunge -S "$MUNGE_SOCKET" >/dev/null 2>&1; }

start_munge() {
    if munge_works; then
        say "munged already answers on $MUNGE_SOCKET"
        return 0
    fi
    if [ ! -s "$MUNGE_KEY" ]; then
        say "creating $MUNGE_KEY"
        mkdir -p "$(dirname "$MUNGE_KEY")"
        if command -v mungekey >/dev/null; then
            mungekey --create --keyfile="$MUNGE_KEY" --force
        else
            dd if=/dev/urandom of="$MUNGE_KEY" bs=1024 count=1 status=none
        fi
    fi
    chown munge:munge "$(dirname "$MUNGE_KEY")" "$MUNGE_KEY"
    chmod 0700 "$(dirname "$MUNGE_KEY")"
    chmod 0400 "$MUNGE_KEY"
    install -d -o munge -g munge -m 0755 /run/munge
    install -d -o munge -g munge -m 0700 /var/lib/munge /var/log/munge
    # munged's log and pid file live in $DIR/munge (owned by munge, it refuses group/world writable).
    install -d -o munge -g munge -m 0700 "$DIR/munge"
    rm -f "$DIR/munge/munged.pid" "$DIR/munge/munged.log"
    local log="$DIR/munge/munged.log" out="$DIR/log/munged.stdout"
    if ! timeout 20 runuser -u munge -- /usr/sbin/munged --force --socket="$MUNGE_SOCKET" \
        --key-file="$MUNGE_KEY" --log-file="$log" --pid-file="$DIR/munge/munged.pid" >>"$out" 2>&1; then
        log_tail "$out"
        log_tail "$log"
        skip "munged failed to start"
    fi
    if ! wait_for 10 munge_works; then
        log_tail "$log"
        skip "munged started but does not answer on $MUNGE_SOCKET"
    fi
    # Remember that we own this munged, so `stop` stops it (and only it).
    cp "$DIR/munge/munged.pid" "$DIR/run/munged.pid"
    say "munged started (pid $(cat "$DIR/run/munged.pid"))"
}

write_conf() {
    local mem
    mem=$(awk '/^MemTotal:/ {print int($2 / 1024 / 2)}' /proc/meminfo)
    [ "$mem" -gt 1024 ] && mem=1024
    [ "$mem" -lt 100 ] && mem=100
    cat >"$CONF.new" <<EOF
# Written by scripts/slurm_local.sh: a one-node cluster for the distributed tests.
ClusterName=gpt-local
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SwitchType=switch/none
MpiDefault=none
SlurmdParameters=config_overrides
ReturnToService=2
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
SlurmctldTimeout=30
SlurmdTimeout=30
MessageTimeout=10
InactiveLimit=0
KillWait=5
MinJobAge=30
Waittime=0
NodeName=$NODE NodeAddr=127.0.0.1 NodeHostname=$NODE CPUs=$CPUS Boards=1 SocketsPerBoard=1 CoresPerSocket=$CPUS ThreadsPerCore=1 RealMemory=$mem State=UNKNOWN
PartitionName=local Nodes=$NODE Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:64
EOF
    if [ -f "$CONF" ] && cmp -s "$CONF" "$CONF.new"; then
        rm -f "$CONF.new"
        return 1 # unchanged
    fi
    mv "$CONF.new" "$CONF"
    return 0
}

write_env() {
    cat >"$DIR/env.sh" <<EOF
# Written by scripts/slurm_local.sh: source this to use the local Slurm cluster.
export SLURM_CONF=$CONF
# mpirun refuses root without these; harmless under srun.
export OMPI_ALLOW_RUN_AS_ROOT=1
export OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# Not needed where this was tested (Debian 12, gVisor container, no network, OpenMPI 4.1.4,
# PMIx 4.2.2, Slurm 22.05): srun --mpi=pmix worked with none of these, including 16 MiB
# allreduce/send over vader. Uncomment if a machine's PMIx/OpenMPI transports misbehave.
# export PMIX_MCA_gds=hash
# export PMIX_MCA_psec=native
# export OMPI_MCA_btl=self,vader
# export OMPI_MCA_btl_vader_single_copy_mechanism=none
EOF
}

node_idle() {
    local st
    st=$(timeout 3 sinfo -h -n "$NODE" -o '%t' 2>/dev/null) || return 1
    case "$st" in idle* | mix* | alloc*) return 0 ;; *) return 1 ;; esac
}

ctld_up() { timeout 3 scontrol ping 2>/dev/null | grep -q 'is UP'; }

# wait_ready SECONDS NAME PIDFILE CHECK: wait until CHECK succeeds; give up early if NAME dies.
wait_ready() {
    local end=$((SECONDS + $1)) name=$2 pidf=$3
    shift 3
    while :; do
        "$@" >/dev/null 2>&1 && return 0
        live_pid "$pidf" "$name" >/dev/null || { say "$name has exited"; return 1; }
        [ "$SECONDS" -ge "$end" ] && return 1
        sleep 0.5
    done
}

start_daemon() { # start_daemon NAME PIDFILE LOG CMD...
    local name=$1 pidf=$2 log=$3
    shift 3
    if live_pid "$pidf" "$name" >/dev/null; then
        say "$name already running (pid $(live_pid "$pidf"))"
        return 0
    fi
    rm -f "$pidf"
    if ! timeout 30 "$@" >>"$DIR/log/$name.stdout" 2>&1; then
        log_tail "$DIR/log/$name.stdout"
        log_tail "$log"
        skip "$name failed to start"
    fi
    if ! wait_for 10 live_pid "$pidf" "$name"; then
        log_tail "$DIR/log/$name.stdout"
        log_tail "$log"
        skip "$name exited right after starting"
    fi
    say "$name started (pid $(live_pid "$pidf"))"
}

stop_pidfile() { # stop_pidfile NAME PIDFILE: TERM, wait up to 10 s, then KILL.
    local name=$1 pidf=$2 pid
    pid=$(live_pid "$pidf" "$name") || {
        rm -f "$pidf"
        return 0
    }
    kill -TERM "$pid" 2>/dev/null || true
    if ! wait_for 10 bash -c "! kill -0 $pid"; then
        say "$name (pid $pid) ignored SIGTERM, killing it"
        kill -KILL "$pid" 2>/dev/null || true
        wait_for 5 bash -c "! kill -0 $pid" || say "warning: $name (pid $pid) is still alive"
    fi
    rm -f "$pidf"
    say "stopped $name (pid $pid)"
}

# slurmstepd processes of this cluster: they inherit SLURM_CONF=$CONF from our slurmd.
our_stepds() {
    local p
    for p in /proc/[0-9]*; do
        [ "$(cat "$p/comm" 2>/dev/null)" = slurmstepd ] || continue
        tr '\0' '\n' <"$p/environ" 2>/dev/null | grep -qxF "SLURM_CONF=$CONF" && echo "${p#/proc/}"
    done
    return 0
}

cmd_start() {
    [ "$(id -u)" = 0 ] || skip "must run as root (SlurmUser=root)"
    local t0=$SECONDS
    STARTING=1
    mkdir -p "$DIR"/{state,spool,log,run}
    chmod 0755 "$DIR"
    install_packages
    start_munge
    if write_conf; then
        # A new or changed config: restart whatever of ours is running so it takes effect.
        if live_pid "$DIR/run/slurmctld.pid" slurmctld >/dev/null || live_pid "$DIR/run/slurmd.pid" slurmd >/dev/null; then
            say "slurm.conf changed, restarting the daemons"
            stop_pidfile slurmd "$DIR/run/slurmd.pid"
            stop_pidfile slurmctld "$DIR/run/slurmctld.pid"
        fi
    fi
    write_env
    start_daemon slurmctld "$DIR/run/slurmctld.pid" "$DIR/log/slurmctld.log" /usr/sbin/slurmctld -c -f "$CONF"
    if ! wait_ready 20 slurmctld "$DIR/run/slurmctld.pid" ctld_up; then
        log_tail "$DIR/log/slurmctld.log"
        skip "slurmctld did not come up (no 'scontrol ping' answer within 20 s)"
    fi
    start_daemon slurmd "$DIR/run/slurmd.pid" "$DIR/log/slurmd.log" /usr/sbin/slurmd -f "$CONF" -N "$NODE"
    if ! wait_ready 30 slurmd "$DIR/run/slurmd.pid" node_idle; then
        timeout 5 sinfo -N -l >&2 || true
        timeout 5 scontrol show node "$NODE" >&2 || true
        log_tail "$DIR/log/slurmd.log"
        log_tail "$DIR/log/slurmctld.log"
        skip "node $NODE did not become idle within 30 s"
    fi
    STARTING=0
    say "cluster up in $((SECONDS - t0)) s: node $NODE, $CPUS CPUs, partition local"
    timeout 5 sinfo >&2 || true
    say "to use it: source $DIR/env.sh"
    echo "export SLURM_CONF=$CONF"
}

cmd_stop() {
    local pid n sig
    if live_pid "$DIR/run/slurmctld.pid" slurmctld >/dev/null; then
        timeout 10 scancel --quiet --partition=local --full 2>/dev/null || true
        timeout 10 scancel --quiet --partition=local 2>/dev/null || true
        wait_for 10 bash -c "[ -z \"\$(timeout 5 squeue -h -o %i 2>/dev/null)\" ]" || say "warning: jobs still queued"
    fi
    stop_pidfile slurmd "$DIR/run/slurmd.pid"
    # Step daemons whose job outlived scancel.
    for n in 1 2 3 4 5 6 7 8 9 10; do
        pid=$(our_stepds)
        [ -z "$pid" ] && break
        [ "$n" = 1 ] && say "terminating leftover slurmstepd: $pid"
        sig=TERM
        [ "$n" -ge 6 ] && sig=KILL
        # shellcheck disable=SC2086 # $pid is a list of numbers
        kill -"$sig" $pid 2>/dev/null || true
        sleep 1
    done
    stop_pidfile slurmctld "$DIR/run/slurmctld.pid"
    if live_pid "$DIR/run/munged.pid" munged >/dev/null; then
        stop_pidfile munged "$DIR/run/munged.pid"
    else
        rm -f "$DIR/run/munged.pid"
    fi
    say "stopped"
}

cmd_status() {
    local name f pid
    for name in munged slurmctld slurmd; do
        f="$DIR/run/$name.pid"
        if pid=$(live_pid "$f" "$name"); then echo "$name: running (pid $pid)"; else echo "$name: not running (by this script)"; fi
    done
    if [ -f "$CONF" ]; then timeout 5 sinfo 2>/dev/null || true; fi
}

cmd_check() {
    [ -f "$DIR/env.sh" ] || die "no $DIR/env.sh: run '$0 start' first"
    # shellcheck disable=SC1091
    source "$DIR/env.sh"
    live_pid "$DIR/run/slurmctld.pid" slurmctld >/dev/null || die "slurmctld is not running: run '$0 start' first"
    command -v mpicc >/dev/null || die "mpicc not found (apt-get install libopenmpi-dev)"
    cat >"$DIR/hello.c" <<'EOF'
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
int main(int argc, char** argv) {
    MPI_Init(&argc, &argv);
    int rank = -1, size = -1, sum = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    MPI_Allreduce(&rank, &sum, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    const char* procid = getenv("SLURM_PROCID");
    printf("hello rank=%d size=%d SLURM_PROCID=%s allreduce_sum=%d\n", rank, size, procid ? procid : "unset", sum);
    MPI_Finalize();
    return 0;
}
EOF
    timeout 120 mpicc -O1 -o "$DIR/hello" "$DIR/hello.c" || die "mpicc failed"
    local out rc=0 t0=$SECONDS
    out=$(timeout 90 srun -n 2 --overcommit --mpi=pmix --time=2 -J slurm_local_check "$DIR/hello" 2>&1) || rc=$?
    printf '%s\n' "$out"
    [ "$rc" = 0 ] || die "srun --mpi=pmix exited with $rc$([ "$rc" = 124 ] && echo ' (timed out after 90 s)')"
    local r
    for r in 0 1; do
        printf '%s\n' "$out" | grep -qx "hello rank=$r size=2 SLURM_PROCID=$r allreduce_sum=1" ||
            die "rank $r did not report size 2 (SLURM_PROCID=$r, allreduce sum 1)"
    done
    [ "$(printf '%s\n' "$out" | grep -c '^hello ')" = 2 ] || die "expected exactly 2 hello lines"
    say "check passed: srun -n 2 --mpi=pmix ran ranks 0 and 1 of size 2 in $((SECONDS - t0)) s"
}

case "${1:-}" in
start) cmd_start ;;
stop) cmd_stop ;;
check) cmd_check ;;
status) cmd_status ;;
restart) cmd_stop; cmd_start ;;
*)
    echo "usage: $0 start|check|stop|status|restart   (state in \${SLURM_LOCAL_DIR:-/tmp/gpt-slurm})" >&2
    exit 2
    ;;
esac
