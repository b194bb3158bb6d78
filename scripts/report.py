"""Write the study's report, Markdown and self-contained HTML (rule report).

    python scripts/report.py --test results/prepare_data/test.jsonl --scores results/scores.csv \
        --comparisons results/comparisons.csv --manifest results/prepare_data/manifest.json \
        --adapters results/finetune/*/adapter --summaries results/score/*/*/*/rep*.json \
        --generation-info results/generate/*/*/*/rep*.info.json --out-dir results/report
"""

import argparse
from pathlib import Path


def run(test_path, scores_csv, comparisons_csv, manifest_path, adapters, summaries, generation_info, out_dir,
        dataset: dict, baseline: dict, seed: int, statistics: dict, benchmarks=(), warm_start: bool = False,
        perplexities=(), sweep_parameters=None, bertscore_rescaled: bool = False) -> dict:
    from lmsweep.aggregate import load_runs
    from lmsweep.provenance import provenance
    from lmsweep.report import build

    record = provenance(manifest_path, adapters, summaries, generation_info, dataset, baseline, seed, statistics,
                        warm_start, perplexities)
    runs = load_runs(summaries, test_path, bertscore_rescaled)
    return build(scores_csv, comparisons_csv, record, out_dir, runs, generation_info, benchmarks, sweep_parameters)


def main(argv=None) -> None:
    import json

    from lmsweep.aggregate import add_statistics_arguments, statistics_from_args
    from lmsweep.files import existing_path

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--test", required=True, type=existing_path)
    parser.add_argument("--scores", required=True, type=existing_path)
    parser.add_argument("--comparisons", required=True, type=existing_path)
    parser.add_argument("--manifest", required=True, type=existing_path)
    parser.add_argument("--adapters", nargs="+", required=True, type=existing_path)
    parser.add_argument("--summaries", nargs="+", required=True, type=existing_path)
    parser.add_argument("--generation-info", nargs="*", default=[], type=existing_path)
    parser.add_argument("--perplexities", nargs="*", default=[], type=existing_path, help="JSON files from perplexity")
    parser.add_argument("--benchmarks", nargs="*", default=[], help="benchmark .tsv files of the jobs")
    parser.add_argument("--out-dir", required=True)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--bertscore-rescaled", action="store_true", help="BERTScore was rescaled with its baseline")
    add_statistics_arguments(parser)
    args = parser.parse_args(argv)
    manifest = json.loads(Path(args.manifest).read_text())
    baseline = {}
    for path in args.summaries:
        summary = json.loads(Path(path).read_text())
        if summary.get("decoding") == "baseline":
            baseline = summary.get("settings") or {}
    run(args.test, args.scores, args.comparisons, args.manifest, args.adapters, args.summaries,
        args.generation_info, args.out_dir, {"source": manifest["source"]}, baseline, args.seed,
        statistics_from_args(args)[1], args.benchmarks, perplexities=args.perplexities,
        bertscore_rescaled=args.bertscore_rescaled)


if "snakemake" in globals():
    from lmsweep.files import log_to
    from lmsweep.warm import delegate

    delegate()

    log_to(snakemake.log[0])
    i, p = snakemake.input, snakemake.params
    run(i.test, i.scores, i.comparisons, i.manifest, i.adapters, i.summaries, i.generation_info,
        Path(snakemake.output.html).parent, p.dataset, p.baseline, p.seed, p.statistics, i.benchmarks, p.warm_start,
        i.perplexities, p.sweep_parameters, p.bertscore_rescaled)
elif __name__ == "__main__":
    main()
