#!/usr/bin/env bash
# Smoke test for the test cluster (run after start-cluster.sh):
# submits a plain job, a GPU job (--gpus=1), a GRES job (--gres=gpu:2),
# a memory-limited job and a failing job, waits for them (bounded) and
# checks their final state and AllocTRES in sacct.
#
# Usage: tests/slurm/smoke-test.sh          (prints "N passed, N failed")
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

TIMEOUT="${LMSWEEP_SLURM_SMOKE_TIMEOUT:-120}"
work="$(mktemp -d /tmp/lmsweep-slurm-smoke.XXXXXX)"
trap 'rm -rf "$work"' EXIT

submit() { sbatch --parsable -p "$PARTITION_NAME" -D "$work" -o "$work/%j.out" "$@"; }

# shellcheck disable=SC2016  # expanded inside the job, not here
show_gpus='echo "CUDA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES"'

declare -A jobs
jobs[plain]="$(submit --wrap 'hostname; sleep 1')"
jobs[gpu]="$(submit --gpus=1 --wrap "$show_gpus")"
jobs[gres]="$(submit --gres=gpu:2 --wrap "$show_gpus")"
jobs[mem]="$(submit --mem=500 -c 1 --wrap 'echo mem ok')"
jobs[fail]="$(submit --wrap 'exit 3')"
ids="$(IFS=,; echo "${jobs[*]}")"
log "submitted jobs $ids"

# Wait until sacct reports a final state for every job (a job may not be in
# the accounting DB yet right after sbatch returns).
final_states='^(COMPLETED|FAILED|CANCELLED.*|TIMEOUT|OUT_OF_MEMORY|NODE_FAIL)$'
deadline=$((SECONDS + TIMEOUT))
while true; do
    done_count="$(sacct -n -X -P -j "$ids" -o State | grep -cE "$final_states" || true)"
    ((done_count == ${#jobs[@]})) && break
    if ((SECONDS >= deadline)); then
        squeue >&2 || true
        echo "jobs did not finish within ${TIMEOUT}s" >&2
        exit 1
    fi
    sleep 1
done

passed=0 failed=0
# check NAME DESCRIPTION COMMAND...: run COMMAND, count the outcome.
check() {
    local name="$1" what="$2"; shift 2
    if "$@"; then
        echo "ok   $name: $what"
        passed=$((passed + 1))
    else
        echo "FAIL $name: $what (sacct: $(sacct -n -X -P -j "${jobs[$name]}" -o State,ExitCode,AllocTRES))"
        failed=$((failed + 1))
    fi
}
field() { sacct -n -X -P -j "${jobs[$1]}" -o "$2"; }
output() { cat "$work/${jobs[$1]}.out"; }

check plain "COMPLETED"                  test "$(field plain State)" = COMPLETED
check plain "ran on $(hostname -s)"      test "$(output plain)" = "$(hostname -s)"
check gpu   "COMPLETED"                  test "$(field gpu State)" = COMPLETED
check gpu   "AllocTRES has gres/gpu=1"   grep -q 'gres/gpu=1' <<< "$(field gpu AllocTRES)"
check gpu   "CUDA_VISIBLE_DEVICES=0"     test "$(output gpu)" = "CUDA_VISIBLE_DEVICES=0"
check gres  "COMPLETED"                  test "$(field gres State)" = COMPLETED
check gres  "AllocTRES has gres/gpu=2"   grep -q 'gres/gpu=2' <<< "$(field gres AllocTRES)"
check gres  "CUDA_VISIBLE_DEVICES=0,1"   test "$(output gres)" = "CUDA_VISIBLE_DEVICES=0,1"
check mem   "COMPLETED"                  test "$(field mem State)" = COMPLETED
check mem   "AllocTRES has mem=500M"     grep -q 'mem=500M' <<< "$(field mem AllocTRES)"
check fail  "FAILED with exit code 3"    test "$(field fail State,ExitCode)" = "FAILED|3:0"

echo "$passed passed, $failed failed"
((failed == 0))
