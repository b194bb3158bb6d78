"""Token perplexity, bits per byte and word perplexity of the reference answers, with or without
the adapter (rule perplexity). Bits per byte and word perplexity compare models with different
tokenizers; token perplexity compares the two variants of one model.

    python scripts/perplexity.py --test results/prepare_data/test.jsonl \
        --base-model NousResearch/Llama-2-7b-hf --adapter results/finetune/llama2_7b/adapter --out ppl.json
"""

import argparse


def run(
    test_path: str,
    base_model: str,
    adapter: str | None,
    out_path: str,
    per_example_path: str,
    load: dict,
    batch_size: int,
    seed: int,
    device: str = "auto",
    threads: int = 1,
    labels: dict | None = None,
) -> dict:
    from lmsweep.models import load_for_step

    model, tokenizer, device = load_for_step(base_model, adapter, load, device, threads, seed,
                                             name=(labels or {}).get("model", ""),
                                             merge=load.get("inference") == "merged")
    import pandas as pd

    from lmsweep.files import atomic_path, library_versions, read_jsonl, write_json
    from lmsweep.models import inference_path
    from lmsweep.generation import context_length
    from lmsweep.perplexity import answer_nll, bits_per_byte, count_bytes, count_words, encode, perplexity
    from lmsweep.perplexity import word_perplexity

    records = read_jsonl(test_path)
    context = context_length(model)
    per_example = answer_nll(model, tokenizer, records, batch_size, max_tokens=context)
    cut = [encode(tokenizer, r, context)[2] for r in records]
    table = pd.DataFrame({
        "id": [r["id"] for r in records],
        "nll": [n for n, _ in per_example],
        "tokens": [t for _, t in per_example],
        "bytes": [count_bytes(r["output"]) for r in records],
        "words": [count_words(r["output"]) for r in records],
        "tokens_cut": cut,
    })
    with atomic_path(per_example_path) as tmp:
        table.to_csv(tmp, index=False)
    if any(cut):
        print(f"{sum(1 for c in cut if c)} of {len(records)} examples were longer than the model's context of "
              f"{context} tokens: their prompts were cut from the start (tokens_cut in {per_example_path})")
    result = {
        **(labels or {}),
        "perplexity": perplexity(per_example),
        "bits_per_byte": bits_per_byte(table.nll, table.bytes),
        "word_perplexity": word_perplexity(table.nll, table.words),
        "answer_tokens": int(table.tokens.sum()),
        "answer_bytes": int(table.bytes.sum()),
        "answer_words": int(table.words.sum()),
        "examples_cut": sum(1 for c in cut if c),
        "n_examples": len(records),
        "signatures": {
            "perplexity": "exp(sum NLL / answer tokens)|answer+eos|teacher-forced|model's own tokens",
            "bits_per_byte": "sum NLL / (answer UTF-8 bytes * ln 2)|answer+eos|teacher-forced",
            "word_perplexity": "exp(sum NLL / answer words)|words: re.split(r'\\s+')|answer+eos|teacher-forced",
        },
        "base_model": base_model,
        "inference": inference_path(load, adapter),
        "model_source": load.get("source"),
        "adapter": adapter,
        "seed": seed,
        "versions": library_versions(),
    }
    write_json(out_path, result)
    print(f"perplexity {result['perplexity']:.4f} over {result['answer_tokens']} answer tokens, "
          f"{result['bits_per_byte']:.4f} bits per byte over {result['answer_bytes']} bytes")
    return result


def main(argv=None) -> None:
    from lmsweep.files import existing_path

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--test", required=True, type=existing_path)
    parser.add_argument("--base-model", required=True)
    parser.add_argument("--adapter", default=None, help="omit for the base model")
    parser.add_argument("--out", required=True, help="summary .json; per-example NLL beside it (.per_example.csv)")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--device", choices=["auto", "cuda", "cpu"], default="auto")
    parser.add_argument("--load-in-4bit", action="store_true")
    parser.add_argument("--merge", action="store_true", help="merge the adapter into the (dequantized) base first")
    args = parser.parse_args(argv)
    load = {"revision": None, "trust_remote_code": False, "quantization": {"load_in_4bit": args.load_in_4bit},
            "inference": "merged" if args.merge else "as_trained"}
    if not args.out.endswith(".json"):
        parser.error(f"--out {args.out} must end in .json")
    run(args.test, args.base_model, args.adapter, args.out, args.out.removesuffix(".json") + ".per_example.csv",
        load, args.batch_size, args.seed, args.device)


if "snakemake" in globals():
    from lmsweep.files import log_to
    from lmsweep.gpus import claim
    from lmsweep.warm import delegate

    claim(int(snakemake.resources.get("gpu", 0) or 0))  # its own GPU on a machine with several (local runs)
    delegate()

    log_to(snakemake.log[0])
    p = snakemake.params
    run(
        snakemake.input.test, p.base_model, snakemake.input.get("adapter") or None, snakemake.output.summary,
        snakemake.output.per_example, p.load, p.batch_size, p.seed, p.device, snakemake.threads, labels=dict(snakemake.wildcards.items()),
    )
elif __name__ == "__main__":
    main()
