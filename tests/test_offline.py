"""The demo needs no network: a reduced copy runs to the end inside a network namespace with no interfaces.

`unshare -n` (root) gives snakemake and every job it starts a network
namespace with only a down loopback: any attempt to reach the Hub, PyPI or a
DNS server fails at once. HF_HUB_OFFLINE=1 is set as a cluster job has it.

The reduced demo (one model, three decoding configs, 8 test prompts) lives in
tmp_path: `--directory tmp_path` makes it the working directory, where
`configfile: "config.yaml"` and results/ resolve, while scripts, envs and the
schema resolve next to `--snakefile`.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.workflow


def reduced_demo() -> dict:
    config = yaml.safe_load((REPO / "demo" / "config.yaml").read_text())
    config["dataset"].update(synthetic_size=240, test_size=8)
    config["models"] = {"tiny_phi": {"build": {"architecture": "phi"}}}
    config["training"]["epochs"] = 2
    config["decoding"]["sweep"] = {"top_k": [10], "num_beams": [2]}  # + baseline = 3 configs
    return config


@pytest.fixture(scope="module")
def offline():
    """The command prefix that cuts the network; skips where that is not possible."""
    if os.geteuid() != 0:
        pytest.skip("unshare -n needs root")
    if not shutil.which("unshare"):
        pytest.skip("unshare (util-linux) is not installed")
    reach = "import socket\ntry:\n socket.create_connection(('1.1.1.1', 53), timeout=3)\nexcept OSError:\n exit(0)\nexit(1)"
    probe = subprocess.run(["unshare", "-n", sys.executable, "-c", reach], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"unshare -n failed or left the network reachable: {probe.stderr.strip()[-300:]}")
    return ["unshare", "-n"]


def snakemake_offline(offline, workdir: Path, *args):
    env = {
        **os.environ, "HF_HUB_OFFLINE": "1",
        # The slurm executor plugin runs `scontrol show config` when snakemake imports it;
        # with no network, scontrol would wait 10 s for a controller it cannot reach.
        "SLURM_CONF": "/dev/null",
    }
    cmd = [*offline, "timeout", "-s", "KILL", "600", sys.executable, "-m", "snakemake",
           "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir), *args]
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, env=env)
    proc.text = proc.stdout + proc.stderr
    return proc


def test_the_demo_runs_with_the_network_cut(offline, tmp_path):
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(reduced_demo(), sort_keys=False))
    proc = snakemake_offline(offline, tmp_path, "--cores", "2")
    assert proc.returncode == 0, proc.text[-8000:]
    import pandas as pd

    scores = pd.read_csv(tmp_path / "results" / "scores.csv")
    generated = scores[scores.decoding != "teacher_forced"]
    assert sorted(generated[generated.variant == "finetuned"].decoding.unique()) == [
        "baseline", "num_beams_2", "top_k_10"]
    assert scores.value.notna().all()
    assert (tmp_path / "results" / "report" / "report.html").exists()
    # prefetch, too, knows that the demo needs nothing from the Hub.
    proc = snakemake_offline(offline, tmp_path, "--cores", "1", "prefetch")
    assert proc.returncode == 0, proc.text[-4000:]
    assert "nothing to fetch" in (tmp_path / "logs" / "prefetch" / "prefetch.log").read_text()
