#!/usr/bin/env bash
# Stop the single-node SLURM test cluster started by start-cluster.sh.
#
# Usage: tests/slurm/stop-cluster.sh [--purge]
#
# Stops slurmd + slurmctld, then slurmdbd, then mariadbd + munged, each by
# the PID in its PID file under $LMSWEEP_SLURM_DIR/run: SIGTERM, then SIGKILL
# if it has not exited after $LMSWEEP_SLURM_STOP_WAIT seconds (default 30).
# Daemons that are not running are skipped, so this is safe to run any
# number of times.
#
# The state (configs, accounting DB, job state, munge key) is kept, so a
# later start-cluster.sh resumes the same cluster; its slurm.conf gets
# MessageTimeout=1 meanwhile, so that client tools (and every snakemake call,
# through the slurm plugin) fail at once instead of waiting 10 s for the
# stopped controller. --purge also cancels any
# jobs still queued or running (while slurmctld is up) and then deletes the
# whole state directory.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

STOP_WAIT="${LMSWEEP_SLURM_STOP_WAIT:-30}"

purge=0
case "${1:-}" in
    "") ;;
    --purge) purge=1 ;;
    -h | --help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "usage: $0 [--purge]" >&2; exit 2 ;;
esac

# stop_daemons NAME...: SIGTERM to each running daemon, wait (bounded) for
# all of them to exit, SIGKILL the stragglers, remove the PID files.
stop_daemons() {
    local name pid deadline
    local -A pids=()
    for name in "$@"; do
        if pid="$(daemon_pid "$name")"; then
            log "stopping $name (pid $pid)"
            kill -TERM "$pid" 2>/dev/null || true
            pids[$name]=$pid
        fi
    done
    deadline=$((SECONDS + STOP_WAIT))
    for name in "${!pids[@]}"; do
        pid=${pids[$name]}
        while kill -0 "$pid" 2>/dev/null; do
            if ((SECONDS >= deadline)); then
                log "$name (pid $pid) still running after ${STOP_WAIT}s: SIGKILL"
                kill -KILL "$pid" 2>/dev/null || true
                sleep 0.5
                break
            fi
            sleep 0.2
        done
    done
    for name in "$@"; do
        rm -f "$(pid_file "$name")"
    done
}

# With --purge, do not leave job processes behind: cancel everything first
# and give slurmd a moment to kill the job steps.
if ((purge)) && daemon_running slurmctld; then
    jobs="$(squeue -h -o %i 2>/dev/null || true)"
    if [[ -n "$jobs" ]]; then
        log "cancelling jobs: ${jobs//$'\n'/ }"
        # shellcheck disable=SC2086
        scancel $jobs 2>/dev/null || true
        for _ in $(seq 20); do
            [[ -z "$(squeue -h -t running,completing -o %i 2>/dev/null)" ]] && break
            sleep 0.5
        done
    fi
fi

# Reverse start order, in three waves: the Slurm daemons that talk to
# slurmdbd, then slurmdbd (it may still flush to MariaDB), then the rest.
stop_daemons slurmd slurmctld
stop_daemons slurmdbd
stop_daemons mariadbd munged

# A stopped cluster must not slow down every snakemake call on this machine:
# snakemake-executor-plugin-slurm runs `scontrol show config` when it is
# imported (by any snakemake command, local runs included), and scontrol
# retries an absent controller for MessageTimeout (10 s) before giving up.
# With 1 s it gives up at once. start-cluster.sh rewrites slurm.conf anyway.
if ((!purge)) && [[ -f "$SLURM_CONF" ]] && ! grep -q '^MessageTimeout=' "$SLURM_CONF"; then
    printf '\n# Added by stop-cluster.sh: the cluster is down, clients fail at once.\nMessageTimeout=1\n' \
        >> "$SLURM_CONF"
fi

if ((purge)); then
    # The /etc/slurm/slurm.conf symlink start-cluster.sh made, if it is ours.
    if [[ -L /etc/slurm/slurm.conf &&
          "$(readlink /etc/slurm/slurm.conf)" == "$SLURM_CONF" ]]; then
        rm -f /etc/slurm/slurm.conf
    fi
    if [[ -d "$STATE_DIR" ]]; then
        log "removing $STATE_DIR"
        rm -rf -- "$STATE_DIR"
    fi
fi
log "stopped"
