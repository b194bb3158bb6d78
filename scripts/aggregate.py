"""Collect every score and perplexity into one tidy CSV, each number with its interval (rule aggregate).

    python scripts/aggregate.py --test results/prepare_data/test.jsonl \
        --scores results/score/*/*/*/rep*.json --perplexities results/perplexity/*/*.json \
        --out results/scores.csv

Each summary's per-example CSV is read from beside it, and every file is
checked against the test split first. Intervals: --resamples bootstrap
resamples with --stats-seed (config: statistics).
"""

import argparse


def run(test_path: str, score_files, perplexity_files, out_path: str, bleu: dict, statistics: dict,
        bertscore_rescaled: bool = False) -> None:
    from lmsweep.aggregate import aggregate
    from lmsweep.files import atomic_path

    table = aggregate(score_files, perplexity_files, test_path, bleu, statistics, bertscore_rescaled)
    with atomic_path(out_path) as tmp:
        table.to_csv(tmp, index=False)
    print(f"{len(table)} rows written to {out_path}")


def main(argv=None) -> None:
    from lmsweep.aggregate import add_run_arguments, statistics_from_args

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(parser)
    args = parser.parse_args(argv)
    bleu, statistics = statistics_from_args(args)
    run(args.test, args.scores, args.perplexities, args.out, bleu, statistics, args.bertscore_rescaled)


if "snakemake" in globals():
    from lmsweep.files import log_to
    from lmsweep.warm import delegate

    delegate()

    log_to(snakemake.log[0])
    i, p = snakemake.input, snakemake.params
    run(i.test, i.scores, i.perplexities, snakemake.output[0], p.bleu, p.statistics, p.bertscore_rescaled)
elif __name__ == "__main__":
    main()
