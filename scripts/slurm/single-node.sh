#!/usr/bin/env bash
# A throw-away single-node Slurm cluster on this machine, to run an MPI program
# through `srun` the way a cluster would.
#
#   scripts/slurm/single-node.sh [options] [-- COMMAND [ARGS...]]
#
# As root on Debian 12: installs what is missing (slurmd, slurmctld,
# slurm-client, munge, Open MPI), writes a minimal slurm.conf in a temporary
# directory, starts munged, slurmctld and slurmd from there (state, spool, logs
# and sockets stay in that directory), waits for the node to be idle, runs
# COMMAND as `srun -n N --mpi=PLUGIN COMMAND`, then stops every daemon it
# started, by pid, and removes the directory, whether the run succeeded or not.
# Nothing is written under /etc or /var, and no system service is started.
#
# Without COMMAND it builds and runs examples/cluster_map.rs (`cargo build
# --release --features mpi`, or --debug; see docs/cluster.md) and checks that every worker
# rank served; `--hello` runs hello.c (beside this script, built with mpicc)
# instead, which needs no Rust. Takes about 2 s here once the example is built.
#
# Options:
#   -n N            ranks (default 3)
#   --mpi PLUGIN    srun's MPI plugin: pmix (default) or pmi2; `srun --mpi=list`
#                   shows what this Slurm has (Debian 12: none, pmi2, pmix,
#                   pmix_v4, cray_shasta)
#   --hello         run the C hello program (hello.c) instead of the example
#   --debug         build and run the example's debug build (target/debug),
#                   which a CI run has already built
#   --direct        run COMMAND itself, not through srun, with SLURM_CONF set
#                   to this cluster: `--direct -- sbatch --wait job.sbatch`
#   --check         for CI: also run a plain `srun hostname`, check that every
#                   rank answered and that every daemon is gone afterwards;
#                   quiet unless something fails (then the logs are printed)
#   --timeout SECS  limit for the whole run of COMMAND (default 300)
#   --no-install    fail instead of installing missing packages
#   --keep          keep the temporary directory (logs) after the run
set -euo pipefail

# The daemons live in sbin, which a non-login root shell may lack.
export PATH=$PATH:/usr/sbin:/sbin
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)

ranks=3
plugin=pmix
hello=0
check=0
timeout_s=300
install=1
keep=0
profile=release
direct=0
command=()
while [ $# -gt 0 ]; do
    case "$1" in
        -n) ranks=${2:?-n needs a number}; shift 2 ;;
        --mpi) plugin=${2:?--mpi needs a plugin name}; shift 2 ;;
        --hello) hello=1; shift ;;
        --debug) profile=debug; shift ;;
        --direct) direct=1; shift ;;
        --check) check=1; shift ;;
        --timeout) timeout_s=${2:?--timeout needs seconds}; shift 2 ;;
        --no-install) install=0; shift ;;
        --keep) keep=1; shift ;;
        --) shift; command=("$@"); break ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "single-node.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
case "$ranks" in ''|*[!0-9]*|0) echo "single-node.sh: -n wants a positive number, not '$ranks'" >&2; exit 2 ;; esac

started=$SECONDS
say() { if [ "$check" = 0 ]; then printf 'slurm: %s (%ss)\n' "$*" "$((SECONDS - started))"; fi; }
die() { printf 'single-node.sh: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run me as root (the daemons run as root here)"

# --- packages ---------------------------------------------------------------
need=()
for pair in slurmd:slurmd slurmctld:slurmctld srun:slurm-client munged:munge \
            mpirun:openmpi-bin mpicc:libopenmpi-dev; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
    [ "$install" = 1 ] || die "missing packages: ${need[*]}"
    command -v apt-get >/dev/null || die "missing packages ${need[*]} and no apt-get: install them by hand"
    say "installing ${need[*]}"
    # A policy-rc.d that says no keeps the packages' own services (munged,
    # slurmd, slurmctld) from starting with the system configuration; one is
    # put in place for the install if the machine has none.
    policy=
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        policy=/usr/sbin/policy-rc.d
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 755 "$policy"
    fi
    export DEBIAN_FRONTEND=noninteractive
    installed=0
    apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null &&
        installed=1
    [ -z "$policy" ] || rm -f "$policy"
    [ "$installed" = 1 ] || die "apt-get install ${need[*]} failed"
fi

# --- the temporary cluster ---------------------------------------------------
dir=$(mktemp -d /tmp/mp-slurm.XXXXXX)
# 711: munge clients must reach the socket inside.
chmod 711 "$dir"
mkdir -p "$dir/state" "$dir/spool" "$dir/log" "$dir/run" "$dir/tmp"
pids=()          # daemons, in start order
run_pid=

dump_logs() {
    for f in "$dir"/log/*.log; do
        [ -s "$f" ] || continue
        echo "----- $(basename "$f") (last 30 lines)" >&2
        tail -n 30 "$f" >&2
    done
}

# Stops what this script started: the run, the jobs, then the daemons, newest
# first, each by its pid (TERM, then KILL after 5 s), and reaps them.
stop_all() {
    if [ -n "$run_pid" ] && kill -0 "$run_pid" 2>/dev/null; then
        kill -TERM "$run_pid" 2>/dev/null || true
        wait "$run_pid" 2>/dev/null || true
    fi
    run_pid=
    # Jobs first, so that slurmd's step daemons end their tasks and exit.
    if [ ${#pids[@]} -ge 3 ]; then
        scancel --quiet --full --signal=KILL --user=root >/dev/null 2>&1 || true
        for _ in $(seq 50); do
            [ -z "$(squeue -h -o %i 2>/dev/null)" ] && break
            sleep 0.1
        done
        # slurmd's step daemons (its children) finish a moment after the job.
        for _ in $(seq 100); do
            [ -z "$(ps -o pid= --ppid "${pids[2]}" 2>/dev/null)" ] && break
            sleep 0.1
        done
    fi
    local i pid
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
        pid=${pids[i]}
        if kill -TERM "$pid" 2>/dev/null; then
            for _ in $(seq 50); do
                # A stopped daemon stays a zombie until reaped: ask ps, not kill -0.
                [ "$(ps -o stat= -p "$pid" 2>/dev/null | cut -c1)" = Z ] && break
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.1
            done
            kill -KILL "$pid" 2>/dev/null || true
        fi
        wait "$pid" 2>/dev/null || true
    done
    pids=()
}

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    stop_all
    if [ "$status" != 0 ]; then
        dump_logs
    fi
    if [ "$keep" = 1 ]; then
        echo "slurm: logs kept in $dir" >&2
    else
        rm -rf "$dir"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

host=$(hostname -s)
cpus=$(nproc)
# Declare at least as many CPUs as ranks so that -n N fits on a small machine
# (config_overrides below makes slurmd take the declared figure).
[ "$cpus" -ge "$ranks" ] || cpus=$ranks
port=$((20000 + RANDOM % 20000))

# munge: a fresh key, the socket in our directory.
dd if=/dev/urandom of="$dir/munge.key" bs=1024 count=1 status=none
chmod 400 "$dir/munge.key"
munged --foreground --force \
    --socket="$dir/run/munge.sock" --key-file="$dir/munge.key" \
    --pid-file="$dir/run/munged.pid" --seed-file="$dir/run/munged.seed" \
    --log-file="$dir/log/munged.log" >>"$dir/log/munged.log" 2>&1 &
pids+=($!)

cat >"$dir/slurm.conf" <<EOF
# Written by scripts/slurm/single-node.sh for one run.
ClusterName=mp-single
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$dir/run/munge.sock
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
TmpFS=$dir/tmp
MailProg=/bin/true
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
MpiDefault=none
ReturnToService=2
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus State=UNKNOWN
PartitionName=local Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
# No cgroup plugin is used (proctrack/linuxproc, task/none); this file only
# keeps slurmd from looking for one under /etc.
cat >"$dir/cgroup.conf" <<'EOF'
CgroupPlugin=autodetect
IgnoreSystemd=yes
EOF
export SLURM_CONF=$dir/slurm.conf

for _ in $(seq 50); do [ -S "$dir/run/munge.sock" ] && break; sleep 0.1; done
[ -S "$dir/run/munge.sock" ] || die "munged did not start"
say "munged up"

slurmctld -D -i -f "$SLURM_CONF" >>"$dir/log/slurmctld.out" 2>&1 &
pids+=($!)
slurmd -D -f "$SLURM_CONF" >>"$dir/log/slurmd.out" 2>&1 &
pids+=($!)

state=
for _ in $(seq 300); do
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null || die "a daemon exited at start"; done
    state=$(sinfo -h -N -n "$host" -o %T 2>/dev/null || true)
    [ "$state" = idle ] && break
    sleep 0.1
done
[ "$state" = idle ] || die "node $host is '${state:-unreachable}', not idle, after 30 s"
say "node $host idle with $cpus CPUs"

srun --mpi=list 2>&1 | grep -qw -- "$plugin" ||
    die "this Slurm has no MPI plugin '$plugin'; it has: $(srun --mpi=list 2>&1 | tr '\n' ' ')"

out=$dir/log/run.out
if [ "$check" = 1 ]; then
    got=$(timeout 60 srun -n "$ranks" hostname | wc -l)
    [ "$got" = "$ranks" ] || die "srun -n $ranks hostname answered $got times"
fi

# --- what to run --------------------------------------------------------------
expect=        # what the default programs print, checked after the run
if [ ${#command[@]} -eq 0 ]; then
    if [ "$hello" = 1 ]; then
        say "building hello.c"
        mpicc -O2 -o "$dir/hello" "$here/hello.c"
        command=("$dir/hello")
        expect=hello
    else
        command -v cargo >/dev/null || die "cargo not found (--hello runs the C program instead)"
        say "building examples/cluster_map.rs with --features mpi ($profile)"
        release=(--release)
        [ "$profile" = release ] || release=()
        (cd "$repo" && cargo build --quiet "${release[@]}" --features mpi --example cluster_map) \
            >>"$dir/log/build.log" 2>&1 || die "cargo build failed: $(tail -n 20 "$dir/log/build.log")"
        command=("${CARGO_TARGET_DIR:-$repo/target}/$profile/examples/cluster_map")
        expect=cluster_map
    fi
fi

if [ "$direct" = 1 ]; then
    [ ${#command[@]} -gt 0 ] || die "--direct needs a COMMAND"
    launch=()
else
    launch=(srun -n "$ranks" --mpi="$plugin" --kill-on-bad-exit=1)
fi
say "${launch[*]} ${command[*]}"
set +e
timeout --kill-after=10 "$timeout_s" "${launch[@]}" "${command[@]}" >"$out" 2>&1 &
run_pid=$!
wait "$run_pid"
rc=$?
run_pid=
set -e
if [ "$check" = 0 ] || [ "$rc" != 0 ]; then
    cat "$out"
fi
[ "$rc" != 124 ] || die "the run took more than $timeout_s s"
[ "$rc" = 0 ] || die "srun exited with $rc"
case "$expect" in
    hello)
        got=$(grep -c "^hello from rank .* of $ranks " "$out" || true)
        [ "$got" = "$ranks" ] || die "$got of $ranks ranks said hello"
        ;;
    cluster_map)
        grep -q "^rank 0 of $ranks: a pool of $((ranks - 1)) ranks" "$out" ||
            die "cluster_map did not report a pool of $((ranks - 1)) ranks"
        got=$(grep -c "^  rank [0-9]* serves on " "$out" || true)
        [ "$got" = "$((ranks - 1))" ] || die "$got of $((ranks - 1)) worker ranks served a job"
        ;;
esac
if [ "$check" = 1 ]; then
    # Stop everything now and make sure nothing is left of it.
    daemons=("${pids[@]}")
    stop_all
    for pid in "${daemons[@]}"; do
        ! kill -0 "$pid" 2>/dev/null || die "daemon $pid still running after the stop"
    done
    printf 'slurm single-node check: %s ranks through srun --mpi=%s ran %s, all daemons stopped (%ss)\n' \
        "$ranks" "$plugin" "$(basename "${command[0]}")" "$((SECONDS - started))"
fi
say "done"
