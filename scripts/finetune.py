"""Fine-tune one LoRA adapter with TRL's SFTTrainer (rule finetune).

    python scripts/finetune.py --train results/prepare_data/train.jsonl \
        --base-model NousResearch/Llama-2-7b-hf --model llama2_7b \
        --adapter results/finetune/llama2_7b/adapter --params finetune_params.json

`--params` is a JSON file with the keys lora, training, load (revision,
trust_remote_code, quantization), seed and device, as in config.yaml.
A rerun resumes from the newest checkpoint under <adapter>/../checkpoints.

On several GPUs of one node, one training process per GPU (data parallel):

    accelerate launch --multi_gpu --num_processes 2 scripts/finetune.py --train ... --params ...

The rule does this itself when resources.finetune.gpus is above 1 (see launch()).
"""

import argparse
import json
import os
import sys
from pathlib import Path

RETRAIN_ENV = "LMSWEEP_RETRAIN"


def run(
    train_path: str,
    base_model: str,
    adapter_dir: str,
    loss_log: str,
    checkpoints: str,
    model: str,
    lora: dict,
    training: dict,
    load: dict,
    seed: int,
    device: str = "auto",
    threads: int = 1,
) -> dict:
    from lmsweep.train import finetune

    from lmsweep.models import load_revision

    return finetune(
        train_path, base_model, adapter_dir, loss_log, checkpoints, model_name=model,
        lora=lora, training=training, quantization=load["quantization"], seed=seed, device=device,
        revision=load_revision(load), trust_remote_code=load["trust_remote_code"], threads=threads,
        model_source=load.get("source"),
        # set by the Snakefile when this run forces training (--forcerun finetune, --forceall)
        retrain=os.environ.get(RETRAIN_ENV) == "1",
    )


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


def launch_command(
    processes: int,
    train: str,
    base_model: str,
    model: str,
    adapter: str,
    loss_log: str,
    checkpoints: str,
    params_file: str,
    threads: int,
    python: str = sys.executable,
) -> list:
    """`accelerate launch` of this script's main(), one process per GPU of this node."""
    return [
        python, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes),
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        # 0 = a free port: two such jobs on one node must not both take accelerate's 29500.
        "--main_process_port", "0",
        os.path.abspath(__file__),
        "--train", train, "--base-model", base_model, "--model", model, "--adapter", adapter,
        "--loss-log", loss_log, "--checkpoints", checkpoints, "--params", params_file,
        # The job's CPUs are shared by its processes.
        "--threads", str(max(1, threads // processes)),
    ]


def launch(processes: int, params: dict, params_file: str, log: str, **paths) -> None:
    """Become `accelerate launch` (never returns): params to a JSON file, output to the job's log."""
    Path(params_file).parent.mkdir(parents=True, exist_ok=True)
    Path(params_file).write_text(json.dumps(params, indent=2, sort_keys=True))
    command = launch_command(processes, params_file=params_file, **paths)
    log_fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.write(log_fd, f"launching {processes} training processes: {' '.join(command)}\n".encode())
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.execv(command[0], command)


def main(argv=None) -> None:
    import shutil
    import tempfile

    from lmsweep.files import existing_path

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", required=True, type=existing_path, help="train.jsonl from prepare_data")
    parser.add_argument("--base-model", required=True, help="Hub id or folder of the base model")
    parser.add_argument("--model", required=True, help="the model's short name (for messages)")
    parser.add_argument("--adapter", required=True, type=Path, help="output folder of the adapter")
    parser.add_argument("--params", required=True, type=existing_path, help="JSON file: lora, training, load, seed, device")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--loss-log", type=Path, default=None, help="default: <adapter>/../train_log.csv")
    parser.add_argument("--checkpoints", type=Path, default=None, help="default: <adapter>/../checkpoints")
    args = parser.parse_args(argv)
    try:
        params = json.loads(Path(args.params).read_text())
    except json.JSONDecodeError as err:
        parser.error(f"--params {args.params} is not valid JSON: {err}")
    missing = {"lora", "training", "load", "seed"} - set(params)
    if missing:
        parser.error(f"--params {args.params} lacks the key(s) {', '.join(sorted(missing))}")
    adapter = args.adapter
    loss_log = args.loss_log or args.adapter.parent / "train_log.csv"
    checkpoints = args.checkpoints or args.adapter.parent / "checkpoints"
    # Under accelerate launch (or torchrun) every process trains, in lockstep.
    # The first writes the adapter and loss log; the others write theirs to a
    # scratch folder that is dropped. Checkpoints are shared: the Trainer saves
    # them from the first process, and every process resumes from them.
    rank = int(os.environ.get("RANK", "0"))
    scratch = tempfile.mkdtemp(prefix=f"finetune-rank{rank}-") if rank else None
    if scratch:
        adapter, loss_log = Path(scratch) / "adapter", Path(scratch) / "train_log.csv"
    if "LOCAL_RANK" in os.environ:
        import torch

        if torch.cuda.is_available():
            # Each process on its own GPU before anything loads (4-bit models go to the current device).
            local = int(os.environ["LOCAL_RANK"])
            torch.cuda.set_device(local)
            props = torch.cuda.get_device_properties(local)
            bus = getattr(props, "pci_bus_id", "?")
            print(f"rank {rank} (local {local}): cuda:{local} {props.name}, PCI bus {bus}, "
                  f"CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')}", flush=True)
    try:
        run(
            args.train, args.base_model, str(adapter), str(loss_log), str(checkpoints), args.model,
            params["lora"], params["training"], params["load"], params["seed"], params.get("device", "auto"),
            args.threads,
        )
    finally:
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)


if "snakemake" in globals():
    from lmsweep.files import log_to
    from lmsweep.gpus import claim
    from lmsweep.warm import delegate

    p = snakemake.params
    if int(snakemake.resources.get("gpu", 0) or 0):
        # Its own GPUs on a machine with several (local runs); accelerate's processes inherit the claim.
        claim(max(p.processes, int(snakemake.resources.get("gpu", 0))))
    # Several GPUs: this process becomes `accelerate launch` (never the warm server, which
    # serves one-process jobs). The count comes from params, not from the gpu resource, which
    # Snakemake scales down to what the run declares; it sets the effective batch, so a change
    # of it reruns the adapter.
    processes = p.processes
    if processes > 1:
        log_to(snakemake.log[0])
        check_gpus(processes, p.device)
        launch(
            processes,
            {"lora": p.lora, "training": p.training, "load": p.load, "seed": p.seed, "device": p.device},
            params_file=os.path.join(p.checkpoints, "launch_params.json"), log=snakemake.log[0],
            train=snakemake.input.train, base_model=p.base_model, model=snakemake.wildcards.model,
            adapter=snakemake.output.adapter, loss_log=snakemake.output.loss, checkpoints=p.checkpoints,
            threads=snakemake.threads,
        )

    delegate()

    log_to(snakemake.log[0])
    run(
        snakemake.input.train, p.base_model, snakemake.output.adapter, snakemake.output.loss, p.checkpoints,
        snakemake.wildcards.model, p.lora, p.training, p.load, p.seed, p.device, snakemake.threads,
    )
elif __name__ == "__main__":
    main()
