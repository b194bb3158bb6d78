"""Collect all scores and perplexities into one tidy CSV (rule aggregate).

    python scripts/aggregate.py --scores results/score/*/*/*.json \
        --perplexities results/perplexity/*/*.json --out results/scores.csv
"""

import argparse

from lmsweep.aggregate import aggregate
from lmsweep.files import atomic_path


def run(score_files, perplexity_files, out_path: str, moved: dict) -> None:
    table = aggregate(score_files, perplexity_files, moved)
    with atomic_path(out_path) as tmp:
        table.to_csv(tmp, index=False)
    print(f"{len(table)} rows written to {out_path}")


def main(argv=None) -> None:
    from lmsweep.files import existing_path

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scores", nargs="+", required=True, type=existing_path, help="summary JSON files from score")
    parser.add_argument("--perplexities", nargs="*", default=[], type=existing_path, help="JSON files from perplexity")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    run(args.scores, args.perplexities, args.out, moved={})


if "snakemake" in globals():
    from lmsweep.files import log_to
    from lmsweep.warm import delegate

    delegate()

    log_to(snakemake.log[0])
    run(snakemake.input.scores, snakemake.input.perplexities, snakemake.output[0], snakemake.params.moved)
elif __name__ == "__main__":
    main()
