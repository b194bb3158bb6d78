"""How many bootstrap resamples an interval needs: its endpoints' Monte-Carlo spread across seeds.

    python bench/intervals.py --demo demo/results        # after a demo run
    python bench/intervals.py --demo demo/results --resamples 1000,2000,5000,10000 --seeds 20

A bootstrap interval is itself a Monte-Carlo estimate: another resampling
seed moves its endpoints. For each metric and resample count this computes
lmsweep's interval (lmsweep.stats, as aggregate does) under `--seeds` seeds
and reports each endpoint's standard deviation across seeds against the
interval's width. Two seeds' endpoints differ by less than a tenth of the
width in 95% of cases when sd < width / (10 * 1.96 * sqrt(2)) = width / 27.7;
the smallest count that meets it for every metric is the default to choose.

Data: the demo's per-example numbers (24 test examples: each fine-tuned model
at the baseline config) and, for a test split of the study's size, 200
examples drawn with replacement from the demo's pooled per-example rows (the
same kinds of values, eight times as many). Writes OUT/bench_intervals.json.
"""

import argparse
import json
import math
from pathlib import Path

import common  # noqa: F401  (puts scripts/ on sys.path)
import numpy as np

CRITERION = 10 * 1.96 * math.sqrt(2)  # width / sd needed: two seeds within a tenth of the width, 95% of the time


def demo_data(results: Path, n: int | None, seed: int = 0) -> dict:
    """{metric: arrays for the interval}: the demo's fine-tuned baseline runs, or n rows drawn from them."""
    import pandas as pd

    from lmsweep.stats import bleu_statistics

    frames = [pd.read_csv(p, keep_default_na=False)
              for p in sorted(results.glob("score/*/finetuned/baseline/rep0.per_example.csv"))]
    ppl = [pd.read_csv(p) for p in sorted(results.glob("perplexity/*/finetuned.per_example.csv"))]
    if n is None:  # one model's run, as one row of scores.csv is
        frames, ppl = frames[:1], ppl[:1]
    scores, ratios = pd.concat(frames, ignore_index=True), pd.concat(ppl, ignore_index=True)
    if n is not None:
        rng = np.random.default_rng(seed)
        scores = scores.iloc[rng.integers(0, len(scores), n)].reset_index(drop=True)
        ratios = ratios.iloc[rng.integers(0, len(ratios), n)].reset_index(drop=True)
    text = ratios["nll_text"] if "nll_text" in ratios else ratios["nll"]
    return {
        "bleu": bleu_statistics(scores.prediction.tolist(), scores.reference.tolist()),
        "rouge_l": scores.rouge_l.to_numpy(float),
        "bertscore_f1": scores.bertscore_f1.to_numpy(float),
        "bits_per_byte": (text.to_numpy(float), ratios.bytes.to_numpy(float)),
        "perplexity": (ratios.nll.to_numpy(float), ratios.tokens.to_numpy(float)),
    }


def interval(metric: str, data, resamples: int, seed: int):
    from lmsweep import stats

    if metric == "bleu":
        return stats.bleu_interval_from_stats(data, n_resamples=resamples, seed=seed)
    if metric == "bits_per_byte":
        return stats.bits_per_byte_interval(*data, n_resamples=resamples, seed=seed)
    if metric == "perplexity":
        return stats.perplexity_interval(*data, n_resamples=resamples, seed=seed)
    return stats.mean_interval(data, n_resamples=resamples, seed=seed)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--demo", type=Path, default=Path("demo/results"), help="a finished demo's results/")
    parser.add_argument("--resamples", default="1000,2000,5000,10000")
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--out", type=Path, default=Path("bench-out"))
    args = parser.parse_args(argv)
    rows = []
    for label, n in (("demo, 24 examples", None), ("200 examples drawn from the demo's", 200)):
        data = demo_data(args.demo, n)
        for resamples in [int(r) for r in args.resamples.split(",")]:
            for metric, values in data.items():
                got = [interval(metric, values, resamples, seed) for seed in range(1, args.seeds + 1)]
                lows, highs = np.array([g.ci_low for g in got]), np.array([g.ci_high for g in got])
                width = float(np.median(highs - lows))
                sd = max(float(np.std(lows, ddof=1)), float(np.std(highs, ddof=1)))
                row = {"data": label, "metric": metric, "resamples": resamples, "value": got[0].value,
                       "width": width, "sd_low": float(np.std(lows, ddof=1)), "sd_high": float(np.std(highs, ddof=1)),
                       "width_over_sd": width / sd if sd else math.inf,
                       "max_move_over_width": float(max(np.ptp(lows), np.ptp(highs)) / width) if width else 0.0}
                row["meets"] = row["width_over_sd"] >= CRITERION
                rows.append(row)
                print(f"{label:36} {metric:13} R={resamples:6}: width {width:9.4g}, endpoint sd {sd:9.3g} "
                      f"(width/sd {row['width_over_sd']:6.1f}; need {CRITERION:.1f}), largest move across "
                      f"{args.seeds} seeds {row['max_move_over_width']:.3f} of the width", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_intervals.json").write_text(json.dumps({"criterion_width_over_sd": CRITERION,
                                                               "seeds": args.seeds, "rows": rows}, indent=2) + "\n")
    for resamples in sorted({r["resamples"] for r in rows}):
        if all(r["meets"] for r in rows if r["resamples"] == resamples):
            print(f"smallest resample count that meets the criterion for every metric: {resamples}")
            break
    else:
        print("no resample count tried meets the criterion for every metric")


if __name__ == "__main__":
    main()
