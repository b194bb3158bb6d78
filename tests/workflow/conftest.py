"""The demo, run once for real per test session, in a copy of the workflow.

Tests that change the study (configs, scripts) work on their own copy of the
finished demo, so they never touch the repository or each other.
"""

import collections
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
HF_TOKEN = "hf_lmsweepTestTokenNeverWritten0123456789"
WORKFLOW_FILES = ("Snakefile", "config.yaml", "config.schema.yaml", "rules", "scripts", "envs", "reports", "profiles")


def copy_workflow(dest: Path) -> Path:
    """The workflow's files and the demo config under `dest` (no results)."""
    dest.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in WORKFLOW_FILES:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=ignore)
        else:
            shutil.copy2(src, dest / name)
    (dest / "demo").mkdir()
    shutil.copy2(REPO / "demo" / "config.yaml", dest / "demo" / "config.yaml")
    return dest


def snakemake(workflow: Path, *args, timeout=900, check=True, env=None):
    """Run snakemake on the demo of `workflow`, as a user would."""
    cmd = [sys.executable, "-m", "snakemake", "--directory", "demo", *args]
    proc = subprocess.run(
        cmd, cwd=workflow, capture_output=True, text=True, timeout=timeout,
        env={**os.environ, **(env or {})},
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr[-6000:]}")
    return proc


def planned_jobs(workflow: Path, *args) -> collections.Counter:
    """Rule -> count of the jobs a dry run plans (empty when nothing is to be done); `args`: targets, options."""
    proc = snakemake(workflow, *args, "--dry-run", "--quiet", "rules")
    text = proc.stdout + proc.stderr
    counts = collections.Counter()
    match = re.search(r"^job\s+count\s*\n-+\s+-+\s*\n(.*?)^total", text, re.M | re.S)
    if match:
        for line in match.group(1).strip().splitlines():
            rule, count = line.split()
            counts[rule] = int(count)
    elif "Nothing to be done" not in text:
        raise AssertionError(f"cannot read the planned jobs:\n{text}")
    return counts


def edit_config(workflow: Path, change) -> None:
    """Apply `change(config)` to the demo's config.yaml in place."""
    path = workflow / "demo" / "config.yaml"
    config = yaml.safe_load(path.read_text())
    change(config)
    path.write_text(yaml.safe_dump(config, sort_keys=False))


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory):
    """A finished demo run: the workflow copy with demo/results in it."""
    workflow = copy_workflow(tmp_path_factory.mktemp("demo_run") / "workflow")
    # A Hub token in the environment, as users have it: it must never be written anywhere.
    snakemake(workflow, "--cores", "2", env={"HF_TOKEN": HF_TOKEN})
    return workflow


@pytest.fixture
def finished_demo(demo_run, tmp_path):
    """A private copy of the finished demo, timestamps kept, for tests that change it."""
    dest = tmp_path / "workflow"
    shutil.copytree(demo_run, dest, symlinks=True, copy_function=shutil.copy2)
    return dest
