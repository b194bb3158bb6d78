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
    from dataclasses import asdict

    import pandas as pd

    from lmsweep.files import atomic_path, library_versions, read_jsonl, write_json
    from lmsweep.models import context_length, inference_path
    from lmsweep.perplexity import SIGNATURES, answer_nll, bits_per_byte, perplexity, word_perplexity

    records = read_jsonl(test_path)
    context = context_length(model)
    scored = answer_nll(model, tokenizer, records, batch_size, max_tokens=context)
    table = pd.DataFrame([{"id": r["id"], **asdict(s)} for r, s in zip(records, scored)])
    with atomic_path(per_example_path) as tmp:
        table.to_csv(tmp, index=False)
    prompts_cut = int((table.prompt_tokens_cut > 0).sum())
    answers_cut = int((table.bytes_cut > 0).sum())
    if prompts_cut:
        print(f"{prompts_cut} of {len(records)} examples were longer than the model's context of {context} tokens: "
              f"their prompts were cut from the start (prompt_tokens_cut in {per_example_path})")
    if answers_cut:
        print(f"warning: {answers_cut} of {len(records)} reference answers are longer than the model's context of "
              f"{context} tokens on their own: only their first {int(table.bytes.sum())} of "
              f"{int(table.bytes.sum() + table.bytes_cut.sum())} bytes are scored, and bits per byte and word "
              f"perplexity count only those (bytes_cut in {per_example_path})")
    result = {
        **(labels or {}),
        "perplexity": perplexity(table.nll, table.tokens),
        "bits_per_byte": bits_per_byte(table.nll_text, table.bytes),
        "word_perplexity": word_perplexity(table.nll_text, table.words),
        "answer_tokens": int(table.tokens.sum()),
        "answer_bytes": int(table.bytes.sum()),
        "answer_words": int(table.words.sum()),
        "examples_cut": int((table.prompt_tokens_cut + table.answer_tokens_cut > 0).sum()),
        "answers_cut": answers_cut,
        "bytes_cut": int(table.bytes_cut.sum()),
        "n_examples": len(records),
        "signatures": SIGNATURES,
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
