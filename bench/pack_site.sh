#!/usr/bin/env bash
# Packs the wheelhouse for an offline GPU host into .gpu/site.tar.xz (about 17 MB), for bench/run_gpu.sh:
# our pins of transformers, peft, trl, datasets, bitsandbytes (its CUDA 13.0 library only), the scoring
# packages, and snakemake with what it needs beyond the host's own Python packages (torch, accelerate,
# numpy, pandas; pulp without its solver binaries: run_gpu.sh's DAG stage schedules greedily). Run on a
# machine with the internet, in the repository's root, with the venv active; copy .gpu/ to the host.
set -euo pipefail
cd "$(dirname "$0")/.."
py=(--only-binary=:all: --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64
    --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)
work=$(mktemp -d)
pins() { grep -E "^($1)==" requirements.txt; }
{
    pins "transformers|peft|trl|datasets|bitsandbytes|bert-score|snakemake"
    # their needs that the host's Python lacks, at the versions this venv holds
    python - <<'EOF'
import importlib.metadata as md
for name in ("dill", "multiprocess", "nltk", "annotated-types", "argparse-dataclass", "conda-inject",
             "configargparse", "docutils", "dpath", "fastjsonschema", "gitdb", "gitpython", "greenlet",
             "humanfriendly", "immutables", "jsonschema", "jsonschema-specifications", "jupyter-core", "nbformat",
             "platformdirs", "pulp", "pydantic", "pydantic-core", "referencing", "rpds-py", "smart-open", "smmap",
             "snakemake-interface-common", "snakemake-interface-executor-plugins",
             "snakemake-interface-logger-plugins", "snakemake-interface-report-plugins",
             "snakemake-interface-scheduler-plugins", "snakemake-interface-storage-plugins", "sqlalchemy",
             "sqlmodel", "tenacity", "throttler", "traitlets", "typing-inspection", "yte"):
    print(f"{name}=={md.version(name)}")
EOF
} > "$work/want.txt"
python -m pip download -q --no-deps "${py[@]}" -d "$work/whl" -r "$work/want.txt"
# pure Python, published as source only: built into wheels here
python -m pip wheel -q --no-deps -w "$work/whl" "$(pins rouge-score)" \
    "connection-pool==$(python -c 'import importlib.metadata as m; print(m.version("connection-pool"))')"
python -m pip install -q --no-deps --no-compile "${py[@]}" --target "$work/site" "$work"/whl/*.whl
find "$work/site/bitsandbytes" -name 'libbitsandbytes_*.so' ! -name '*cuda130*' -delete
rm -rf "$work/site/pulp/solverdir/cbc" "$work/site/bin"
find "$work/site" -name __pycache__ -prune -exec rm -rf {} +
mkdir -p .gpu  # ignored (.gitignore)
tar -C "$work/site" -cJf .gpu/site.tar.xz .
rm -rf "$work"
ls -la .gpu/site.tar.xz
