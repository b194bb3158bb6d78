"""The workflow's runs, each made once per test session and shared by every test of its kind.

- `demo_run`: the demo, run for real in a copy of the workflow (its numbers, its report, its reruns).
- `reduced_run`: a reduced study (one model, two decoding configs, 8 test prompts), run once with the
  production's merged weights, with the network cut where that can be done, every job claiming a GPU
  and running in a fork of the warm server, as on a GPU workstation (the offline, SLURM,
  reproducibility and fault tests compare with it).

Dry runs read a shared run as it is, a change of the config given as a `--configfile` override beside
it. Tests that run jobs or damage files work on a private copy (`private_copy`), which costs a copy of
the results, not a run.
"""

import collections
import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
HF_TOKEN = "hf_lmsweepTestTokenNeverWritten0123456789"
WORKFLOW_FILES = ("Snakefile", "config.yaml", "config.schema.yaml", "rules", "scripts", "envs", "reports", "profiles")
OFFLINE_VARS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")


def copy_workflow(dest: Path, config: dict | None = None, folder: str = "demo") -> Path:
    """The workflow's files under `dest`, and a study folder `folder` holding `config` (default: the demo's)."""
    dest.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in WORKFLOW_FILES:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=ignore)
        else:
            shutil.copy2(src, dest / name)
    (dest / folder).mkdir()
    if config is None:
        shutil.copy2(REPO / "demo" / "config.yaml", dest / folder / "config.yaml")
    else:
        (dest / folder / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return dest


def snakemake(workflow: Path, *args, check=True, env=None, folder="demo", prefix=()):
    """Run snakemake on the study in `workflow`/`folder`, as a user would (`prefix`: e.g. `unshare -n`)."""
    cmd = [*prefix, sys.executable, "-m", "snakemake", "--directory", folder, *args]
    proc = subprocess.run(cmd, cwd=workflow, capture_output=True, text=True, env={**os.environ, **(env or {})})
    proc.text = proc.stdout + proc.stderr
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr[-6000:]}")
    return proc


def override(workflow: Path, config: dict, folder="demo") -> list:
    """The `--configfile` option that merges `config` into the study's config.yaml (as Snakemake merges it)."""
    text = yaml.safe_dump(config, sort_keys=True)
    path = workflow / folder / "overrides" / f"{hashlib.sha256(text.encode()).hexdigest()[:12]}.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    return ["--configfile", str(path)]


def planned_jobs(workflow: Path, *args, config: dict | None = None, folder="demo") -> collections.Counter:
    """Rule -> count of the jobs a dry run plans (empty when nothing is to be done); `args`: targets, options;
    `config`: a change of the config, merged in by a --configfile override."""
    extra = override(workflow, config, folder) if config else []
    proc = snakemake(workflow, *extra, *args, "--dry-run", "--quiet", "rules", folder=folder)
    counts = collections.Counter()
    match = re.search(r"^job\s+count\s*\n-+\s+-+\s*\n(.*?)^total", proc.text, re.M | re.S)
    if match:
        for line in match.group(1).strip().splitlines():
            rule, count = line.split()
            counts[rule] = int(count)
    elif "Nothing to be done" not in proc.text:
        raise AssertionError(f"cannot read the planned jobs:\n{proc.text}")
    return counts


def edit_config(workflow: Path, change, folder="demo") -> None:
    """Apply `change(config)` to the study's config.yaml in place (a private copy's)."""
    path = workflow / folder / "config.yaml"
    config = yaml.safe_load(path.read_text())
    change(config)
    path.write_text(yaml.safe_dump(config, sort_keys=False))


@contextlib.contextmanager
def edited(workflow: Path, module: str, old: str, new: str):
    """lmsweep's module `module` (under scripts/lmsweep/) with `old` replaced by `new`, restored afterwards."""
    path = workflow / "scripts" / "lmsweep" / module
    text = path.read_text()
    assert old in text, (module, old)
    path.write_text(text.replace(old, new, 1))
    try:
        yield path
    finally:
        path.write_text(text)


def copy_run(run: Path, dest: Path) -> Path:
    """A copy of a finished run (workflow, results and Snakemake's records), timestamps kept."""
    shutil.copytree(run, dest, symlinks=True, copy_function=shutil.copy2)
    return dest


# What training_info.json's cost holds that a rerun measures anew (lmsweep.trainlog.CostMeter).
TIMINGS = ("train_seconds", "gpu_seconds", "peak_gpu_memory_mb")


def digests(results: Path, skip=(".info.json", "merge_info.json", ".log")) -> dict:
    """{path: sha256} of every result under `results` but those that hold timings (the report, generation and
    merge records) and the checkpoints. PEFT writes an adapter's target modules from a set, in an order that
    moves with Python's hash seed: adapter_config.json is compared with its lists sorted. training_info.json is
    compared but for what its adapter cost in time and GPU memory (TIMINGS), measured anew by each run."""
    def content(path: Path) -> bytes:
        if path.name == "training_info.json":
            info = json.loads(path.read_text())
            info["cost"] = {k: v for k, v in info["cost"].items() if k not in TIMINGS}
            return json.dumps(info, sort_keys=True).encode()
        if path.name != "adapter_config.json":
            return path.read_bytes()
        config = json.loads(path.read_text())
        return json.dumps({k: sorted(v) if isinstance(v, list) else v for k, v in config.items()},
                          sort_keys=True).encode()

    return {str(p.relative_to(results)): hashlib.sha256(content(p)).hexdigest()
            for p in sorted(results.rglob("*")) if p.is_file() and not p.name.endswith(skip)
            and not {"report", "checkpoints"} & set(p.relative_to(results).parts)}


# --- the demo ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory):
    """The finished demo: the workflow copy with demo/results in it. Tests leave it as they found it."""
    workflow = copy_workflow(tmp_path_factory.mktemp("demo_run") / "workflow")
    # A Hub token in the environment, as users have it: it must never be written anywhere.
    snakemake(workflow, "--cores", "2", env={"HF_TOKEN": HF_TOKEN})
    return workflow


@pytest.fixture
def private_demo(demo_run, tmp_path):
    """A private copy of the finished demo, for a test that runs jobs or damages files."""
    return copy_run(demo_run, tmp_path / "workflow")


# --- the reduced study ---------------------------------------------------------------------------------------

REDUCED = "study"


def reduced_config(hf_home: Path | None = None) -> dict:
    """The demo cut to one model, baseline + top_k_10, 8 test prompts; the production's merged weights; GPU
    rules ask for a GPU (on SLURM: --gpus=1), device: auto runs them on the CPU of a machine without one."""
    config = yaml.safe_load((REPO / "demo" / "config.yaml").read_text())
    config["dataset"].update(synthetic_size=240, test_size=8)
    # The base variant is scored by perplexity only (fewer jobs).
    config["models"] = {"tiny_llama": {"build": {"architecture": "llama"}, "base_decoding": []}}
    # every record trains (no validation slice), one adapter (no adaptation sweep: the demo's covers it)
    config["training"].update(epochs=2, save_steps=10, validation_size=0)  # 26 steps: checkpoints at 10 and 20
    del config["adaptation"]
    config["decoding"]["sweep"] = {"top_k": [10]}
    config["inference"]["weights"] = "merged"
    config["resources"]["gpu_per_job"] = 1
    config["device"] = "auto"  # the CPU here (no CUDA driver), yet every GPU job claims a device as on a GPU
    if hf_home is not None:
        config["hf_home"] = str(hf_home)
    return config


def offline_prefix() -> list:
    """`unshare -n` where it cuts the network (root, util-linux), else nothing: HF_HUB_OFFLINE=1 alone."""
    if os.geteuid() != 0 or not shutil.which("unshare"):
        return []
    reach = "import socket\ntry:\n socket.create_connection(('1.1.1.1', 53), timeout=3)\nexcept OSError:\n exit(0)\nexit(1)"
    probe = subprocess.run(["unshare", "-n", sys.executable, "-c", reach], capture_output=True, text=True)
    return ["unshare", "-n"] if probe.returncode == 0 else []


@pytest.fixture(scope="session")
def reduced_run(tmp_path_factory):
    """The reduced study, run once: offline (the network cut where possible), GPU claims on device 0 and warm
    forks as on a one-GPU workstation. `.workflow`: the workflow folder; `.study`: its study folder; `.text`:
    what Snakemake said; `.offline`: whether the network was cut. Run in parallel (pytest -n), the first worker
    that needs it makes it and the others wait for it; every test reads it as it is or copies it."""
    from filelock import FileLock

    base = tmp_path_factory.getbasetemp()
    root = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "reduced_run"
    prefix = offline_prefix()
    env = {"HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": "0",
           # the slurm executor plugin runs `scontrol show config` when snakemake imports it; with no
           # network, scontrol would wait 10 s for a controller it cannot reach
           "SLURM_CONF": "/dev/null"}
    workflow, said = root / "workflow", root / "snakemake.out"
    with FileLock(f"{root}.lock"):
        if not said.exists():
            if root.exists():
                shutil.rmtree(root)  # a run that failed before: made again
            root.mkdir()
            copy_workflow(workflow, reduced_config(root / "hf-home"), folder=REDUCED)
            proc = snakemake(workflow, "--cores", "2", env=env, folder=REDUCED, prefix=prefix)
            said.write_text(proc.text)
    return SimpleNamespace(workflow=workflow, study=workflow / REDUCED, text=said.read_text(), offline=bool(prefix),
                           env=env, prefix=prefix)
