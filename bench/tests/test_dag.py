"""bench/dag.py, the reduced study the GPU machine runs, on a CPU: the workflow's GPU path as far as a CPU goes.

With CUDA_VISIBLE_DEVICES=0 every GPU job claims device 0 (lmsweep.runtime.gpus) and runs in a fork of the
warm server, as on a GPU workstation. The first run on the GPU machine hung there: the fork waited for the
claim its own job held.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.workflow


def test_the_reduced_study_runs_through_snakemake_with_gpu_claims_and_warm_forks(tmp_path):
    env = {**os.environ, "OUT": str(tmp_path / "out"), "CUDA_VISIBLE_DEVICES": "0"}
    work = tmp_path / "study"
    result = subprocess.run(
        [sys.executable, "dag.py", "--shape", "tiny", "--cpu", "--prompts", "24", "--train", "96",
         "--new-tokens", "16", "--work", str(work)],
        cwd=BENCH, env=env, capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    data = json.loads((tmp_path / "out" / "bench_dag.json").read_text())
    jobs = {}
    for row in data["rows"]:
        if row["step"] == "job":
            jobs[row["rule"]] = jobs.get(row["rule"], 0) + 1
    assert jobs == {"finetune": 1, "merge_adapter": 1, "generate": 5, "score": 5, "perplexity": 2}
    # each GPU job claimed device 0 (logged on its stderr before its log file opens: in Snakemake's output) ...
    said = (tmp_path / "out" / "dag_snakemake.log").read_text()
    assert said.count("running on GPU 0 (CUDA_VISIBLE_DEVICES=0)") == 14
    # ... and ran in a fork of the warm server, none cold
    logs = [p.read_text() for p in (work / "logs").rglob("*.log")] + [said]
    assert "warm start: job scripts run from one preloaded process" in said
    assert not [text for text in logs if "runs cold" in text]
    for name in ("dag_scores.csv", "dag_report.html", "dag_logs.tar.gz", "dag_snakemake.log"):
        assert (tmp_path / "out" / name).stat().st_size > 0
