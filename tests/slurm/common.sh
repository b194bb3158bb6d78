# shellcheck shell=bash disable=SC2034  # variables are used by the sourcing scripts
# Shared settings and helpers for start-cluster.sh and stop-cluster.sh.
# This file is sourced, not executed.
#
# Everything the test cluster writes lives under one state directory:
#
#   $STATE_DIR/etc/      slurm.conf, gres.conf, slurmdbd.conf, env.sh
#   $STATE_DIR/munge/    munge key, socket and PRNG seed
#   $STATE_DIR/mariadb/  MariaDB datadir and socket
#   $STATE_DIR/spool/    slurmctld state (StateSaveLocation) and slurmd spool
#   $STATE_DIR/dev/      fake GPU device nodes (nvidia0, nvidia1)
#   $STATE_DIR/run/      PID files of all five daemons
#   $STATE_DIR/log/      logs of all five daemons

STATE_DIR="${LMSWEEP_SLURM_DIR:-/tmp/lmsweep-slurm}"
# Slurm config files do not support spaces in paths.
if [[ "$STATE_DIR" != /* || "$STATE_DIR" == *[[:space:]]* ]]; then
    echo "LMSWEEP_SLURM_DIR must be an absolute path without spaces: '$STATE_DIR'" >&2
    exit 2
fi

CLUSTER_NAME=lmsweep
ACCOUNT_NAME=lmsweep          # default Slurm account of root (and $SUDO_USER)
PARTITION_NAME=debug
NUM_FAKE_GPUS=2

# TCP ports, all bound to 127.0.0.1. The Slurm ones are Slurm's defaults;
# MariaDB gets an unusual port so it cannot clash with a system MariaDB.
SLURMCTLD_PORT="${LMSWEEP_SLURMCTLD_PORT:-6817}"
SLURMD_PORT="${LMSWEEP_SLURMD_PORT:-6818}"
SLURMDBD_PORT="${LMSWEEP_SLURMDBD_PORT:-6819}"
MARIADB_PORT="${LMSWEEP_MARIADB_PORT:-13306}"

ETC_DIR="$STATE_DIR/etc"
MUNGE_DIR="$STATE_DIR/munge"
DB_DIR="$STATE_DIR/mariadb"
SPOOL_DIR="$STATE_DIR/spool"
DEV_DIR="$STATE_DIR/dev"
RUN_DIR="$STATE_DIR/run"
LOG_DIR="$STATE_DIR/log"

MUNGE_SOCKET="$MUNGE_DIR/munge.socket.2"
MUNGE_KEY="$MUNGE_DIR/munge.key"
DB_SOCKET="$DB_DIR/mariadb.sock"

# Client tools and daemons find slurm.conf through SLURM_CONF; slurmdbd.conf,
# gres.conf and cgroup.conf are looked up in the same directory.
export SLURM_CONF="$ETC_DIR/slurm.conf"

# Daemons in start order; stop-cluster.sh stops them in reverse order.
DAEMONS=(munged mariadbd slurmdbd slurmctld slurmd)

# pid_file DAEMON -> path of the daemon's PID file.
pid_file() { echo "$RUN_DIR/$1.pid"; }

# daemon_pid DAEMON -> prints the PID if the PID file names a live process
# whose command name is DAEMON (guards against stale files and reused PIDs).
daemon_pid() {
    local file pid comm
    file="$(pid_file "$1")"
    [[ -s "$file" ]] || return 1
    pid="$(tr -dc '0-9' < "$file")"
    [[ -n "$pid" ]] || return 1
    comm="$(cat "/proc/$pid/comm" 2>/dev/null)" || return 1
    [[ "$comm" == "$1" ]] || return 1
    echo "$pid"
}

daemon_running() { daemon_pid "$1" > /dev/null; }

log() { echo "[slurm-cluster] $*"; }
