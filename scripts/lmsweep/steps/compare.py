"""Rule compare: paired comparisons on the same test examples, corrected for their number.

Three families of tests, every metric each, make Holm's family:

- each decoding config against the baseline config, same model and variant
  (how a decoding parameter matters);
- each pair of models under the same decoding config and variant (which
  model is best); perplexity across models only as bits per byte and word
  perplexity, which do not depend on the tokenizer;
- each model's fine-tuned variant against its base model (what fine-tuning
  bought), under every config the base model ran, and in perplexity;
- each adaptation config's adapter against the model's baseline adapter
  (how an adaptation setting matters: lmsweep.adaptation), under every
  config the swept adapters ran (adaptation.decoding), and in perplexity,
  all three measures (one tokenizer).

Beside them, descriptive rows that are not tests: per model, swept parameter
and metric, each value of the parameter (the baseline's value included)
against the value that scored best for that metric. The best value was
chosen by looking at the same data, so a p-value there would be biased
towards significance (a test after selection); those rows carry the
difference and its interval only, no p-value, and are not in Holm's family.
They never repeat a test either: a best that is the baseline would have
repeated a "decoding vs baseline" test.

B is compared with A as B - A. The `test` column names how each p-value was
made (lmsweep.stats): the exact sign-flip test or, above 40 differing
examples, the paired t-test for means and for perplexities whose A and B
count the same tokens, bytes or words; sacreBLEU's paired bootstrap for BLEU
and a swap permutation test for other perplexities, both Monte Carlo. A
Monte-Carlo p-value that its resampling floor could carry across the level
Holm holds it to is redrawn with more resamples (statistics.max_resamples);
`settled` says whether that decided it. Holm's correction runs over every
test of the study at once: `m` in the report is the number of rows with
`in_holm_family`. Two runs whose answers are identical, replicate by
replicate, are reported as identical, not tested; nor is a metric on which
no example's score differs (its p-value would be 1, and only raise m).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from itertools import combinations

from lmsweep.settings import Bleu, Statistics
from lmsweep.vocabulary import ACROSS_MODELS, PERPLEXITY, TEACHER_FORCED, TEXT, better

log = logging.getLogger(__name__)

COLUMNS = [
    "family", "metric", "model_a", "variant_a", "decoding_a", "model_b", "variant_b", "decoding_b",
    "a", "b", "difference", "ci_low", "ci_high", "p_value", "p_adjusted", "significant", "better", "identical",
    "in_holm_family", "holm_level", "settled", "test", "resamples", "p_resamples", "n_examples", "replicates_a",
    "replicates_b",
]
TESTED_FAMILIES = ("decoding vs baseline", "model vs model", "fine-tuned vs base", "adaptation vs baseline")
# The variants that are not adaptation configs: the baseline adapter and the base model.
NOT_ADAPTATIONS = ("finetuned", "base")
DESCRIPTIVE = "sweep value vs best"


@dataclass(frozen=True)
class Settings:
    bleu: Bleu
    statistics: Statistics
    bertscore_rescaled: bool


@dataclass(frozen=True)
class Paths:
    checked: str  # check_scores ran first: a damaged file stops the run before comparisons.csv is removed
    test: str
    scores: list
    per_example: list
    perplexities: list
    perplexity_examples: list
    table: str


def pairs(runs: dict, baseline: str = "baseline"):
    """(family, run A, run B) for every comparison the study makes."""
    keys = set(runs)
    models = sorted({m for m, _, _ in keys})
    for (model, variant, decoding) in sorted(keys):
        if variant == "finetuned" and decoding != baseline and (model, variant, baseline) in keys:
            yield "decoding vs baseline", runs[(model, variant, baseline)], runs[(model, variant, decoding)]
    for decoding in sorted({d for _, v, d in keys if v == "finetuned"}):
        for a, b in combinations(models, 2):
            if (a, "finetuned", decoding) in keys and (b, "finetuned", decoding) in keys:
                yield "model vs model", runs[(a, "finetuned", decoding)], runs[(b, "finetuned", decoding)]
    for (model, variant, decoding) in sorted(keys):
        if variant == "base" and (model, "finetuned", decoding) in keys:
            yield "fine-tuned vs base", runs[(model, "base", decoding)], runs[(model, "finetuned", decoding)]
    for (model, variant, decoding) in sorted(keys):
        if variant not in NOT_ADAPTATIONS and (model, "finetuned", decoding) in keys:
            yield "adaptation vs baseline", runs[(model, "finetuned", decoding)], runs[(model, variant, decoding)]


def sweep_candidates(runs: dict, baseline: str = "baseline") -> dict:
    """{(model, parameter): [(value, run)]}: the fine-tuned runs of each sweep, the baseline's value included."""
    out = {}
    for (model, variant, decoding), run in sorted(runs.items()):
        parameter, value = run.sweep
        if variant == "finetuned" and parameter is not None:
            out.setdefault((model, parameter), []).append((value, run))
    for (model, parameter), candidates in out.items():
        base = runs.get((model, "finetuned", baseline))
        if base is not None and parameter in (base.summaries[0].settings or {}):
            candidates.append((base.summaries[0].settings[parameter], base))
    return out


def best_value_pairs(runs: dict, tokenize: str):
    """(metric, best run, other run) for each sweep: every value against the best one for the metric."""
    from lmsweep.stats import bleu_score

    for (model, parameter), candidates in sweep_candidates(runs).items():
        for metric in TEXT:
            def point(run):
                return bleu_score(run.bleu_stats(tokenize), tokenize) if metric == "bleu" \
                    else float(run.per_example(metric).mean())

            scored = [(point(run), value, run) for value, run in candidates]
            best = max(scored, key=lambda t: t[0] if better(1, metric) else -t[0])
            for score, value, run in scored:
                if run is not best[2]:
                    yield metric, best[2], run


def _identical_answers(a, b) -> bool:
    return len(a.tables) == len(b.tables) and a.predictions() == b.predictions()


def _row(family, metric, labels_a, labels_b, result, n, replicates_a, replicates_b, identical) -> dict:
    return {
        "family": family, "metric": metric,
        "model_a": labels_a[0], "variant_a": labels_a[1], "decoding_a": labels_a[2],
        "model_b": labels_b[0], "variant_b": labels_b[1], "decoding_b": labels_b[2],
        "a": result.a, "b": result.b, "difference": result.difference,
        "ci_low": result.ci_low, "ci_high": result.ci_high,
        "identical": identical, "in_holm_family": tested(family, identical, result),
        "test": ("identical answers, not tested" if identical
                 else "descriptive: the best value was chosen on these data, not tested" if family == DESCRIPTIVE
                 else "no example's score differs, not tested" if result.identical
                 else result.test),
        "resamples": result.n_resamples,
        "n_examples": n, "replicates_a": replicates_a, "replicates_b": replicates_b,
    }


def tested(family: str, identical: bool, result) -> bool:
    """Whether a row is one of the study's tests (Holm's family): not descriptive, and something differs."""
    return family in TESTED_FAMILIES and not identical and not result.identical


class Comparison:
    """One row of comparisons.csv in the making: its labels, its result, and how to draw it again."""

    def __init__(self, family, metric, labels_a, labels_b, test, n, replicates_a, replicates_b, identical):
        self.family, self.metric, self.labels = family, metric, (labels_a, labels_b)
        self.test, self.counts, self.identical = test, (n, replicates_a, replicates_b), identical
        self.result = None

    def run(self, **options):
        return self.test(**options)

    def row(self) -> dict:
        return _row(self.family, self.metric, *self.labels, self.result, *self.counts, self.identical)

    @property
    def key(self) -> tuple:
        """What is compared: the metric and the two runs, in either order."""
        return self.family == DESCRIPTIVE, self.metric, frozenset(self.labels)


def compare_runs(family: str, a, b, tokenize: str, metrics=TEXT) -> list:
    from lmsweep import stats

    identical = _identical_answers(a, b)
    out = []
    for metric in metrics:
        if metric == "bleu":
            stats_a, stats_b = a.bleu_stats(tokenize), b.bleu_stats(tokenize)
            test = (lambda sa, sb: lambda **o: stats.paired_bleu_from_stats(sa, sb, tokenize=tokenize, **o))(
                stats_a, stats_b)
        else:
            test = (lambda x, y: lambda **o: stats.paired_mean(x, y, **o))(a.per_example(metric), b.per_example(metric))
        out.append(Comparison(family, metric, a.key, b.key, test, len(a.tables[0]), len(a.tables), len(b.tables),
                              identical))
    return out


def compare_perplexity(family: str, a, b, metrics) -> list:
    """a, b: (summary, per-example table) of two (model, variant)s, teacher forced on the same answers."""
    from lmsweep import stats

    (summary_a, ta), (summary_b, tb) = a, b
    identical = bool((ta.nll.to_numpy() == tb.nll.to_numpy()).all())
    tests = {
        "perplexity": lambda **o: stats.paired_perplexity(ta.nll, ta.tokens, tb.nll, tb.tokens, **o),
        "bits_per_byte": lambda **o: stats.paired_bits_per_byte(ta.nll_text, ta.bytes, tb.nll_text, tb.bytes, **o),
        "word_perplexity": lambda **o: stats.paired_perplexity(ta.nll_text, ta.words, tb.nll_text, tb.words, **o),
    }
    labels_a = (summary_a.model, summary_a.variant, TEACHER_FORCED)
    labels_b = (summary_b.model, summary_b.variant, TEACHER_FORCED)
    return [Comparison(family, metric, labels_a, labels_b, tests[metric], len(ta), 1, 1, identical)
            for metric in metrics]


def plan(runs: dict, perplexities: dict, tokenize: str) -> list:
    """Every comparison of the study, once: the tested families first, then the descriptive rows."""
    planned = []
    for family, a, b in pairs(runs):
        planned += compare_runs(family, a, b, tokenize)
    models = sorted({m for m, _ in perplexities})
    for x, y in combinations(models, 2):
        if (x, "finetuned") in perplexities and (y, "finetuned") in perplexities:
            planned += compare_perplexity("model vs model", perplexities[(x, "finetuned")],
                                          perplexities[(y, "finetuned")], ACROSS_MODELS)
    for model in models:
        if (model, "base") in perplexities and (model, "finetuned") in perplexities:
            planned += compare_perplexity("fine-tuned vs base", perplexities[(model, "base")],
                                          perplexities[(model, "finetuned")],
                                          PERPLEXITY)
    for model, variant in sorted(perplexities):
        if variant not in NOT_ADAPTATIONS and (model, "finetuned") in perplexities:
            planned += compare_perplexity("adaptation vs baseline", perplexities[(model, "finetuned")],
                                          perplexities[(model, variant)], PERPLEXITY)
    for metric, best, other in best_value_pairs(runs, tokenize):
        planned += compare_runs(DESCRIPTIVE, best, other, tokenize, metrics=(metric,))
    seen = {}
    for c in planned:
        if c.key in seen:
            raise RuntimeError(f"{c.family} compares {c.labels} on {c.metric}, as {seen[c.key]} does: "
                               "a test may enter Holm's family once")
        seen[c.key] = c.family
    return planned


def comparisons_table(score_files, perplexity_files, test_path, settings: Settings):
    """comparisons.csv as a DataFrame, Holm-adjusted over all its tests."""
    import numpy as np
    import pandas as pd

    from lmsweep import stats
    from lmsweep.runs import load_perplexities, load_runs

    statistics = settings.statistics
    options = dict(n_resamples=statistics.resamples, seed=statistics.seed, confidence_level=statistics.confidence)
    planned = plan(load_runs(score_files, test_path, settings.bertscore_rescaled),
                   load_perplexities(perplexity_files, test_path), settings.bleu.tokenize)
    log.info(f"{len(planned)} comparisons, {statistics.resamples} resamples each")
    step = max(1, len(planned) // 10)
    for done, c in enumerate(planned, start=1):
        c.result = c.run(**options)
        if done % step == 0 or done == len(planned):
            log.info(f"compared {done} of {len(planned)}")
    in_family = [tested(c.family, c.identical, c.result) for c in planned]
    results = stats.settle(
        [c.result if t else None for c, t in zip(planned, in_family)],
        [(lambda c: lambda n_resamples, seed: c.run(**{**options, "n_resamples": n_resamples, "seed": seed}))(c)
         for c in planned],
        statistics.alpha, statistics.max_resamples,
    )
    for c, result in zip(planned, results):
        c.result = result if result is not None else c.result
    table = pd.DataFrame([c.row() for c in planned], columns=COLUMNS)
    table["p_value"] = [c.result.p_value if t else np.nan for c, t in zip(planned, in_family)]
    table["p_resamples"] = [c.result.p_resamples if t else 0 for c, t in zip(planned, in_family)]
    table["p_adjusted"] = stats.holm(table.p_value.to_numpy(dtype=float)) if len(table) else []
    table["holm_level"] = stats.holm_levels(table.p_value.to_numpy(dtype=float), statistics.alpha) \
        if len(table) else []
    table["settled"] = [not u for u in stats.unsettled([c.result if t else None for c, t in zip(planned, in_family)],
                                                      statistics.alpha)]
    table["significant"] = (table.p_adjusted < statistics.alpha).fillna(False)
    # Which side is better, where the difference is significant: "a" or "b" (empty otherwise).
    table["better"] = [
        ("b" if better(row.difference, row.metric) else "a") if row.significant else ""
        for row in table.itertuples()
    ]
    return table.reset_index(drop=True)


def run(settings: Settings, paths: Paths, threads: int = 1):
    from lmsweep.io import atomic_path

    table = comparisons_table(paths.scores, paths.perplexities, paths.test, settings)
    with atomic_path(paths.table) as tmp:
        table.to_csv(tmp, index=False)
    log.info(f"{len(table)} comparisons ({int(table.significant.sum())} significant, {int(table.identical.sum())} "
             f"identical) written to {paths.table}")
    return table
