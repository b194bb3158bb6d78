"""Fine-tune one LoRA adapter with TRL's SFTTrainer (rule finetune).

    python scripts/finetune.py --train results/prepare_data/train.jsonl \
        --base-model NousResearch/Llama-2-7b-hf --model llama2_7b \
        --adapter results/finetune/llama2_7b/adapter --params finetune_params.json

`--params` is a JSON file with the keys lora, training, load (revision,
trust_remote_code, quantization), seed and device, as in config.yaml.
A rerun resumes from the newest checkpoint under <adapter>/../checkpoints.
"""

import argparse
import json
from pathlib import Path


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

    return finetune(
        train_path, base_model, adapter_dir, loss_log, checkpoints, model_name=model,
        lora=lora, training=training, quantization=load["quantization"], seed=seed, device=device,
        revision=load["revision"], trust_remote_code=load["trust_remote_code"], threads=threads,
    )


def main(argv=None) -> None:
    from lmsweep.files import existing_path

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", required=True, type=existing_path, help="train.jsonl from prepare_data")
    parser.add_argument("--base-model", required=True, help="Hub id or folder of the base model")
    parser.add_argument("--model", required=True, help="the model's short name (for messages)")
    parser.add_argument("--adapter", required=True, type=Path, help="output folder of the adapter")
    parser.add_argument("--params", required=True, type=existing_path, help="JSON file: lora, training, load, seed, device")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    try:
        params = json.loads(Path(args.params).read_text())
    except json.JSONDecodeError as err:
        parser.error(f"--params {args.params} is not valid JSON: {err}")
    missing = {"lora", "training", "load", "seed"} - set(params)
    if missing:
        parser.error(f"--params {args.params} lacks the key(s) {', '.join(sorted(missing))}")
    run(
        args.train, args.base_model, str(args.adapter), str(args.adapter.parent / "train_log.csv"),
        str(args.adapter.parent / "checkpoints"), args.model, params["lora"], params["training"],
        params["load"], params["seed"], params.get("device", "auto"), args.threads,
    )


if "snakemake" in globals():
    from lmsweep.files import log_to
    from lmsweep.warm import delegate

    delegate()

    log_to(snakemake.log[0])
    p = snakemake.params
    run(
        snakemake.input.train, p.base_model, snakemake.output.adapter, snakemake.output.loss, p.checkpoints,
        snakemake.wildcards.model, p.lora, p.training, p.load, p.seed, p.device, snakemake.threads,
    )
elif __name__ == "__main__":
    main()
