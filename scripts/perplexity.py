"""Perplexity of the reference answers, with or without the adapter (rule perplexity).

    python scripts/perplexity.py --test results/prepare_data/test.jsonl \
        --base-model NousResearch/Llama-2-7b-hf --adapter results/finetune/llama2_7b/adapter --out ppl.json
"""

import argparse


def run(
    test_path: str,
    base_model: str,
    adapter: str | None,
    out_path: str,
    load: dict,
    batch_size: int,
    seed: int,
    device: str = "auto",
    threads: int = 1,
    labels: dict | None = None,
) -> dict:
    from lmsweep.models import skip_bitsandbytes

    skip_bitsandbytes(load["quantization"].get("load_in_4bit", False))
    import torch

    torch.set_num_threads(threads)
    from lmsweep.files import library_versions, read_jsonl, seed_everything, write_json
    from lmsweep.models import load_for_inference, load_tokenizer, resolve_device
    from lmsweep.perplexity import answer_nll, perplexity

    seed_everything(seed)
    device = resolve_device(device)
    records = read_jsonl(test_path)
    tokenizer = load_tokenizer(base_model, load["revision"], load["trust_remote_code"])
    model = load_for_inference(
        base_model, adapter, device, revision=load["revision"],
        trust_remote_code=load["trust_remote_code"], quantization=load["quantization"],
    )
    per_example = answer_nll(model, tokenizer, records, batch_size)
    result = {
        **(labels or {}),
        "perplexity": perplexity(per_example),
        "answer_tokens": sum(t for _, t in per_example),
        "n_examples": len(records),
        "signature": "exp(sum NLL / answer tokens)|answer+eos|teacher-forced",
        "base_model": base_model,
        "adapter": adapter,
        "seed": seed,
        "versions": library_versions(),
    }
    write_json(out_path, result)
    print(f"perplexity {result['perplexity']:.4f} over {result['answer_tokens']} answer tokens")
    return result


def main(argv=None) -> None:
    from lmsweep.files import existing_path

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--test", required=True, type=existing_path)
    parser.add_argument("--base-model", required=True)
    parser.add_argument("--adapter", default=None, help="omit for the base model")
    parser.add_argument("--out", required=True)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--device", choices=["auto", "cuda", "cpu"], default="auto")
    parser.add_argument("--load-in-4bit", action="store_true")
    args = parser.parse_args(argv)
    load = {"revision": None, "trust_remote_code": False, "quantization": {"load_in_4bit": args.load_in_4bit}}
    run(args.test, args.base_model, args.adapter, args.out, load, args.batch_size, args.seed, args.device)


if "snakemake" in globals():
    from lmsweep.files import log_to
    from lmsweep.warm import delegate

    delegate()

    log_to(snakemake.log[0])
    p = snakemake.params
    run(
        snakemake.input.test, p.base_model, snakemake.input.adapter or None, snakemake.output[0],
        p.load, p.batch_size, p.seed, p.device, snakemake.threads, labels=dict(snakemake.wildcards.items()),
    )
elif __name__ == "__main__":
    main()
