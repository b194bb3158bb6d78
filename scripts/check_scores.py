"""Check every score and perplexity file before the tables are rebuilt from them (rule check_scores).

    python scripts/check_scores.py --test results/prepare_data/test.jsonl \
        --scores results/score/*/*/*/rep*.json --perplexities results/perplexity/*/*.json \
        --out results/check_scores/checked.json

Snakemake removes a job's old outputs before it runs the job, so a damaged
per-example file found by aggregate itself would cost scores.csv and
comparisons.csv their previous, correct numbers. Checked here first, in a
step of its own, a damaged file stops the run with its name and the fix, and
the tables keep what they had. Writes the list of checked files and their
sha256.
"""

import argparse


def run(test_path: str, score_files, perplexity_files, out_path: str, bertscore_rescaled: bool = False) -> dict:
    from lmsweep.aggregate import load_perplexities, load_runs
    from lmsweep.files import sha256_file, write_json

    runs = load_runs(score_files, test_path, bertscore_rescaled)
    perplexities = load_perplexities(perplexity_files, test_path)
    files = sorted(map(str, [*score_files, *perplexity_files]))
    tables = [f.removesuffix(".json") + ".per_example.csv" for f in files]
    checked = {
        "test": test_path, "runs": len(runs), "replicates": sum(len(r.tables) for r in runs.values()),
        "perplexities": len(perplexities),
        "sha256": {path: sha256_file(path) for path in [test_path, *files, *tables]},
    }
    write_json(out_path, checked)
    print(f"checked {len(files)} summaries and their per-example files: {len(runs)} runs, "
          f"{len(perplexities)} perplexities")
    return checked


def main(argv=None) -> None:
    from lmsweep.files import existing_path

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--test", required=True, type=existing_path)
    parser.add_argument("--scores", nargs="+", required=True, type=existing_path)
    parser.add_argument("--perplexities", nargs="*", default=[], type=existing_path)
    parser.add_argument("--out", required=True)
    parser.add_argument("--bertscore-rescaled", action="store_true", help="BERTScore was rescaled with its baseline")
    args = parser.parse_args(argv)
    run(args.test, args.scores, args.perplexities, args.out, args.bertscore_rescaled)


if "snakemake" in globals():
    from lmsweep.files import log_to
    from lmsweep.warm import delegate

    delegate()

    log_to(snakemake.log[0])
    i = snakemake.input
    run(i.test, i.scores, i.perplexities, snakemake.output[0], snakemake.params.bertscore_rescaled)
elif __name__ == "__main__":
    main()
