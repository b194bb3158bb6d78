"""What this machine can give the run's jobs: a GPU for 4-bit, and the GPUs a training job asks for."""

import os

def local_gpu_problems(config: dict, gpu_limit=None) -> list:
    """What this machine cannot give the run's jobs: checked for runs whose jobs run here.

    Checked when the run starts, not while the Snakefile is read: only then is
    it known whether jobs run here or on cluster nodes (the login node of a
    GPU cluster has no GPU, and need not). `gpu_limit` is the run's global
    `gpu` resource (None: unlimited).
    """
    problems = []
    if config["quantization"]["load_in_4bit"] and config["device"] != "cpu" and not cuda_visible():
        problems.append(
            "quantization.load_in_4bit: true needs a CUDA GPU (bitsandbytes 4-bit), and this machine shows "
            "none (no /dev/nvidiactl); run on a GPU node (e.g. --workflow-profile profiles/slurm) "
            "or set quantization.load_in_4bit: false"
        )
    resources = config["resources"]
    finetune = resources.get("finetune", {})
    key = "resources.finetune.gpus" if "gpus" in finetune else "resources.gpu_per_job"
    wanted = finetune.get("gpus", resources["gpu_per_job"])
    if isinstance(gpu_limit, int) and wanted > gpu_limit:
        # Snakemake shrinks a job's resource to the global limit without a word: one process would train.
        problems.append(
            f"{key}: {wanted} GPUs per training job, but this run has gpu={gpu_limit} (the default profile "
            f"declares one); Snakemake would run the job on {gpu_limit} GPU(s). Run with --resources gpu={wanted} "
            f"if this machine has them, or set {key}: {gpu_limit}"
        )
    return problems


def cuda_visible() -> bool:
    """A cheap look for an NVIDIA driver, without importing torch at parse time."""
    return os.path.exists("/dev/nvidiactl")
