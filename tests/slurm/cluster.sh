#!/usr/bin/env bash
# A real SLURM cluster on this machine for the end-to-end tests: Debian's slurm-wlm (22.05),
# munge, one slurmctld and two slurmd daemons for the virtual nodes n1 and n2 (MULTIPLE_SLURMD),
# both on 127.0.0.1 with their own ports, 4 CPUs each (config_overrides lets them claim more
# CPUs than the machine has).
#
#   tests/slurm/cluster.sh start    # install what is missing, configure, start, wait for idle nodes
#   tests/slurm/cluster.sh status   # daemons and nodes; exit 0 iff the cluster is up
#   tests/slurm/cluster.sh env      # prints `export SLURM_CONF=...` (eval "$(... env)")
#   tests/slurm/cluster.sh stop     # cancel our jobs, stop only the daemons this script started
#
# Needs root (apt-get, munge, /etc/hosts). `start` is idempotent: when the cluster is up it
# returns at once. Clients outside jobs need SLURM_CONF=$NLS_SLURM_DIR/slurm.conf (the default
# state folder is /tmp/nls-slurm, so the path is /tmp/nls-slurm/slurm.conf). Jobs see it set.
#
# Settings worth knowing (measured, see the platform notes): `AuthInfo=cred_expire=5` and
# `SchedulerParameters=bf_interval=1,sched_interval=1` bring a requeue cycle from ~150 s to a few
# seconds; `MinJobAge=3600` keeps finished jobs visible to `scontrol show job` for an hour;
# `JobCompType=jobcomp/filetxt` lets `sacct -c` read completions. `RequeueExit` is left unset,
# as on most clusters. Preemption is SLURM's own: a job in partition `urgent` (PriorityTier 2)
# preempts jobs of the default partition `debug` with PreemptMode=REQUEUE (SIGTERM, KillWait,
# SIGKILL, then SLURM requeues the job). `start` restarts the daemons when this configuration
# differs from the one they run with.
#
# Environment: NLS_SLURM_DIR (state folder), NLS_SLURM_PORT (slurmctld port, default 6817; the
# nodes use the next two), NLS_SLURM_CPUS (CPUs per node, default 4), NLS_SLURM_WAIT (seconds to
# wait for idle nodes, default 60).
set -euo pipefail

STATE=${NLS_SLURM_DIR:-/tmp/nls-slurm}
CONF=$STATE/slurm.conf
PORT=${NLS_SLURM_PORT:-6817}
CPUS=${NLS_SLURM_CPUS:-4}
WAIT=${NLS_SLURM_WAIT:-60}
NODES=(n1 n2)
PACKAGES=(munge slurmctld slurmd slurm-client)
export SLURM_CONF=$CONF

log() { echo "[slurm] $*" >&2; }
die() {
    log "error: $*"
    exit 1
}

# --- processes started by this script, by PID file --------------------------------------------

# The PID in $STATE/run/$1.pid when that process is alive and is the program $2.
alive_pid() {
    local file=$STATE/run/$1.pid pid
    [[ -s $file ]] || return 1
    pid=$(<"$file")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    [[ -r /proc/$pid/cmdline ]] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$2" || return 1
    echo "$pid"
}

# Starts "$@" in its own session, detached, output to $STATE/log/$1.out; records the PID.
launch() {
    local name=$1
    shift
    # fd 9 (the start lock) must not stay open in the daemons.
    setsid "$@" </dev/null >>"$STATE/log/$name.out" 2>&1 9>&- &
    echo $! >"$STATE/run/$name.pid"
}

stop_pid() {
    local name=$1 prog=$2 pid
    pid=$(alive_pid "$name" "$prog") || {
        rm -f "$STATE/run/$name.pid"
        return 0
    }
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "$name ($pid) ignored SIGTERM; killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$STATE/run/$name.pid"
    log "stopped $name ($pid)"
}

# --- installation and configuration -----------------------------------------------------------

need_root() {
    [[ $(id -u) == 0 ]] || die "needs root (apt-get, munged, /etc/hosts); run it with sudo"
}

install_packages() {
    local missing=()
    command -v munged >/dev/null || missing+=(munge)
    command -v slurmctld >/dev/null || missing+=(slurmctld)
    command -v slurmd >/dev/null || missing+=(slurmd)
    command -v sbatch >/dev/null || missing+=(slurm-client)
    ((${#missing[@]})) || return 0
    command -v apt-get >/dev/null || die "apt-get not found; install ${PACKAGES[*]} by hand"
    log "installing ${missing[*]} (apt-get)"
    local apt=(apt-get install -y -q --no-install-recommends "${missing[@]}")
    if ! DEBIAN_FRONTEND=noninteractive "${apt[@]}" >"$STATE/log/apt.log" 2>&1; then
        DEBIAN_FRONTEND=noninteractive apt-get update -q >>"$STATE/log/apt.log" 2>&1 || true
        DEBIAN_FRONTEND=noninteractive "${apt[@]}" >>"$STATE/log/apt.log" 2>&1 ||
            { tail -n 20 "$STATE/log/apt.log" >&2; die "apt-get install ${missing[*]} failed"; }
    fi
}

# The node names must resolve: the trainer's rendezvous address is the first node of the step.
hosts_entries() {
    local n
    for n in "${NODES[@]}"; do
        getent hosts "$n" >/dev/null || echo "127.0.0.1 $n # nls-slurm test cluster" >>/etc/hosts
    done
}

# The configuration this script wants, on stdout.
config_text() {
    local host
    host=$(hostname -s)
    cat <<EOF
# Written by tests/slurm/cluster.sh: a two-node test cluster on one machine.
ClusterName=nls
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=cred_expire=5
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool/%n
SlurmctldPidFile=$STATE/run/slurmctld-daemon.pid
SlurmdPidFile=$STATE/run/slurmd-daemon-%n.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd-%n.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$STATE/log/jobcomp.txt
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
SchedulerType=sched/backfill
SchedulerParameters=bf_interval=1,sched_interval=1
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
JobRequeue=1
KillWait=5
MinJobAge=3600
InactiveLimit=0
SlurmctldTimeout=30
SlurmdTimeout=60
NodeName=n1 NodeHostname=localhost NodeAddr=127.0.0.1 Port=$((PORT + 1)) CPUs=$CPUS RealMemory=4000 State=UNKNOWN
NodeName=n2 NodeHostname=localhost NodeAddr=127.0.0.1 Port=$((PORT + 2)) CPUs=$CPUS RealMemory=4000 State=UNKNOWN
PreemptType=preempt/partition_prio
PreemptMode=REQUEUE
PartitionName=debug Nodes=n1,n2 Default=YES MaxTime=INFINITE State=UP PriorityTier=1
PartitionName=urgent Nodes=n1,n2 MaxTime=INFINITE State=UP PriorityTier=2 PreemptMode=OFF
EOF
}

write_config() {
    mkdir -p "$STATE"/{ctld,spool,run,log}
    config_text >"$CONF.tmp"
    mv "$CONF.tmp" "$CONF"
    mkdir -p "$STATE"/spool/{n1,n2}
}

# The running cluster was started with the configuration this script writes now.
config_current() { [[ -s $CONF && "$(config_text)" == "$(cat "$CONF")" ]]; }

munge_works() { munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; }

start_munge() {
    munge_works && return 0
    [[ -s /etc/munge/munge.key ]] || {
        log "creating /etc/munge/munge.key"
        if command -v mungekey >/dev/null; then
            mungekey --create --keyfile=/etc/munge/munge.key
        else
            dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
        fi
        chown munge:munge /etc/munge/munge.key
        chmod 0400 /etc/munge/munge.key
    }
    install -d -o munge -g munge -m 0755 /run/munge
    install -d -o munge -g munge -m 0700 /var/lib/munge /var/log/munge
    launch munged setpriv --reuid=munge --regid=munge --init-groups munged --foreground
    for _ in $(seq 1 50); do
        munge_works && return 0
        sleep 0.1
    done
    tail -n 20 "$STATE/log/munged.out" >&2 || true
    die "munged did not start (log above, and /var/log/munge/munged.log)"
}

# "n1 idle\nn2 idle" → 0 when every node is idle (or allocated/mixed: up and usable).
nodes_up() {
    local out
    out=$(sinfo -h -N -o '%N %t' 2>/dev/null) || return 1
    local n
    for n in "${NODES[@]}"; do
        grep -Eq "^$n (idle|alloc|mix|comp)\$" <<<"$out" || return 1
    done
}

daemons_alive() {
    alive_pid slurmctld slurmctld >/dev/null || return 1
    local n
    for n in "${NODES[@]}"; do
        alive_pid "slurmd-$n" slurmd >/dev/null || return 1
    done
}

is_up() { [[ -s $CONF ]] && daemons_alive && munge_works && nodes_up; }

show_logs() {
    local f
    for f in "$STATE"/log/slurmctld.log "$STATE"/log/slurmd-*.log "$STATE"/log/*.out; do
        [[ -s $f ]] || continue
        echo "==> $f <==" >&2
        tail -n 25 "$f" >&2
    done
    sinfo -N -l >&2 2>&1 || true
}

cmd_start() {
    if is_up && config_current; then
        log "up already (SLURM_CONF=$CONF)"
        return 0
    fi
    need_root
    local t0=$SECONDS
    mkdir -p "$STATE"/{run,log}
    exec 9>"$STATE/start.lock"
    flock -w 300 9 || die "another cluster.sh start holds $STATE/start.lock"
    if is_up && config_current; then
        log "up already (started by another caller; SLURM_CONF=$CONF)"
        return 0
    fi
    is_up && log "the configuration changed: restarting the daemons"
    install_packages
    hosts_entries
    # Half-started leftovers (a daemon died): stop ours and start again cleanly.
    stop_pid slurmd-n1 slurmd >/dev/null 2>&1
    stop_pid slurmd-n2 slurmd >/dev/null 2>&1
    stop_pid slurmctld slurmctld >/dev/null 2>&1
    write_config
    start_munge
    launch slurmctld slurmctld -D -f "$CONF"
    for _ in $(seq 1 100); do
        scontrol ping >/dev/null 2>&1 && break
        sleep 0.1
    done
    local n
    for n in "${NODES[@]}"; do
        launch "slurmd-$n" slurmd -D -N "$n" -f "$CONF"
    done
    local deadline=$((SECONDS + WAIT))
    until nodes_up; do
        if ((SECONDS > deadline)) || ! daemons_alive; then
            show_logs
            daemons_alive || die "a daemon exited during start-up (logs above)"
            die "nodes not idle after ${WAIT} s (logs above)"
        fi
        # A node that was DOWN in the saved state comes back on its own (ReturnToService=2),
        # but not one left DRAINED by an earlier crash.
        scontrol update nodename=n1,n2 state=resume >/dev/null 2>&1 || true
        sleep 0.2
    done
    log "up in $((SECONDS - t0)) s: nodes ${NODES[*]}, $CPUS CPUs each; export SLURM_CONF=$CONF"
}

cmd_status() {
    local ok=0 n pid
    if pid=$(alive_pid munged munged); then
        echo "munged     running (pid $pid, started here)"
    elif munge_works; then
        echo "munged     running (not started here)"
    else
        echo "munged     down"
        ok=1
    fi
    for n in slurmctld slurmd-n1 slurmd-n2; do
        if pid=$(alive_pid "$n" "${n%%-*}"); then
            printf '%-10s running (pid %s)\n' "$n" "$pid"
        else
            printf '%-10s down\n' "$n"
            ok=1
        fi
    done
    if ((ok == 0)); then
        sinfo -N -h -o '%N %t %c CPUs' 2>&1 | sed 's/^/node       /'
        nodes_up || ok=1
        echo "jobs       $(squeue -h 2>/dev/null | wc -l) in the queue"
    fi
    echo "SLURM_CONF=$CONF"
    ((ok == 0)) && echo "cluster is up" || echo "cluster is not up"
    return $ok
}

cmd_stop() {
    if alive_pid slurmctld slurmctld >/dev/null; then
        # Jobs outlive slurmd (slurmstepd runs on its own): cancel them first.
        scancel --full --quiet $(squeue -h -o %A 2>/dev/null | sort -u) 2>/dev/null || true
        for _ in $(seq 1 75); do
            [[ -z $(squeue -h -t running,completing 2>/dev/null) ]] && break
            sleep 0.2
        done
    fi
    # Each takes a second or two to shut down: stop them together.
    stop_pid slurmd-n1 slurmd &
    stop_pid slurmd-n2 slurmd &
    stop_pid slurmctld slurmctld &
    wait
    stop_pid munged munged
}

case ${1:-} in
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
env) echo "export SLURM_CONF=$CONF" ;;
logs) show_logs ;;
*)
    echo "usage: $0 start|stop|status|env|logs" >&2
    exit 2
    ;;
esac
