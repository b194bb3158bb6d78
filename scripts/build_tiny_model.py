"""Build a tiny random-weight model of a real architecture, for the demo and tests (rule build_tiny_model).

    python scripts/build_tiny_model.py --train results/prepare_data/train.jsonl \
        --architecture llama --out results/build_tiny_model/tiny_llama --seed 42
"""

import argparse

from lmsweep.files import atomic_path, read_jsonl, seed_everything
from lmsweep.prompts import format_prompt

DEFAULT_SIZE = {
    "vocab_size": 1024, "hidden_size": 64, "intermediate_size": 128,
    "num_layers": 2, "num_heads": 4, "max_position_embeddings": 512,
}


def run(train_path: str, out_dir: str, build: dict, seed: int) -> None:
    import torch

    torch.set_num_threads(1)
    seed_everything(seed)
    from lmsweep import tiny

    texts = [format_prompt(r) + r["output"] for r in read_jsonl(train_path)]
    size = {**DEFAULT_SIZE, **{k: v for k, v in build.items() if k != "architecture"}}
    with atomic_path(out_dir, is_dir=True) as tmp:
        tiny.build(build["architecture"], texts, size, seed, tmp)
    print(f"built a tiny {build['architecture']} model in {out_dir}: {size}")


def main(argv=None) -> None:
    from lmsweep.files import existing_path

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", required=True, type=existing_path, help="train.jsonl the tokenizer is trained on")
    parser.add_argument("--architecture", required=True, choices=["llama", "mistral", "phi"])
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    run(args.train, args.out, {"architecture": args.architecture}, args.seed)


if "snakemake" in globals():
    from lmsweep.files import log_to
    from lmsweep.warm import delegate

    delegate()

    log_to(snakemake.log[0])
    run(snakemake.input.train, snakemake.output[0], snakemake.params.build, snakemake.params.seed)
elif __name__ == "__main__":
    main()
