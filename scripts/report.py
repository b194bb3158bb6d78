"""Write the study's report, Markdown and self-contained HTML (rule report).

    python scripts/report.py --scores results/scores.csv --manifest results/prepare_data/manifest.json \
        --adapters results/finetune/*/adapter --out-dir results/report
"""

import argparse
import json
from pathlib import Path


def provenance(manifest_path, adapters, summaries, dataset: dict, baseline: dict, seed: int,
               warm_start: bool = False) -> dict:
    """Where every number came from: data, adapters, decoding, metric signatures, versions."""
    manifest = json.loads(Path(manifest_path).read_text())
    models = {}
    for adapter in adapters:
        info = json.loads((Path(adapter) / "training_info.json").read_text())
        models[info["model"]] = {
            "base_model": info["settings"]["base_model"],
            "lora": info["settings"]["lora"],
            "target_modules": info["target_modules"],
            "training": info["settings"]["training"],
            "quantization": info["settings"]["quantization"],
            "global_step": info["global_step"],
            "train_loss": info["train_loss"],
            "trust_remote_code": info["settings"].get("trust_remote_code", False),
        }
    signatures, settings, versions = {}, {}, {}
    for path in summaries:
        summary = json.loads(Path(path).read_text())
        for metric, result in summary["metrics"].items():
            signatures[metric] = result["signature"]
        settings[summary["decoding"]] = summary["settings"]
        versions = summary["versions"]
    return {
        "dataset": dataset["source"],
        "dataset_sha256": manifest["sha256"],
        "dropped_records": manifest["dropped"],
        "n_train": manifest["n_train"],
        "n_test": manifest["n_test"],
        "seed": seed,
        "baseline": baseline,
        "decoding_configs": settings,
        "models": models,
        "metric_signatures": signatures,
        "versions": versions,
        "warm_start": warm_start,
    }


def run(scores_csv, manifest_path, adapters, summaries, out_dir, dataset: dict, baseline: dict, seed: int,
        benchmarks=(), warm_start: bool = False) -> dict:
    from lmsweep.report import build

    record = provenance(manifest_path, adapters, summaries, dataset, baseline, seed, warm_start)
    return build(scores_csv, record, out_dir, benchmarks)


def main(argv=None) -> None:
    from lmsweep.files import existing_path

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scores", required=True, type=existing_path)
    parser.add_argument("--manifest", required=True, type=existing_path)
    parser.add_argument("--adapters", nargs="+", required=True, type=existing_path)
    parser.add_argument("--summaries", nargs="*", default=[])
    parser.add_argument("--benchmarks", nargs="*", default=[], help="benchmark .tsv files of the jobs")
    parser.add_argument("--out-dir", required=True)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    manifest = json.loads(Path(args.manifest).read_text())
    run(args.scores, args.manifest, args.adapters, args.summaries, args.out_dir,
        {"source": manifest["source"]}, {}, args.seed, args.benchmarks)


if "snakemake" in globals():
    from lmsweep.files import log_to
    from lmsweep.warm import delegate

    delegate()

    log_to(snakemake.log[0])
    i, p = snakemake.input, snakemake.params
    run(i.scores, i.manifest, i.adapters, i.summaries, Path(snakemake.output.html).parent,
        p.dataset, p.baseline, p.seed, i.benchmarks, p.warm_start)
elif __name__ == "__main__":
    main()
