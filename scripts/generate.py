"""Generate answers for every test prompt under one decoding config (rule generate).

    python scripts/generate.py --test results/prepare_data/test.jsonl \
        --base-model NousResearch/Llama-2-7b-hf --adapter results/finetune/llama2_7b/adapter \
        --settings '{"do_sample": true, "top_k": 50, "num_beams": 1, "temperature": 0.8, "max_new_tokens": 256}' \
        --out predictions.jsonl

Without --adapter the base model alone generates (the `base` variant).
"""

import argparse
import json


def run(
    test_path: str,
    base_model: str,
    adapter: str | None,
    out_path: str,
    settings: dict,
    load: dict,
    batch_size: int,
    seed: int,
    device: str = "auto",
    threads: int = 1,
    labels: dict | None = None,
) -> None:
    from lmsweep.models import skip_bitsandbytes

    skip_bitsandbytes(load["quantization"].get("load_in_4bit", False))
    import torch

    torch.set_num_threads(threads)
    from lmsweep.files import library_versions, read_jsonl, seed_everything, write_jsonl
    from lmsweep.generation import generate
    from lmsweep.models import load_for_inference, load_tokenizer, resolve_device
    from lmsweep.prompts import format_prompt

    seed_everything(seed)
    device = resolve_device(device)
    records = read_jsonl(test_path)
    tokenizer = load_tokenizer(base_model, load["revision"], load["trust_remote_code"], padding_side="left")
    model = load_for_inference(
        base_model, adapter, device, revision=load["revision"],
        trust_remote_code=load["trust_remote_code"], quantization=load["quantization"],
    )
    predictions = generate(model, tokenizer, records, settings, batch_size, seed)
    meta = {**(labels or {}), "settings": settings, "seed": seed, "base_model": base_model,
            "adapter": adapter, "versions": library_versions()}
    write_jsonl(out_path, [
        {"id": r["id"], "prompt": format_prompt(r), "reference": r["output"], "prediction": p, **meta}
        for r, p in zip(records, predictions)
    ])
    print(f"{len(records)} predictions written to {out_path}")


def main(argv=None) -> None:
    from lmsweep.files import existing_path

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--test", required=True, type=existing_path, help="test.jsonl from prepare_data")
    parser.add_argument("--base-model", required=True)
    parser.add_argument("--adapter", default=None, help="LoRA adapter folder; omit for the base model")
    parser.add_argument("--settings", required=True, type=json.loads, help="generate() settings as JSON")
    parser.add_argument("--out", required=True)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--device", choices=["auto", "cuda", "cpu"], default="auto")
    parser.add_argument("--load-in-4bit", action="store_true")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    load = {"revision": None, "trust_remote_code": False, "quantization": {"load_in_4bit": args.load_in_4bit}}
    run(args.test, args.base_model, args.adapter, args.out, args.settings, load, args.batch_size,
        args.seed, args.device, args.threads)


if "snakemake" in globals():
    from lmsweep.files import log_to
    from lmsweep.warm import delegate

    delegate()

    log_to(snakemake.log[0])
    p = snakemake.params
    run(
        snakemake.input.test, p.base_model, snakemake.input.adapter or None, snakemake.output[0],
        p.settings, p.load, p.batch_size, p.seed, p.device, snakemake.threads,
        labels=dict(snakemake.wildcards.items()),
    )
elif __name__ == "__main__":
    main()
