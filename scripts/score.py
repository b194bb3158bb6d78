"""Score one file of predictions with BLEU, ROUGE-L and BERTScore (rule score).

    python scripts/score.py --predictions results/generate/llama2_7b/finetuned/baseline/rep0.jsonl \
        --test results/prepare_data/test.jsonl --out scores.json --per-example per_example.csv \
        --bertscore-model roberta-large --bertscore-layer 17
"""

import argparse
import csv


def run(
    predictions_path: str,
    test_path: str,
    summary_path: str,
    per_example_path: str,
    bleu: dict,
    rouge: dict,
    bertscore: dict,
    seed: int,
    device: str = "auto",
    threads: int = 1,
    labels: dict | None = None,
) -> dict:
    # The predictions are checked against the test split (and the run's labels against its path) before
    # anything heavy is imported; the references scored are the test split's, never the file's own.
    from lmsweep.checks import read_predictions, test_records

    rows = read_predictions(predictions_path, test_path, labels)
    references = test_records(test_path)
    import torch

    torch.set_num_threads(threads)
    import pandas as pd

    from lmsweep import metrics
    from lmsweep.files import atomic_path, library_versions, seed_everything, write_json
    from lmsweep.models import resolve_device

    seed_everything(seed)
    preds = [r["prediction"] for r in rows]
    refs = [references[r["id"]]["output"] for r in rows]
    results = {
        "bleu": metrics.bleu(preds, refs, **bleu),
        "rouge_l": metrics.rouge_l(preds, refs, **rouge),
        "bertscore_f1": metrics.bertscore(preds, refs, device=resolve_device(device), **bertscore),
    }
    table = pd.DataFrame({"id": [r["id"] for r in rows], "prediction": preds, "reference": refs})
    for name, result in results.items():
        table[name] = result["per_example"]
    for column in ("new_tokens", "hit_max_new_tokens", "prompt_tokens_cut"):
        table[column] = [r.get(column) for r in rows]
    first = rows[0]
    labels = labels or {k: first.get(k) for k in ("model", "variant", "decoding", "replicate")}
    table["seed"] = seed  # the CSV travels alone; the signatures are in the summary JSON beside it
    table["replicate"] = int(labels.get("replicate") or 0)
    with atomic_path(per_example_path) as tmp:
        # Every text quoted: an answer may hold any character, a bare carriage return included,
        # which the default quoting leaves unquoted and a CSV reader then takes for a line break.
        table.to_csv(tmp, index=False, quoting=csv.QUOTE_NONNUMERIC)
    summary = {
        "model": labels["model"],
        "variant": labels["variant"],
        "decoding": labels["decoding"],
        "replicate": int(labels.get("replicate") or 0),
        "sweep": first.get("sweep"),
        "settings": first.get("settings"),
        "generation_config": first.get("generation_config"),
        "inference": first.get("inference"),  # which weights made the answers (as trained, merged)
        "n_examples": len(rows),
        "empty_predictions": sum(not p.strip() for p in preds),
        "hit_max_new_tokens": sum(bool(r.get("hit_max_new_tokens")) for r in rows),
        "seed": seed,
        "metrics": {k: {"score": v["score"], "signature": v["signature"]} for k, v in results.items()},
        "bertscore_settings": bertscore,
        "versions": library_versions(),
    }
    write_json(summary_path, summary)
    print({k: round(v["score"], 4) for k, v in results.items()})
    return summary


def main(argv=None) -> None:
    from lmsweep.files import existing_path

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--predictions", required=True, type=existing_path, help="JSONL from generate")
    parser.add_argument("--test", required=True, type=existing_path,
                        help="test.jsonl the predictions were made for (every id must have one prediction)")
    parser.add_argument("--out", required=True, help="summary JSON")
    parser.add_argument("--per-example", required=True, help="per-example CSV")
    parser.add_argument("--bleu-tokenize", default="13a")
    parser.add_argument("--no-stemmer", action="store_true", help="ROUGE-L without Porter stemming")
    parser.add_argument("--bertscore-model", default="roberta-large")
    parser.add_argument("--bertscore-layer", type=int, default=17)
    parser.add_argument("--bertscore-batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--device", choices=["auto", "cuda", "cpu"], default="auto")
    args = parser.parse_args(argv)
    run(
        args.predictions, args.test, args.out, args.per_example, {"tokenize": args.bleu_tokenize},
        {"use_stemmer": not args.no_stemmer},
        {"model_type": args.bertscore_model, "num_layers": args.bertscore_layer,
         "batch_size": args.bertscore_batch_size, "lang": "en", "rescale_with_baseline": False},
        args.seed, args.device,
    )


if "snakemake" in globals():
    from lmsweep.files import log_to
    from lmsweep.gpus import claim
    from lmsweep.warm import delegate

    claim(int(snakemake.resources.get("gpu", 0) or 0))  # its own GPU on a machine with several (local runs)
    delegate()

    log_to(snakemake.log[0])
    p = snakemake.params
    w = snakemake.wildcards
    run(
        snakemake.input.predictions, snakemake.input.test, snakemake.output.summary, snakemake.output.per_example,
        p.bleu, p.rouge, p.bertscore, p.seed, p.device, snakemake.threads,
        labels={"model": w.model, "variant": w.variant, "decoding": w.decoding, "replicate": int(w.rep)},
    )
elif __name__ == "__main__":
    main()
