"""Paired tests between runs on the same test examples, Holm-corrected over the study (rule compare).

    python scripts/compare.py --test results/prepare_data/test.jsonl \
        --scores results/score/*/*/*/rep*.json --perplexities results/perplexity/*/*.json \
        --out results/comparisons.csv

Each decoding config against the baseline, each pair of models under one
config, each fine-tuned model against its base; one row per metric and pair
(lmsweep.compare says which test made each number).
"""

import argparse


def run(test_path: str, score_files, perplexity_files, out_path: str, bleu: dict, statistics: dict,
        bertscore_rescaled: bool = False) -> None:
    from lmsweep.compare import compare
    from lmsweep.files import atomic_path

    table = compare(score_files, perplexity_files, test_path, bleu, statistics, bertscore_rescaled=bertscore_rescaled)
    with atomic_path(out_path) as tmp:
        table.to_csv(tmp, index=False)
    print(f"{len(table)} comparisons ({int(table.significant.sum())} significant, {int(table.identical.sum())} "
          f"identical) written to {out_path}")


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
