"""Rule finetune: one LoRA adapter per base model and adaptation config (lmsweep.adaptation), trained with TRL's
SFTTrainer (lmsweep.train), resumably.

On several GPUs of one node, one training process per GPU (data parallel):
the job becomes `accelerate launch` of itself (launch), each rank runs the
same job from a job file (lmsweep.runtime.cli), and the first writes the
adapter. The count comes from the settings, not from the `gpu` resource,
which Snakemake scales down to what the run declares; it sets the effective
batch, so a change of it reruns the adapter.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass

from lmsweep.records import TrainingInfo
from lmsweep.settings import Load, Lora, Training

log = logging.getLogger(__name__)
# Set by the run's start (lmsweep.runtime.start) when Snakemake was asked to train again.
RETRAIN_ENV = "LMSWEEP_RETRAIN"


@dataclass(frozen=True)
class Settings:
    model: str
    base_model: str  # the folder or Hub id the base loads from
    load: Load
    lora: Lora
    training: Training
    seed: int
    device: str
    checkpoints: str  # where a killed run's checkpoints wait for its rerun
    processes: int
    prompt_format: str = "alpaca"  # or chat_template (lmsweep.prompts)
    adaptation: str | None = None  # the adaptation config (lmsweep.adaptation); None: the baseline adapter


@dataclass(frozen=True)
class Paths:
    train: str
    base: list  # the built model folder, when the workflow built it
    adapter: str
    loss: str


def gpus_to_claim(settings: Settings, resource: int) -> int:
    """Devices a local job holds: one per training process (accelerate's ranks inherit the claim)."""
    return max(settings.processes, resource) if resource else 0


def check_gpus(processes: int, device: str) -> None:
    """Refuse to start more training processes than this job has GPUs (on CUDA), before anything loads."""
    if processes <= 1 or device == "cpu":
        return
    import torch

    visible = torch.cuda.device_count()
    if device == "auto" and visible == 0:
        return  # no GPU at all: the processes train on the CPU (gloo), as device: auto says
    if visible < processes:
        shown = os.environ.get("CUDA_VISIBLE_DEVICES")
        raise SystemExit(
            f"resources.finetune.gpus is {processes}, but this job sees {visible} GPU(s)"
            + (f" (CUDA_VISIBLE_DEVICES={shown})" if shown is not None else "")
            + f": give the job {processes} GPUs (on SLURM the rule asks for --gpus={processes}) "
            f"or lower resources.finetune.gpus to {visible}"
        )


def launch_command(job_file: str, processes: int, threads: int, python: str = sys.executable) -> list:
    """`accelerate launch` of this step's script on `job_file`, one process per GPU of this node."""
    script = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                          "finetune.py")
    return [
        python, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes),
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        # 0 = a free port: two such jobs on one node must not both take accelerate's 29500.
        "--main_process_port", "0",
        script, "--job", job_file,
        # The job's CPUs are shared by its processes.
        "--threads", str(max(1, threads // processes)),
    ]


def before_delegate(job) -> None:
    """Several training processes: become `accelerate launch` (never returns); else return."""
    settings = job.settings
    if settings.processes <= 1 or "LOCAL_RANK" in os.environ:
        return
    from lmsweep.runtime.cli import write_job
    from lmsweep.runtime.logs import log_to

    if job.log:
        log_to(job.log)
    check_gpus(settings.processes, settings.device)
    job_file = os.path.join(settings.checkpoints, "launch_job.json")
    write_job(job, job_file)
    command = launch_command(job_file, settings.processes, job.threads)
    log.info(f"launching {settings.processes} training processes: {' '.join(command)}")
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    if job.log:
        fd = os.open(job.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
    os.execv(command[0], command)


def run(settings: Settings, paths: Paths, threads: int = 1) -> TrainingInfo:
    import shutil
    import tempfile
    from pathlib import Path

    from lmsweep.train import train_adapter

    adapter, loss = paths.adapter, paths.loss
    # Under accelerate launch (or torchrun) every process trains, in lockstep. The first writes the adapter
    # and loss log; the others write theirs to a scratch folder that is dropped. Checkpoints are shared: the
    # Trainer saves them from the first process, and every process resumes from them.
    rank = int(os.environ.get("RANK", "0"))
    scratch = tempfile.mkdtemp(prefix=f"finetune-rank{rank}-") if rank else None
    if scratch:
        adapter, loss = str(Path(scratch) / "adapter"), str(Path(scratch) / "train_log.csv")
    if "LOCAL_RANK" in os.environ:
        import torch

        if torch.cuda.is_available():
            # Each process on its own GPU before anything loads (4-bit models go to the current device).
            local = int(os.environ["LOCAL_RANK"])
            torch.cuda.set_device(local)
            props = torch.cuda.get_device_properties(local)
            log.info(f"rank {rank} (local {local}): cuda:{local} {props.name}, PCI bus "
                     f"{getattr(props, 'pci_bus_id', '?')}, CUDA_VISIBLE_DEVICES="
                     f"{os.environ.get('CUDA_VISIBLE_DEVICES')}")
    try:
        return train_adapter(
            paths.train, settings.base_model, adapter, loss, settings.checkpoints, model_name=settings.model,
            lora=settings.lora, training=settings.training, load=settings.load, seed=settings.seed,
            device=settings.device, threads=threads, prompt_format=settings.prompt_format,
            adaptation=settings.adaptation,
            # set at the run's start when Snakemake was asked to train again (--forcerun finetune, --forceall)
            retrain=os.environ.get(RETRAIN_ENV) == "1",
        )
    finally:
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)
