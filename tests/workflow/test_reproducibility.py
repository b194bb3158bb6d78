"""Reproducibility on the reduced study (CPU): a rerun from scratch writes the same bytes, and a Snakemake run
killed during training ends where an uninterrupted one does. (What every output records of how it was made:
tests/workflow/test_demo.py; a second run from scratch on SLURM: tests/workflow/test_slurm.py.)
"""

import collections
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REDUCED, copy_run, digests, snakemake

pytestmark = pytest.mark.workflow


def test_a_rerun_from_scratch_writes_the_same_bytes(reduced_run, tmp_path):
    """--forcerun finetune on the reduced study: the adapter trained again from scratch (not reloaded from its
    finished checkpoint), merged, generated from, scored and its perplexity taken again (the base variant's
    does not depend on it); every result but timings is the same."""
    workflow = copy_run(reduced_run.workflow, tmp_path / "workflow")
    results = workflow / REDUCED / "results"
    before = digests(results)
    assert len([name for name in before if name.startswith("generate/")]) == 2
    proc = snakemake(workflow, "--cores", "2", "--forcerun", "finetune", folder=REDUCED, env=reduced_run.env,
                     prefix=reduced_run.prefix)
    ran = collections.Counter(re.findall(r"^(?:local)?rule (\w+):$", proc.text, re.M))
    assert ran == {"finetune": 1, "merge_adapter": 1, "generate": 2, "score": 2, "perplexity": 1, "check_scores": 1,
                   "aggregate": 1, "compare": 1, "report": 1, "all": 1}
    log = (workflow / REDUCED / "logs" / "finetune" / "tiny_llama.log").read_text()
    assert "training from scratch" in log and "nothing left to train" not in log
    after = digests(results)
    assert after.keys() == before.keys()
    assert [name for name in before if after[name] != before[name]] == []


# --- Snakemake killed during training --------------------------------------------------------------------------


def start_snakemake(workflow: Path, env: dict, *args, log: Path) -> subprocess.Popen:
    """Snakemake on the reduced study in the background, in a process group of its own (jobs and warm server
    included)."""
    return subprocess.Popen(
        [sys.executable, "-m", "snakemake", "--directory", REDUCED, *args],
        cwd=workflow, stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True,
        env={**os.environ, **env},
    )


def wait_for_checkpoint(workflow: Path, model: str, step: int, proc: subprocess.Popen, log: Path) -> None:
    checkpoints = workflow / REDUCED / "results" / "finetune" / model / "checkpoints"
    while not list(checkpoints.glob(f"*/checkpoint-{step}/trainer_state.json")):
        assert proc.poll() is None, log.read_text()[-3000:]
        time.sleep(0.05)


def wait_until_gone(group: int) -> None:
    """Until no process of the group is left (the orphaned job ends when its training does)."""
    while True:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)


def without_training(reduced_run, dest: Path) -> Path:
    """A copy of the reduced study whose adapter, loss log and checkpoints are gone (what came before is kept)."""
    workflow = copy_run(reduced_run.workflow, dest)
    shutil.rmtree(workflow / REDUCED / "results" / "finetune")
    return workflow


def assert_same_adapter(workflow: Path, reference: Path, model: str) -> None:
    import torch
    from safetensors.torch import load_file

    got_folder = workflow / REDUCED / "results" / "finetune" / model
    want_folder = reference / REDUCED / "results" / "finetune" / model
    got = load_file(got_folder / "adapter" / "adapter_model.safetensors")
    want = load_file(want_folder / "adapter" / "adapter_model.safetensors")
    assert got.keys() == want.keys()
    assert [k for k in want if not torch.equal(want[k], got[k])] == [], model
    assert (got_folder / "train_log.csv").read_bytes() == (want_folder / "train_log.csv").read_bytes(), model


TARGET = "results/finetune/tiny_llama/adapter"


def test_snakemake_killed_during_training_resumes_from_the_checkpoint(reduced_run, tmp_path):
    """Killed with all its jobs (a lost node): the lock is left; after --unlock a plain rerun resumes.

    The adapter and loss log are written to temporary names and renamed, so a
    killed job leaves no output: Snakemake reruns it for "Missing output
    files", with no --rerun-incomplete needed. The reduced study saves a
    checkpoint every 10 of 26 steps; the kill comes right after the one at step 10.
    """
    workflow = without_training(reduced_run, tmp_path / "workflow")
    log = tmp_path / "killed.log"
    run = start_snakemake(workflow, reduced_run.env, "--cores", "2", TARGET, log=log)
    wait_for_checkpoint(workflow, "tiny_llama", 10, run, log)
    os.killpg(run.pid, signal.SIGKILL)
    run.wait()
    wait_until_gone(run.pid)
    assert not (workflow / REDUCED / TARGET).exists()

    locked = snakemake(workflow, "--cores", "2", TARGET, check=False, folder=REDUCED, env=reduced_run.env)
    assert locked.returncode != 0
    assert "LockException" in locked.text and "It can be removed with the --unlock argument" in locked.text
    snakemake(workflow, "--unlock", folder=REDUCED)
    rerun = snakemake(workflow, "--cores", "2", TARGET, folder=REDUCED, env=reduced_run.env)
    assert f"reason: Missing output files: {TARGET}" in rerun.text

    job_log = (workflow / REDUCED / "logs" / "finetune" / "tiny_llama.log").read_text()
    info = json.loads((workflow / REDUCED / TARGET / "training_info.json").read_text())
    key = info["identity"]["key"]  # the checkpoint folder: the run's identity
    assert f"resuming from checkpoint results/finetune/tiny_llama/checkpoints/{key}/checkpoint-10" in job_log
    assert_same_adapter(workflow, reduced_run.workflow, "tiny_llama")


def test_snakemake_killed_alone_needs_rerun_incomplete_and_does_not_train_twice(reduced_run, tmp_path):
    """Only Snakemake killed: its training job carries on and writes the adapter, unrecorded.

    Snakemake then calls the outputs incomplete; --rerun-incomplete runs the job
    again, which finds the run's last checkpoint and trains no further.
    """
    workflow = without_training(reduced_run, tmp_path / "workflow")
    log = tmp_path / "killed.log"
    run = start_snakemake(workflow, reduced_run.env, "--cores", "2", TARGET, log=log)
    wait_for_checkpoint(workflow, "tiny_llama", 10, run, log)
    run.send_signal(signal.SIGKILL)
    run.wait()
    wait_until_gone(run.pid)  # the orphaned job finishes training
    assert (workflow / REDUCED / TARGET / "adapter_model.safetensors").exists()

    snakemake(workflow, "--unlock", folder=REDUCED)
    refused = snakemake(workflow, "--cores", "2", TARGET, check=False, folder=REDUCED, env=reduced_run.env)
    assert refused.returncode != 0
    assert "IncompleteFilesException" in refused.text
    assert "To re-generate the files rerun your command with the --rerun-incomplete flag." in refused.text
    assert f"Incomplete files:\n{TARGET}\nresults/finetune/tiny_llama/train_log.csv" in refused.text
    snakemake(workflow, "--cores", "2", "--rerun-incomplete", TARGET, folder=REDUCED, env=reduced_run.env)

    job_log = (workflow / REDUCED / "logs" / "finetune" / "tiny_llama.log").read_text()
    steps = json.loads((reduced_run.study / TARGET / "training_info.json").read_text())["global_step"]
    assert f"checkpoint-{steps} is the last step of this run: loading it, nothing left to train" in job_log
    assert_same_adapter(workflow, reduced_run.workflow, "tiny_llama")
