#!/usr/bin/env bash
# The measurements behind BENCHMARKS.md, on an offline GPU host, several stages per invocation:
#
#   bash bench/run_gpu.sh gen:llama2_7b train:llama2_7b score      # about 9 minutes on one H200
#   bash bench/run_gpu.sh gen:mistral_7b gen:phi2                  # the other two models
#   bash bench/run_gpu.sh dag                                      # the reduced study through snakemake
#   bash bench/run_gpu.sh dag-adapt                                # the same with an adaptation sweep (2 adapters more)
#   bash bench/run_gpu.sh decode:llama2_7b decode:mistral_7b@cudnn,dynamic   # a job's first generate() call
#
# The packages the host's Python lacks come from a wheelhouse copied beside the repository: packed into
# .gpu/site.tar.xz by bench/pack_site.sh, or as wheels in .whl/ (see BENCHMARKS.md). Each stage writes its
# JSON to $OUT as it measures, so a stage cut at its time limit (STAGE_TIMEOUT) still leaves what it measured.
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
# NVLink multicast off (NCCL's NVLS, symmetric memory, NVSHMEM): one-GPU measurements need none of it.
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
                    --variants "$variants" --timeout "${VARIANT_TIMEOUT:-240}") ;;
        train:*) (cd bench && timeout "${STAGE_TIMEOUT:-420}" python3 train.py --shape "${stage#train:}" \
                    --steps "${STEPS:-6}") ;;
        score) (cd bench && timeout "${STAGE_TIMEOUT:-420}" python3 score.py --pairs 200) ;;
        study) (cd bench && python3 study.py --results results/h200-2026-11-29 results/h200-2026-11-29-decode) ;;
        dag|dag-adapt) adapt=; [ "$stage" = dag-adapt ] && adapt=--adaptations  # its own work folder and bench_dag_adapt.json
               (cd bench && timeout "${STAGE_TIMEOUT:-560}" python3 dag.py \
                    --results results/h200-2026-11-29 results/h200-2026-11-29-decode \
                    --new-tokens "${NEW_TOKENS:-150}" --timeout $(( ${STAGE_TIMEOUT:-560} - 90 )) $adapt) ;;
        syncs) (cd bench && timeout "${STAGE_TIMEOUT:-420}" python3 syncs.py) ;;
        warm) timeout 300 python3 tests/gpu/warm_cuda_check.py ;;
        *) echo "unknown stage $stage" ;;
    esac 2>&1 | grep --line-buffered -v -E "it/s\]|s/it\]|Warning|warn\(" | tee -a "$log" | tail -40
done
echo "=== done $(date +%T)" | tee -a "$log"
