"""Rule aggregate: every result in one tidy table, each number with its interval.

A run's numbers pool its seed replicates: per-example scores are averaged
over them; corpus BLEU is computed from sacreBLEU's statistics summed over
them (BLEU of all replicates' answers as one corpus). Intervals resample test
examples, each with all its replicates (lmsweep.stats), so they measure how
much the number would move on other prompts like these; `replicate_sd`
beside them says how much it moves with the sampling seed alone.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from lmsweep.settings import Bleu, Statistics
from lmsweep.vocabulary import HIGHER_IS_BETTER, HYGIENE, METRICS, TEACHER_FORCED, TEXT

log = logging.getLogger(__name__)
COLUMNS = [
    "model", "variant", "weights", "decoding", "metric", "value", "ci_low", "ci_high", "higher_is_better", "n_examples",
    "replicates", "replicate_sd", "replicate_min", "replicate_max", "sweep_parameter", "sweep_value",
    "interval", "signature", "seed", "versions",
]


@dataclass(frozen=True)
class Settings:
    bleu: Bleu
    statistics: Statistics
    bertscore_rescaled: bool


@dataclass(frozen=True)
class Paths:
    checked: str  # check_scores ran first: a damaged file stops the run before scores.csv is removed
    test: str
    scores: list
    per_example: list
    perplexities: list
    perplexity_examples: list
    table: str


def versions_text(versions: dict) -> str:
    """Library versions as one cell: 'bert-score=0.3.13;peft=0.21.2;...'."""
    return ";".join(f"{k}={v}" for k, v in sorted((versions or {}).items()) if v)


def _interval_text(result) -> str:
    return f"{result.method}, {result.n_resamples} resamples, seed {result.seed}, {result.confidence_level:.0%}"


def _options(statistics: Statistics) -> dict:
    return dict(n_resamples=statistics.resamples, seed=statistics.seed, confidence_level=statistics.confidence)


def run_rows(run, tokenize: str, statistics: Statistics) -> list:
    """The rows of one run: each metric and hygiene rate, pooled over replicates, with its interval."""
    from lmsweep import stats

    first = run.summaries[0]
    parameter, value = run.sweep
    rows = []
    for metric in TEXT + HYGIENE:
        if metric == "bleu":
            result = stats.bleu_interval_from_stats(run.bleu_stats(tokenize), tokenize=tokenize,
                                                    **_options(statistics))
        else:
            result = stats.mean_interval(run.per_example(metric), **_options(statistics))
        if metric in TEXT:
            by_seed = [s.metrics[metric]["score"] for s in run.summaries]
            signature = first.metrics[metric]["signature"]
        else:
            by_seed = [float(t[metric].mean()) for t in run.tables]
            signature = METRICS[metric].meaning
        spread = stats.replicate_spread(by_seed)
        rows.append({
            "model": run.model, "variant": run.variant, "weights": first.inference,
            "decoding": run.decoding, "metric": metric,
            "value": result.value, "ci_low": result.ci_low, "ci_high": result.ci_high,
            "higher_is_better": HIGHER_IS_BETTER[metric], "n_examples": first.n_examples,
            "replicates": spread.n_seeds, "replicate_sd": spread.std, "replicate_min": spread.min,
            "replicate_max": spread.max, "sweep_parameter": parameter, "sweep_value": value,
            "interval": _interval_text(result), "signature": signature, "seed": first.seed,
            "versions": versions_text(first.versions),
        })
    return rows


def perplexity_rows(summary, table, statistics: Statistics) -> list:
    from lmsweep import stats

    results = {
        "perplexity": stats.perplexity_interval(table.nll, table.tokens, **_options(statistics)),
        # The answers' own tokens (no EOS) over the units of their text, as lm-evaluation-harness counts them.
        "bits_per_byte": stats.bits_per_byte_interval(table.nll_text, table.bytes, **_options(statistics)),
        # exp(sum NLL / sum words): the perplexity formula over words
        "word_perplexity": stats.perplexity_interval(table.nll_text, table.words, **_options(statistics)),
    }
    return [{
        "model": summary.model, "variant": summary.variant, "weights": summary.inference,
        "decoding": TEACHER_FORCED, "metric": metric,
        "value": result.value, "ci_low": result.ci_low, "ci_high": result.ci_high,
        "higher_is_better": False, "n_examples": summary.n_examples, "replicates": 1,
        "replicate_sd": None, "replicate_min": None, "replicate_max": None,
        "sweep_parameter": None, "sweep_value": None, "interval": _interval_text(result),
        "signature": summary.signatures[metric], "seed": summary.seed,
        "versions": versions_text(summary.versions),
    } for metric, result in results.items()]


def scores_table(score_files, perplexity_files, test_path, settings: Settings):
    """The tidy table: one row per (model, variant, decoding, metric)."""
    import pandas as pd

    from lmsweep.runs import load_perplexities, load_runs

    rows = []
    runs = load_runs(score_files, test_path, settings.bertscore_rescaled)
    log.info(f"{len(runs)} runs, {settings.statistics.resamples} bootstrap resamples per interval")
    step = max(1, len(runs) // 10)
    for done, run_ in enumerate(runs.values(), start=1):
        rows += run_rows(run_, settings.bleu.tokenize, settings.statistics)
        if done % step == 0 or done == len(runs):
            log.info(f"intervals of {done} of {len(runs)} runs")
    for summary, table in load_perplexities(perplexity_files, test_path).values():
        rows += perplexity_rows(summary, table, settings.statistics)
    table = pd.DataFrame(rows, columns=COLUMNS)
    return table.sort_values(["model", "variant", "metric", "decoding"], kind="stable").reset_index(drop=True)


def run(settings: Settings, paths: Paths, threads: int = 1):
    from lmsweep.io import atomic_path

    table = scores_table(paths.scores, paths.perplexities, paths.test, settings)
    with atomic_path(paths.table) as tmp:
        table.to_csv(tmp, index=False)
    log.info(f"{len(table)} rows written to {paths.table}")
    return table
