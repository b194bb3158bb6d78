#!/usr/bin/env bash
# The measurements behind BENCHMARKS.md, on the lent GPU machine, in as few device calls as possible:
#
#   bash bench/run_gpu.sh gen:llama2_7b train:llama2_7b score      # one call (about 9 minutes)
#   bash bench/run_gpu.sh gen:mistral_7b gen:phi2                  # another
#   bash bench/run_gpu.sh dag                                      # the reduced study through snakemake
#   bash bench/run_gpu.sh decode:llama2_7b decode:mistral_7b@cudnn,dynamic   # a job's first generate() call
#
# The packages the machine lacks travel packed in .gpu/site.tar.xz (bench/pack_site.sh; carry .gpu) or as
# wheels in .whl/ (see BENCHMARKS.md). Each stage writes its JSON to $OUT as it measures, so a call cut at
# its time limit still returns what it measured.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-bench-output}
mkdir -p "$OUT"
if [ -f .gpu/site.tar.xz ]; then
    mkdir -p /tmp/site && tar -C /tmp/site -xJf .gpu/site.tar.xz || exit 1
    export PYTHONPATH=/tmp/site
elif ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || exit 1
    export PYTHONPATH=/tmp/site
fi
export PYTHONUNBUFFERED=1 OUT
# NVLink multicast stays off on shared machines (the device tool's KINDS.md).
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
# One GPU for these measurements (a single training process that sees two is refused by TRL).
export CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES:-0}
log="$OUT/bench.log"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >> "$log" 2>&1
for stage in "$@"; do
    echo "=== $stage $(date +%T)" | tee -a "$log"
    case "$stage" in
        gen:*) (cd bench && timeout "${STAGE_TIMEOUT:-420}" python3 generate.py --shape "${stage#gen:}" \
                    --prompts 200 --new-tokens "${NEW_TOKENS:-128}") ;;
        gen-new:*) (cd bench && timeout "${STAGE_TIMEOUT:-420}" python3 generate.py --shape "${stage#gen-new:}" \
                    --prompts 200 --new-tokens "${NEW_TOKENS:-128}" --skip-old) ;;
        decode:*) spec=${stage#decode:}; variants=cudnn,dynamic,static,compile  # decode:SHAPE@VARIANTS picks some
                  [ "$spec" != "${spec#*@}" ] && variants=${spec#*@}
                  (cd bench && timeout "${STAGE_TIMEOUT:-420}" python3 decode.py --shape "${spec%@*}" \
                    --prompts "${PROMPTS:-200}" --new-tokens "${NEW_TOKENS:-128}" --num-beams "${BEAMS:-1}" \
                    --variants "$variants") ;;
        train:*) (cd bench && timeout "${STAGE_TIMEOUT:-420}" python3 train.py --shape "${stage#train:}" \
                    --steps "${STEPS:-6}") ;;
        score) (cd bench && timeout "${STAGE_TIMEOUT:-420}" python3 score.py --pairs 200) ;;
        study) (cd bench && python3 study.py --results results/h200-2026-11-29 results/h200-2026-11-29-decode) ;;
        dag) (cd bench && timeout "${STAGE_TIMEOUT:-560}" python3 dag.py \
                    --results results/h200-2026-11-29 results/h200-2026-11-29-decode \
                    --new-tokens "${NEW_TOKENS:-150}" --timeout $(( ${STAGE_TIMEOUT:-560} - 90 ))) ;;
        syncs) (cd bench && timeout "${STAGE_TIMEOUT:-420}" python3 syncs.py) ;;
        warm) timeout 300 python3 tests/gpu/warm_cuda_check.py ;;
        *) echo "unknown stage $stage" ;;
    esac 2>&1 | grep --line-buffered -v -E "it/s\]|s/it\]|Warning|warn\(" | tee -a "$log" | tail -40
done
echo "=== done $(date +%T)" | tee -a "$log"
