"""Paired comparisons on the same test examples, corrected for their number (rule compare).

Three families, every metric each:

- each decoding config against the baseline config, same model and variant
  (how a decoding parameter matters);
- each pair of models under the same decoding config and variant (which
  model is best); perplexity across models only as bits per byte and word
  perplexity, which do not depend on the tokenizer;
- each model's fine-tuned variant against its base model (what fine-tuning
  bought), under every config the base model ran, and in perplexity;
- per model, swept parameter and metric, each value of the parameter (the
  baseline's value included) against the best value for that metric (which
  values are indistinguishable from the best).

B is compared with A as B - A. BLEU uses sacreBLEU's own paired bootstrap;
mean metrics a paired bootstrap interval and a sign-flip permutation test;
perplexities a paired bootstrap of the ratio and a swap permutation test
(lmsweep.stats; the `test` column names it). Holm's correction runs over
every test of the study at once. Two runs whose answers are identical,
replicate by replicate, are reported as identical, not tested.
"""

from itertools import combinations

from lmsweep.aggregate import HIGHER_IS_BETTER, METRICS, load_perplexities, load_runs

COLUMNS = [
    "family", "metric", "model_a", "variant_a", "decoding_a", "model_b", "variant_b", "decoding_b",
    "a", "b", "difference", "ci_low", "ci_high", "p_value", "p_adjusted", "significant", "better", "identical",
    "test", "resamples", "n_examples", "replicates_a", "replicates_b",
]


def refined(test, options: dict):
    """test(**options), run again with statistics.max_resamples when its p-value is at the floor.

    A resampling p-value is at least 1/(R + 1): with R = 1000 and a few hundred
    comparisons, Holm's correction could never call anything significant. Most
    tests are far from the floor and stay cheap; those at it (p <= 2/(R + 1))
    are redrawn with max_resamples, independently, and that p-value is kept.
    """
    first = {k: v for k, v in options.items() if k != "max_resamples"}
    result = test(**first)
    floor = 2 / (first["n_resamples"] + 1)
    if not result.identical and result.p_value <= floor and options["max_resamples"] > first["n_resamples"]:
        result = test(**{**first, "n_resamples": options["max_resamples"], "seed": first["seed"] + 1})
    return result


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


def sweep_candidates(runs: dict, baseline: str = "baseline") -> dict:
    """{(model, parameter): [(value, run)]}: the fine-tuned runs of each sweep, the baseline's value included."""
    out = {}
    for (model, variant, decoding), run in sorted(runs.items()):
        parameter, value = run.sweep
        if variant == "finetuned" and parameter is not None:
            out.setdefault((model, parameter), []).append((value, run))
    for (model, parameter), candidates in out.items():
        base = runs.get((model, "finetuned", baseline))
        if base is not None and parameter in (base.summaries[0].get("settings") or {}):
            candidates.append((base.summaries[0]["settings"][parameter], base))
    return out


def best_value_pairs(runs: dict, tokenize: str):
    """(metric, best run, other run) for each sweep: every value against the best one for the metric."""
    from lmsweep.stats import bleu_score

    for (model, parameter), candidates in sweep_candidates(runs).items():
        for metric in METRICS:
            def point(run):
                return bleu_score(run.bleu_stats(tokenize), tokenize) if metric == "bleu" \
                    else float(run.per_example(metric).mean())

            scored = [(point(run), value, run) for value, run in candidates]
            best = max(scored, key=lambda t: t[0] if HIGHER_IS_BETTER[metric] else -t[0])
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
        # identical answers are not a test: no p-value, and no share of Holm's correction
        "p_value": float("nan") if identical else result.p_value,
        "identical": identical, "test": "identical answers, not tested" if identical else result.test,
        "resamples": result.n_resamples,
        "n_examples": n, "replicates_a": replicates_a, "replicates_b": replicates_b,
    }


def compare_runs(family: str, a, b, tokenize: str, options: dict, metrics=METRICS) -> list:
    from lmsweep import stats

    identical = _identical_answers(a, b)
    rows = []
    for metric in metrics:
        if metric == "bleu":
            stats_a, stats_b = a.bleu_stats(tokenize), b.bleu_stats(tokenize)
            result = refined(lambda **o: stats.paired_bleu_from_stats(stats_a, stats_b, tokenize=tokenize, **o),
                             options)
        else:
            x, y = a.per_example(metric), b.per_example(metric)
            result = refined(lambda **o: stats.paired_mean(x, y, **o), options)
        rows.append(_row(family, metric, a.key, b.key, result, len(a.tables[0]), len(a.tables), len(b.tables),
                         identical))
    return rows


def compare_perplexity(family: str, a, b, metrics, options: dict) -> list:
    """a, b: (summary, per-example table) of two (model, variant)s, teacher forced on the same answers."""
    from lmsweep import stats

    (summary_a, ta), (summary_b, tb) = a, b
    identical = bool((ta.nll.to_numpy() == tb.nll.to_numpy()).all())
    tests = {
        "perplexity": lambda **o: stats.paired_perplexity(ta.nll, ta.tokens, tb.nll, tb.tokens, **o),
        "bits_per_byte": lambda **o: stats.paired_bits_per_byte(ta.nll, ta.bytes, tb.nll, tb.bytes, **o),
        "word_perplexity": lambda **o: stats.paired_perplexity(ta.nll, ta.words, tb.nll, tb.words, **o),
    }
    labels_a = (summary_a["model"], summary_a["variant"], "teacher_forced")
    labels_b = (summary_b["model"], summary_b["variant"], "teacher_forced")
    return [_row(family, metric, labels_a, labels_b, refined(tests[metric], options), len(ta), 1, 1, identical)
            for metric in metrics]


def compare(score_files, perplexity_files, test_path, bleu: dict, statistics: dict):
    """comparisons.csv as a DataFrame, Holm-adjusted over all its tests."""
    import pandas as pd

    from lmsweep import stats

    options = dict(n_resamples=statistics["resamples"], seed=statistics["seed"],
                   confidence_level=statistics["confidence"], max_resamples=statistics["max_resamples"])
    tokenize = bleu.get("tokenize", "13a")
    rows = []
    runs = load_runs(score_files, test_path)
    for family, a, b in pairs(runs):
        rows += compare_runs(family, a, b, tokenize, options)
    for metric, best, other in best_value_pairs(runs, tokenize):
        rows += compare_runs("sweep value vs best", best, other, tokenize, options, metrics=(metric,))
    perplexities = load_perplexities(perplexity_files, test_path)
    models = sorted({m for m, _ in perplexities})
    for x, y in combinations(models, 2):
        if (x, "finetuned") in perplexities and (y, "finetuned") in perplexities:
            rows += compare_perplexity("model vs model", perplexities[(x, "finetuned")],
                                       perplexities[(y, "finetuned")], ("bits_per_byte", "word_perplexity"), options)
    for model in models:
        if (model, "base") in perplexities and (model, "finetuned") in perplexities:
            rows += compare_perplexity("fine-tuned vs base", perplexities[(model, "base")],
                                       perplexities[(model, "finetuned")],
                                       ("perplexity", "bits_per_byte", "word_perplexity"), options)
    table = pd.DataFrame(rows, columns=COLUMNS)
    table["p_adjusted"] = stats.holm(table.p_value.to_numpy(dtype=float)) if len(table) else []
    table["significant"] = (table.p_adjusted < statistics["alpha"]).fillna(False)
    # Which side is better, where the difference is significant: "a" or "b" (empty otherwise).
    table["better"] = [
        ("b" if (row.difference > 0) == HIGHER_IS_BETTER[row.metric] else "a") if row.significant else ""
        for row in table.itertuples()
    ]
    return table.reset_index(drop=True)
