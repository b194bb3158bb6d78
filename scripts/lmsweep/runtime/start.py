"""What a run starts and checks at its beginning, once (the Snakefile's onstart): local runs only.

- the GPUs a local run's jobs may use, and a `gpu` resource the machine lacks;
- one GPU per job on a machine with several (lmsweep.runtime.gpus);
- whether Snakemake was asked to train again (--forcerun finetune, --forceall);
- the warm fork server (lmsweep.runtime.warm_server), which the jobs find
  through the environment they inherit.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from lmsweep.runtime import gpus as devices
from lmsweep.runtime.warm_protocol import SOCKET_ENV, is_supported

RETRAIN_ENV = "LMSWEEP_RETRAIN"  # lmsweep.steps.finetune reads it
# The warm server imports torch, transformers, peft and bert-score before it listens; polls until it does.
WARM_START_POLLS = 600
WARM_START_POLL_S = 0.2


def RunSetupError(message: str):
    """A run that cannot start on this machine as configured (Snakemake prints it without a traceback)."""
    from snakemake.exceptions import WorkflowError

    return WorkflowError(message)


def _logger():
    from snakemake.logging import logger

    return logger


def runs_here(workflow) -> bool:
    """Jobs run on this machine (not on a cluster's nodes), and this is the run itself (not a job of it)."""
    return workflow.local_exec and not workflow.remote_exec and not workflow.subprocess_exec


def gpu_limit(workflow):
    limit = workflow.global_resources.get("gpu")
    return getattr(limit, "value", limit)


def check_local_gpu(workflow, config: dict) -> None:
    """A GPU for 4-bit, and enough for training? Snakemake scales a job's gpu down to the run's limit silently."""
    from lmsweep.configcheck import local_gpu_problems

    if runs_here(workflow) and not workflow.dryrun:
        problems = local_gpu_problems(config, gpu_limit(workflow))
        if problems:
            raise RunSetupError("config error (nothing was run):\n  - " + "\n  - ".join(problems))


def share_gpus(workflow, config: dict) -> None:
    """Local runs on a machine with GPUs: each GPU job claims its own devices (lmsweep.runtime.gpus)."""
    if not runs_here(workflow) or workflow.dryrun or config["device"] == "cpu":
        return
    visible = devices.visible_devices()
    if not visible:
        return
    os.environ[devices.LOCKS_ENV] = os.path.abspath(".snakemake/lmsweep-gpus")
    os.environ[devices.DEVICES_ENV] = ",".join(visible)
    limit = gpu_limit(workflow)
    if limit is not None and int(limit) > len(visible):
        raise RunSetupError(
            f"config error (nothing was run):\n  - this run may use {limit} GPUs at a time (--resources gpu={limit}), "
            f"but this machine shows {len(visible)} ({', '.join(visible)}); use --resources gpu={len(visible)}"
        )
    if limit is not None and int(limit) < len(visible):
        _logger().info(
            f"{len(visible)} GPUs on this machine; this run uses {limit} at a time: "
            f"--resources gpu={len(visible)} runs {len(visible)} GPU jobs at once, each on its own device"
        )


def mark_forced_training(workflow) -> None:
    """Tell this run's finetune jobs (environment: local forks, sbatch exports it) whether Snakemake was asked to
    train again (--forceall, --forcerun finetune or an adapter): then a finished run's checkpoints of the same
    identity are not reloaded (lmsweep.train)."""
    if workflow.remote_exec or workflow.subprocess_exec or workflow.dag_settings is None:
        return  # a cluster node's job is always run with --force: the submit host decided
    s = workflow.dag_settings
    named = list(s.forcerun) + (list(s.targets) if s.forcetargets else [])
    if s.forceall or any(str(f) == "finetune" or "results/finetune/" in str(f) for f in named):
        os.environ[RETRAIN_ENV] = "1"
    else:
        os.environ.pop(RETRAIN_ENV, None)


def start_warm_server(workflow, config: dict) -> None:
    """Start the warm server for a local run on Linux without conda envs (lmsweep.runtime.warm_server)."""
    import time

    from snakemake.settings.types import DeploymentMethod

    if (not config["warm_start"] or not runs_here(workflow)
            or DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method):
        return
    if not is_supported():
        _logger().warning(f"warm start: not on {sys.platform} (forking a preloaded process is safe on Linux only); "
                          "jobs run cold")
        return
    path = os.path.join(tempfile.mkdtemp(prefix="lmsweep-warm-"), "socket")
    os.makedirs("logs", exist_ok=True)
    scripts = Path(__file__).resolve().parents[2]
    # bitsandbytes stays hidden in the server whatever quantization says: its import initialises CUDA,
    # which would break every fork; 4-bit jobs import it in their own fork.
    server = subprocess.Popen(
        [sys.executable, str(scripts / "lmsweep" / "runtime" / "warm_server.py"), path, str(os.getpid())],
        stdout=open("logs/warm_start.log", "w"), stderr=subprocess.STDOUT,
        # The forks inherit the server's sys.path: keep the user's PYTHONPATH in it.
        env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in [str(scripts), os.environ.get("PYTHONPATH")]
                                                          if p)},
    )
    for _ in range(WARM_START_POLLS):
        if os.path.exists(path) or server.poll() is not None:
            break
        time.sleep(WARM_START_POLL_S)
    if os.path.exists(path):
        os.environ[SOCKET_ENV] = path
        _logger().info(f"warm start: job scripts run from one preloaded process ({path})")
    else:
        server.kill()
        _logger().warning("warm start: the server did not come up (logs/warm_start.log); jobs run cold")


def at_start(workflow, config: dict) -> None:
    """The Snakefile's onstart, in order."""
    mark_forced_training(workflow)
    check_local_gpu(workflow, config)
    share_gpus(workflow, config)
    start_warm_server(workflow, config)
