#!/usr/bin/env bash
# Stand up a real single-node SLURM test cluster on this (Debian 12) machine.
#
# Usage: tests/slurm/start-cluster.sh          (as root)
#
# Daemons: munged, mariadbd, slurmdbd, slurmctld, slurmd; all started by hand
# (no systemd), all bound to 127.0.0.1, all state under $LMSWEEP_SLURM_DIR
# (default /tmp/lmsweep-slurm; see common.sh for the layout).
#
# The cluster "lmsweep" has one node (this host, layout from `slurmd -C`),
# a default partition "debug", two fake GPUs (gres gpu:2 backed by mknod'ed
# device files) and accounting through slurmdbd, so sacct works. root (and
# $SUDO_USER, if any) has the default account "lmsweep".
#
# Client tools (sbatch, squeue, sacct, scancel, sinfo, ...) find the cluster
# through SLURM_CONF, which this script prints at the end and also writes to
# $LMSWEEP_SLURM_DIR/etc/env.sh:
#
#   eval "$(tests/slurm/start-cluster.sh | grep '^export SLURM_CONF=')"
#   # or: tests/slurm/start-cluster.sh && . /tmp/lmsweep-slurm/etc/env.sh
#
# In addition /etc/slurm/slurm.conf is made a symlink to the generated
# slurm.conf (unless it is a real file, or LMSWEEP_SLURM_LINK_ETC=0), because
# the snakemake slurm plugin runs `srun` inside each job with every SLURM_*
# variable (SLURM_CONF included) removed from its environment.
#
# Idempotent: missing packages are installed once (apt-get); if the cluster
# is already up it says so and exits 0 at once; daemons that died are
# restarted; accounting data and the slurmctld job state survive
# stop-cluster.sh / start-cluster.sh (only `stop-cluster.sh --purge` wipes).
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

WAIT_SECONDS="${LMSWEEP_SLURM_WAIT:-60}"   # bound for each readiness wait
NODE_NAME="$(hostname -s)"
DB_NAME=slurm_acct_db
DB_USER=slurm
DB_PASS=lmsweep-test-only        # local, 127.0.0.1-only test database

if [[ $EUID -ne 0 ]]; then
    echo "start-cluster.sh must run as root" >&2
    exit 1
fi

# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------

# Print the node state (if slurmctld answers) and the tail of every daemon
# log, then fail.
die_with_logs() {
    echo "[slurm-cluster] ERROR: $*" >&2
    local f
    if cluster_answers; then
        echo "----- sinfo / node -----" >&2
        sinfo -R >&2 || true
        scontrol show node >&2 || true
    fi
    for f in "$LOG_DIR"/*.log "$LOG_DIR"/*.out; do
        [[ -s "$f" ]] || continue
        echo "----- $f (last 40 lines) -----" >&2
        tail -n 40 "$f" >&2 || true
    done
    exit 1
}

# wait_for DESCRIPTION COMMAND...: retry COMMAND every 0.5 s, at most
# $WAIT_SECONDS seconds; fail with the daemons' logs if it never succeeds.
wait_for() {
    local what="$1"; shift
    local deadline=$((SECONDS + WAIT_SECONDS))
    until "$@" > /dev/null 2>&1; do
        if ((SECONDS >= deadline)); then
            die_with_logs "timed out after ${WAIT_SECONDS}s waiting for $what"
        fi
        sleep 0.5
    done
}

# require_free_port DAEMON PORT: before starting DAEMON, fail clearly if
# something else already listens on its port (e.g. another cluster).
require_free_port() {
    if (exec 3<> "/dev/tcp/127.0.0.1/$2") 2> /dev/null; then
        die_with_logs "port $2 (for $1) is already in use on 127.0.0.1"
    fi
}

cluster_answers() {
    sinfo -h -o %T > /dev/null 2>&1
}

all_daemons_running() {
    local d
    for d in "${DAEMONS[@]}"; do
        daemon_running "$d" || return 1
    done
}

# Make our slurm.conf the default one (/etc/slurm/slurm.conf, symlink).
# Needed because snakemake-executor-plugin-slurm-jobstep strips every SLURM_*
# variable, SLURM_CONF included, from the environment of the `srun` it runs
# inside each job; without a default config that srun dies with
# "DNS SRV lookup failed ... Could not establish a configuration source".
# A real (non-symlink) /etc/slurm/slurm.conf is never touched.
# Set LMSWEEP_SLURM_LINK_ETC=0 to skip this.
link_default_conf() {
    local link=/etc/slurm/slurm.conf
    [[ "${LMSWEEP_SLURM_LINK_ETC:-1}" == 1 ]] || return 0
    if [[ -e "$link" && ! -L "$link" ]]; then
        log "WARNING: $link is a real file, not replacing it; srun inside" \
            "snakemake jobs will use it instead of $SLURM_CONF"
        return 0
    fi
    mkdir -p /etc/slurm
    ln -sfn "$SLURM_CONF" "$link"
}

print_env_hint() {
    log "cluster '$CLUSTER_NAME' is up (state in $STATE_DIR). Use it with:"
    echo "export SLURM_CONF=$SLURM_CONF"
}

# ---------------------------------------------------------------------------
# Fast path: already running
# ---------------------------------------------------------------------------

if all_daemons_running && cluster_answers; then
    link_default_conf
    log "already running: $(sinfo -h -o '%P %T %G' | head -n 1)"
    print_env_hint
    exit 0
fi

# ---------------------------------------------------------------------------
# 1. Packages (only when something is missing)
# ---------------------------------------------------------------------------

install_packages() {
    local needed=(munged slurmctld slurmd slurmdbd mariadbd mariadb-install-db
                  mariadb sbatch squeue sacct sacctmgr scontrol sinfo)
    local cmd missing=()
    for cmd in "${needed[@]}"; do
        command -v "$cmd" > /dev/null 2>&1 || missing+=("$cmd")
    done
    ((${#missing[@]} == 0)) && return 0

    log "installing packages (missing: ${missing[*]})"
    # Keep the packages' maintainer scripts from starting system-wide
    # daemons (munge, mariadb, slurm*) via invoke-rc.d: we start our own.
    local policy=/usr/sbin/policy-rc.d added_policy=0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' > "$policy"
        chmod 755 "$policy"
        added_policy=1
    fi
    local rc=0
    {
        DEBIAN_FRONTEND=noninteractive apt-get update -q &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
            munge slurm-wlm slurmctld slurmd slurm-client slurmdbd \
            mariadb-server mariadb-client
    } > "$LOG_DIR/apt.log" 2>&1 || rc=$?
    ((added_policy)) && rm -f "$policy"
    if ((rc != 0)); then
        tail -n 30 "$LOG_DIR/apt.log" >&2
        echo "apt-get failed (full log: $LOG_DIR/apt.log)" >&2
        exit 1
    fi
}
mkdir -p "$LOG_DIR"
install_packages

# ---------------------------------------------------------------------------
# 2. State directory, fake GPUs, config files
# ---------------------------------------------------------------------------

mkdir -p "$ETC_DIR" "$MUNGE_DIR" "$DB_DIR" "$SPOOL_DIR/slurmctld" \
         "$SPOOL_DIR/slurmd" "$DEV_DIR" "$RUN_DIR" "$LOG_DIR"
# munged refuses group/world-writable directories on its key/socket paths,
# and non-root clients need to traverse them to reach the socket.
chmod 755 "$STATE_DIR" "$MUNGE_DIR"

# Fake GPU device nodes (NVIDIA's char major is 195). Slurm only stat()s them
# to learn major/minor; nothing ever opens them. Without File= entries a GPU
# gres node would be drained for a gres count mismatch.
for ((i = 0; i < NUM_FAKE_GPUS; i++)); do
    [[ -c "$DEV_DIR/nvidia$i" ]] || mknod -m 666 "$DEV_DIR/nvidia$i" c 195 "$i"
done

# Node layout as slurmd sees it, e.g.
#   NodeName=vm CPUs=2 Boards=1 SocketsPerBoard=1 CoresPerSocket=2 ThreadsPerCore=1 RealMemory=24152
node_line="$(slurmd -C | head -n 1)"
layout_field() { grep -o "\b$1=[0-9]*" <<< "$node_line" | cut -d= -f2; }
cpus="$(layout_field CPUs)"
boards="$(layout_field Boards)"
sockets="$(layout_field SocketsPerBoard)"
cores="$(layout_field CoresPerSocket)"
threads="$(layout_field ThreadsPerCore)"
real_mem="$(layout_field RealMemory)"
[[ -n "$cpus" && -n "$real_mem" ]] || die_with_logs "cannot parse 'slurmd -C': $node_line"
# Advertise less memory than the host has (10%, at least 512 MB, stays free):
# a node whose RealMemory exceeds what slurmd measures gets drained.
headroom=$((real_mem / 10 > 512 ? real_mem / 10 : 512))
node_mem=$((real_mem - headroom))

cat > "$ETC_DIR/slurm.conf" <<EOF
# Generated by tests/slurm/start-cluster.sh -- do not edit, it is rewritten
# on every start.
ClusterName=$CLUSTER_NAME
SlurmctldHost=$NODE_NAME(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$SLURMCTLD_PORT
SlurmdPort=$SLURMD_PORT

AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$MUNGE_SOCKET

StateSaveLocation=$SPOOL_DIR/slurmctld
SlurmdSpoolDir=$SPOOL_DIR/slurmd
SlurmctldPidFile=$(pid_file slurmctld)
SlurmdPidFile=$(pid_file slurmd)
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
PlugStackConfig=$ETC_DIR/plugstack.conf

# No cgroups: works in containers/VMs without a delegated cgroup tree.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux

SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1024

AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$SLURMDBD_PORT
# With slurmdbd this names the munge socket for connections to slurmdbd
# (AuthInfo above is not used for those).
AccountingStoragePass=$MUNGE_SOCKET
# Record GPUs in AllocTRES/ReqTRES (sacct -o AllocTRES shows gres/gpu=N).
AccountingStorageTRES=gres/gpu
# Keep each job's --comment in the accounting DB: the snakemake slurm plugin
# puts the rule name there (rule_<name>_wildcards_<...>), and tests/test_slurm.py
# reads it back with sacct -o Comment.
AccountingStoreFlags=job_comment
JobCompType=jobcomp/none

# Finished jobs stay visible to squeue/scontrol for 5 minutes.
MinJobAge=300
# A DOWN node comes back as soon as its slurmd registers with a valid config.
ReturnToService=2
MailProg=/bin/true

GresTypes=gpu
NodeName=$NODE_NAME NodeAddr=127.0.0.1 NodeHostname=$NODE_NAME CPUs=$cpus Boards=$boards SocketsPerBoard=$sockets CoresPerSocket=$cores ThreadsPerCore=$threads RealMemory=$node_mem Gres=gpu:$NUM_FAKE_GPUS State=UNKNOWN
PartitionName=$PARTITION_NAME Nodes=$NODE_NAME Default=YES MaxTime=INFINITE State=UP
EOF

cat > "$ETC_DIR/gres.conf" <<EOF
# Generated by tests/slurm/start-cluster.sh: fake GPUs (device nodes only).
AutoDetect=off
NodeName=$NODE_NAME Name=gpu File=$DEV_DIR/nvidia[0-$((NUM_FAKE_GPUS - 1))]
EOF

: > "$ETC_DIR/plugstack.conf"    # no SPANK plugins

# slurmdbd refuses a slurmdbd.conf that is not 0600 and owned by SlurmUser.
(
    umask 077
    cat > "$ETC_DIR/slurmdbd.conf" <<EOF
# Generated by tests/slurm/start-cluster.sh
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET
DbdHost=$NODE_NAME
DbdAddr=127.0.0.1
DbdPort=$SLURMDBD_PORT
SlurmUser=root
PidFile=$(pid_file slurmdbd)
LogFile=$LOG_DIR/slurmdbd.log
DebugLevel=info
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$MARIADB_PORT
StorageUser=$DB_USER
StoragePass=$DB_PASS
StorageLoc=$DB_NAME
EOF
)
chown root:root "$ETC_DIR/slurmdbd.conf"
chmod 600 "$ETC_DIR/slurmdbd.conf"

echo "export SLURM_CONF=$SLURM_CONF" > "$ETC_DIR/env.sh"

link_default_conf

# ---------------------------------------------------------------------------
# 3. munged
# ---------------------------------------------------------------------------

munge_works() {
    munge -n --socket="$MUNGE_SOCKET" | unmunge --socket="$MUNGE_SOCKET"
}

if ! daemon_running munged; then
    if [[ ! -s "$MUNGE_KEY" ]]; then
        log "creating munge key"
        dd if=/dev/urandom of="$MUNGE_KEY" bs=1024 count=1 status=none
    fi
    chmod 400 "$MUNGE_KEY"
    log "starting munged"
    # --force: downgrade munged's file-permission checks on the key/socket
    # paths to warnings, so the state dir may live anywhere (e.g. under a
    # group-writable directory); not needed with the default /tmp location.
    munged --force \
        --socket="$MUNGE_SOCKET" \
        --key-file="$MUNGE_KEY" \
        --pid-file="$(pid_file munged)" \
        --seed-file="$MUNGE_DIR/munged.seed" \
        --log-file="$LOG_DIR/munged.log" \
        < /dev/null >> "$LOG_DIR/munged.out" 2>&1 \
        || die_with_logs "munged failed to start"
fi
wait_for "munge -n | unmunge" munge_works

# ---------------------------------------------------------------------------
# 4. MariaDB (for slurmdbd)
# ---------------------------------------------------------------------------

sql() { mariadb --no-defaults --socket="$DB_SOCKET" -u root "$@"; }

if ! daemon_running mariadbd; then
    if [[ ! -d "$DB_DIR/data/mysql" ]]; then
        log "initialising MariaDB datadir"
        mariadb-install-db --no-defaults --user=root --datadir="$DB_DIR/data" \
            --auth-root-authentication-method=socket --skip-test-db \
            > "$LOG_DIR/mariadb-install-db.log" 2>&1 \
            || die_with_logs "mariadb-install-db failed"
    fi
    require_free_port mariadbd "$MARIADB_PORT"
    log "starting mariadbd"
    # --no-defaults: ignore /etc/mysql/*.cnf (system socket, datadir, ...).
    # mariadbd does not daemonise: detach it with setsid.
    setsid mariadbd --no-defaults --user=root \
        --datadir="$DB_DIR/data" \
        --socket="$DB_SOCKET" \
        --pid-file="$(pid_file mariadbd)" \
        --port="$MARIADB_PORT" --bind-address=127.0.0.1 \
        --skip-name-resolve \
        --log-error="$LOG_DIR/mariadbd.log" \
        --innodb-buffer-pool-size=128M \
        --innodb-lock-wait-timeout=900 \
        < /dev/null >> "$LOG_DIR/mariadbd.out" 2>&1 &
fi
wait_for "mariadbd" sql -e 'SELECT 1'

sql --batch <<EOF
CREATE DATABASE IF NOT EXISTS $DB_NAME;
CREATE USER IF NOT EXISTS '$DB_USER'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
CREATE USER IF NOT EXISTS '$DB_USER'@'localhost' IDENTIFIED BY '$DB_PASS';
GRANT ALL ON $DB_NAME.* TO '$DB_USER'@'127.0.0.1';
GRANT ALL ON $DB_NAME.* TO '$DB_USER'@'localhost';
EOF

# ---------------------------------------------------------------------------
# 5. slurmdbd, then the cluster, account and users in the accounting DB
# ---------------------------------------------------------------------------

if ! daemon_running slurmdbd; then
    require_free_port slurmdbd "$SLURMDBD_PORT"
    log "starting slurmdbd"
    slurmdbd < /dev/null >> "$LOG_DIR/slurmdbd.out" 2>&1 \
        || die_with_logs "slurmdbd failed to start"
fi
wait_for "slurmdbd" sacctmgr -n show cluster format=cluster

# sacctmgr_add WHAT NAME [ARGS...]: "sacctmgr add" unless NAME already exists
# (sacctmgr exits non-zero when there is nothing new to add).
sacctmgr_add() {
    local what="$1" name="$2"; shift 2
    if [[ -z "$(sacctmgr -n -P show "$what" "$name" format="$what" 2>/dev/null)" ]]; then
        sacctmgr -i add "$what" "$name" "$@" > /dev/null
    fi
}
sacctmgr_add cluster "$CLUSTER_NAME"
sacctmgr_add account "$ACCOUNT_NAME" Cluster="$CLUSTER_NAME" \
    Description="lmsweep tests" Organization=lmsweep
# Associate root (and the sudo caller) with the account and make it their
# default. (slurmdbd pre-creates user root in account "root"; the snakemake
# slurm plugin validates a given slurm_account against
# `sacctmgr -s list user $USER format=account`.)
for user in root ${SUDO_USER:-}; do
    assoc="$(sacctmgr -n -P show assoc cluster="$CLUSTER_NAME" \
             account="$ACCOUNT_NAME" user="$user" format=user)"
    if [[ -z "$assoc" ]]; then
        sacctmgr -i add user "$user" Account="$ACCOUNT_NAME" \
            DefaultAccount="$ACCOUNT_NAME" Cluster="$CLUSTER_NAME" > /dev/null
    fi
    default="$(sacctmgr -n -P show user "$user" format=defaultaccount)"
    if [[ "$default" != "$ACCOUNT_NAME" ]]; then
        sacctmgr -i modify user where name="$user" \
            set DefaultAccount="$ACCOUNT_NAME" > /dev/null
    fi
done

# ---------------------------------------------------------------------------
# 6. slurmctld and slurmd
# ---------------------------------------------------------------------------

if ! daemon_running slurmctld; then
    require_free_port slurmctld "$SLURMCTLD_PORT"
    log "starting slurmctld"
    slurmctld -f "$SLURM_CONF" < /dev/null >> "$LOG_DIR/slurmctld.out" 2>&1 \
        || die_with_logs "slurmctld failed to start"
fi
wait_for "slurmctld" scontrol ping

if ! daemon_running slurmd; then
    require_free_port slurmd "$SLURMD_PORT"
    log "starting slurmd"
    slurmd -f "$SLURM_CONF" < /dev/null >> "$LOG_DIR/slurmd.out" 2>&1 \
        || die_with_logs "slurmd failed to start"
fi

# Wait for the node to register; un-drain it if an earlier run left it
# drained/down (ReturnToService=2 handles plain DOWN by itself).
node_state() { sinfo -h -n "$NODE_NAME" -o %T 2>/dev/null | head -n 1; }
node_idle() {
    local state
    state="$(node_state)"
    case "$state" in
        idle | mixed | allocated) return 0 ;;
        *drain* | *down* | *fail*)
            scontrol update nodename="$NODE_NAME" state=resume 2>/dev/null || true
            return 1 ;;
        *) return 1 ;;
    esac
}
wait_for "node $NODE_NAME to become idle" node_idle
wait_for "sacct" sacct -n -X -S now-1minute

log "node: $(sinfo -h -o '%P %N %T cpus=%c mem=%mMB gres=%G')"
print_env_hint
