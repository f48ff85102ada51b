#!/usr/bin/env bash
# A single-node SLURM cluster on this machine, for the `slurm` tests and for trying `hydra/launcher=slurm`:
#   sudo bash .ci/local_slurm.sh start     # install (Debian: slurm-wlm, munge) if absent, configure, start; idempotent
#   sudo bash .ci/local_slurm.sh status    # sinfo, or exit 1 when no scheduler answers
#   sudo bash .ci/local_slurm.sh stop      # stop the daemons (state and logs stay in /var/spool, /var/log/slurm)
# Root on Debian (12). One node named after this host with its CPUs and memory, no GPU, one partition `debug`
# (default, 1 day limit; NST_SLURM_MAXTIME=INFINITE start: none, as on some clusters), accounting off (as on many small clusters: no sacct). Daemons run without systemd
# (containers have none): munged as user munge, slurmctld and slurmd as root.
set -euo pipefail

CONF=/etc/slurm/slurm.conf
LOGS=/var/log/slurm
PART=debug
MARK="# written by .ci/local_slurm.sh"

need_root() {
    [ "$(id -u)" = 0 ] && return
    echo "error: $0 must run as root (it installs packages and starts daemons)" >&2
    exit 2
}

running() {  # PIDFILE: its process is alive (not a zombie) and is the daemon the file is named after
    local pid stat comm
    pid=$(cat "$1" 2>/dev/null) || return 1
    read -r stat comm < <(ps -o stat= -o comm= -p "$pid" 2>/dev/null) || return 1
    [ "${stat:0:1}" != Z ] && [ "$comm" = "$(basename "$1" .pid)" ]
}

install() {
    command -v slurmctld >/dev/null && command -v munged >/dev/null && return
    echo "installing slurm-wlm and munge (apt-get)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
}

configure() {  # returns 1 when slurm.conf was already as written
    local host cpus mem
    host=$(hostname -s)
    cpus=$(nproc --all)
    # what slurmd itself measures; configuring more would drain the node ("Low RealMemory")
    mem=$(slurmd -C | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p')
    if [ -f "$CONF" ] && ! head -1 "$CONF" | grep -q "^$MARK"; then  # a real cluster's configuration
        echo "error: $CONF was not written by $0; not overwriting it (this machine has a SLURM setup)" >&2
        exit 2
    fi
    mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd "$LOGS"
    cat >"$CONF.new" <<EOF
$MARK: one node, no GPU, no accounting
ClusterName=local
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
# a requeued job (preemption) waits cred_expire before it may start again: 120 s by default, 10 s here
AuthInfo=cred_expire=10
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
# no cgroups in a container: track processes by parent id, bind nothing
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1024
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
# look at pending jobs every 2 s, not 60 (a requeued job, the next array task): a test cluster is small
SchedulerParameters=sched_interval=2,bf_interval=2
# scancel: SIGTERM, then SIGKILL after KillWait (default 30 s); a test cluster need not wait that long
KillWait=5
# finished jobs stay visible to squeue/scontrol this long (the launcher reads their final state there)
MinJobAge=600
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=$PART Nodes=$host Default=YES MaxTime=${NST_SLURM_MAXTIME:-1-00:00:00} State=UP
EOF
    if cmp -s "$CONF.new" "$CONF"; then rm "$CONF.new"; return 1; fi
    mv "$CONF.new" "$CONF"
}

start_munge() {
    running /run/munge/munged.pid && return
    mkdir -p /run/munge /var/lib/munge /var/log/munge
    [ -s /etc/munge/munge.key ] || mungekey --create --keyfile=/etc/munge/munge.key
    chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge
    chmod 0400 /etc/munge/munge.key
    chmod 0755 /run/munge
    runuser -u munge -- /usr/sbin/munged
}

ready() {  # the node answers and takes jobs (idle, mixed or allocated)
    timeout 10 sinfo --noheader -p "$PART" -o %t 2>/dev/null | grep -qE '^(idle|mix|alloc)'
}

wait_ready() {  # SECONDS: until the node is ready, or false
    local end=$((SECONDS + $1))
    while [ "$SECONDS" -lt "$end" ]; do
        ready && return
        sleep 0.5
    done
    return 1
}

start() {
    need_root
    install
    if configure; then stop; fi  # a changed slurm.conf: `scontrol reconfigure` would not apply all of it
    start_munge
    running /run/slurmctld.pid || slurmctld
    running /run/slurmd.pid || slurmd -N "$(hostname -s)"
    # a node left down by an earlier run (killed daemons) comes back with an explicit resume
    if wait_ready 30 ||
        { timeout 10 scontrol update NodeName="$(hostname -s)" State=RESUME 2>/dev/null; wait_ready 10; }; then
        sinfo
        return
    fi
    echo "error: the local SLURM cluster did not come up; see $LOGS/slurmctld.log and $LOGS/slurmd.log" >&2
    exit 1
}

stop() {
    need_root
    local pidfile
    for pidfile in /run/slurmd.pid /run/slurmctld.pid /run/munge/munged.pid; do
        if running "$pidfile"; then
            kill "$(cat "$pidfile")"
            for _ in $(seq 50); do running "$pidfile" || break; sleep 0.1; done
        fi
    done
}

status() {
    ready && sinfo && return
    echo "no local SLURM cluster answers (start it: bash $0 start)" >&2
    exit 1
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
