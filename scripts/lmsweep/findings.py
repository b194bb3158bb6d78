"""The study's answers, computed from scores.csv and comparisons.csv: sentences and flat tables.

Nothing here is written by hand: every sentence is made from the numbers, so
it changes when they do. Tables have flat, named columns (`BLEU`, not
`('bleu', 'tiny_llama')`) and cells that carry their interval.
"""

import math

LABELS = {
    "bleu": "BLEU",
    "rouge_l": "ROUGE-L",
    "bertscore_f1": "BERTScore F1",
    "bits_per_byte": "bits per byte",
    "word_perplexity": "word perplexity",
    "perplexity": "token perplexity",
    "empty": "empty answers",
    "hit_max_new_tokens": "cut at max_new_tokens",
    "repeated_3gram_rate": "repeated 3-grams",
}
TEXT_METRICS = ["bleu", "rouge_l", "bertscore_f1"]
# Perplexities that compare models with different tokenizers; token perplexity compares variants of one model.
ACROSS_MODELS = ["bits_per_byte", "word_perplexity"]
HIGHER_IS_BETTER = {"bleu": True, "rouge_l": True, "bertscore_f1": True, "perplexity": False,
                    "bits_per_byte": False, "word_perplexity": False, "empty": False,
                    "hit_max_new_tokens": False, "repeated_3gram_rate": False}
SHARES = ("empty", "hit_max_new_tokens", "repeated_3gram_rate")


def number(value, metric: str) -> str:
    """A metric value in its usual precision."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if metric in SHARES:
        return f"{100 * value:.0f}%"
    if metric == "bleu":
        return f"{value:.1f}"
    if metric in ("perplexity", "word_perplexity"):
        return f"{value:.3g}" if value < 1000 else f"{value:,.0f}"
    return f"{value:.3f}"


def signed(value, metric: str) -> str:
    text = number(abs(value), metric)
    return ("+" if value > 0 else "−" if value < 0 else "±") + text


def with_interval(row, metric: str | None = None) -> str:
    """'24.1 [20.3, 28.0]', with '±1.2 sd over 3 seeds' when the run has replicates."""
    metric = metric or row["metric"]
    text = f"{number(row['value'], metric)} [{number(row['ci_low'], metric)}, {number(row['ci_high'], metric)}]"
    replicates = row.get("replicates")
    if replicates and replicates > 1 and row.get("replicate_sd") == row.get("replicate_sd"):
        text += f" ±{number(row['replicate_sd'], metric)}"
    return text


def p_text(p) -> str:
    if p is None or p != p:
        return "n/a"
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}" if p < 0.1 else f"p = {p:.2f}"


def mark(comparison) -> str:
    """'*' significant after Holm, '=' identical answers, '' otherwise."""
    if comparison is None:
        return ""
    if comparison["identical"]:
        return "="
    return "*" if comparison["significant"] else ""


def row_of(scores, model, variant, decoding, metric):
    rows = scores[(scores.model == model) & (scores.variant == variant) & (scores.decoding == decoding)
                  & (scores.metric == metric)]
    return None if rows.empty else rows.iloc[0]


def comparison_of(comparisons, family, metric, a, b):
    """The row comparing runs a and b (model, variant, decoding) in either order, with the sign as b - a."""
    c = comparisons[(comparisons.family == family) & (comparisons.metric == metric)]
    for first, second, flip in ((a, b, False), (b, a, True)):
        hit = c[(c.model_a == first[0]) & (c.variant_a == first[1]) & (c.decoding_a == first[2])
                & (c.model_b == second[0]) & (c.variant_b == second[1]) & (c.decoding_b == second[2])]
        if not hit.empty:
            row = hit.iloc[0].to_dict()
            if flip:
                row["difference"], row["ci_low"], row["ci_high"] = -row["difference"], -row["ci_high"], -row["ci_low"]
                row["better"] = {"a": "b", "b": "a"}.get(row["better"], row["better"])
            return row
    return None


def baseline_decoding(metric: str) -> str:
    return "teacher_forced" if metric in ("perplexity", "bits_per_byte", "word_perplexity") else "baseline"


# --- which model is best -------------------------------------------------------------------------------------


def model_ranking(scores, metric: str):
    """[(model, row)] of the fine-tuned models at the baseline config, best first (ties by name)."""
    decoding = baseline_decoding(metric)
    rows = scores[(scores.variant == "finetuned") & (scores.decoding == decoding) & (scores.metric == metric)]
    rows = rows.assign(_key=rows.value * (-1 if HIGHER_IS_BETTER[metric] else 1)).sort_values(
        ["_key", "model"], kind="stable")
    return [(r.model, r) for _, r in rows.iterrows()]


def ranks(ranking) -> list:
    """Competition ranks of a ranking ([(name, row)], best first): exact ties share a rank (1, 1, 3)."""
    out = []
    for position, (_, row) in enumerate(ranking):
        tied = position and row["value"] == ranking[position - 1][1]["value"]
        out.append(out[-1] if tied else position + 1)
    return out


def order_text(ranking) -> str:
    """'a > b = c': best first, '=' between exactly equal values (not a strict order)."""
    text = ""
    for position, (name, row) in enumerate(ranking):
        if position:
            text += " = " if row["value"] == ranking[position - 1][1]["value"] else " > "
        text += name
    return text


def best_model_sentences(scores, comparisons) -> list:
    """One sentence per metric: the best model, its number, and whether it is significantly ahead."""
    sentences = []
    for metric in TEXT_METRICS + ACROSS_MODELS:
        ranking = model_ranking(scores, metric)
        if not ranking:
            continue
        best, row = ranking[0]
        decoding = baseline_decoding(metric)
        text = f"**{best}** has the best {LABELS[metric]}, {with_interval(row, metric)}"
        if len(ranking) == 1:
            sentences.append(text + " (the only model).")
            continue
        behind = []
        for other, _ in ranking[1:]:
            c = comparison_of(comparisons, "model vs model", metric, (other, "finetuned", decoding),
                              (best, "finetuned", decoding))
            if c is None:
                continue
            if c["identical"]:
                behind.append(f"identical answers to {other}")
            else:
                verdict = "significantly better than" if c["significant"] else "not significantly better than"
                behind.append(f"{verdict} {other} ({difference_text(c, metric)})")
        sentences.append(text + ("; " + "; ".join(behind) if behind else "") + ".")
    return sentences


def rankings_agree(scores) -> str:
    """Whether the metrics rank the models alike, said plainly (exact ties as '=')."""
    orders = {m: order_text(model_ranking(scores, m)) for m in TEXT_METRICS + ACROSS_MODELS}
    orders = {m: o for m, o in orders.items() if o}
    if len(set(orders.values())) <= 1:
        return "All metrics rank the models alike: " + next(iter(orders.values()), "") + "."
    parts = [f"{LABELS[m]}: {o}" for m, o in orders.items()]
    return "The metrics do not agree on the ranking (" + "; ".join(parts) + ")."


def model_table(scores, comparisons):
    """Fine-tuned models at the baseline config: one row per model, one column per metric, rank in brackets."""
    import pandas as pd

    rows = {}
    for metric in TEXT_METRICS + ACROSS_MODELS + ["perplexity"]:
        ranking = model_ranking(scores, metric)
        shared = ranks(ranking)
        for rank, (model, row) in zip(shared, ranking):
            tie = "=" if shared.count(rank) > 1 else ""
            rows.setdefault(model, {"model": model})[LABELS[metric]] = f"{with_interval(row, metric)} (#{rank}{tie})"
    return pd.DataFrame(list(rows.values()))


def model_pair_table(scores, comparisons):
    """Each pair of models at the baseline config: the difference per metric, its interval, Holm p, mark."""
    import pandas as pd

    pairs = comparisons[(comparisons.family == "model vs model")
                        & comparisons.decoding_a.isin(["baseline", "teacher_forced"])]
    out = {}
    for _, c in pairs.iterrows():
        key = f"{c.model_b} − {c.model_a}"
        entry = out.setdefault(key, {"pair (B − A)": key})
        entry[LABELS[c.metric]] = _difference_cell(c)
    return pd.DataFrame(list(out.values()))


def difference_text(c, metric: str) -> str:
    """'+4.5 [−10.2, +19.1], p = 0.32 before, p = 1.00 after Holm': the difference, its interval, both p-values."""
    return (f"{signed(c['difference'], metric)} [{signed(c['ci_low'], metric)}, {signed(c['ci_high'], metric)}], "
            f"{p_text(c['p_value'])} before, {p_text(c['p_adjusted'])} after Holm")


def holm_family_size(comparisons) -> int:
    """m, the number of paired tests Holm's correction runs over: the one count the report gives."""
    return int(comparisons.in_holm_family.astype(bool).sum())


def holm_bar(comparisons, alpha: float, n_examples: int) -> str:
    """What Holm's correction over this study asks of a p-value, said once."""
    m = holm_family_size(comparisons)
    if not m:
        return ""
    unsettled = int((comparisons.in_holm_family.astype(bool) & ~comparisons.settled.astype(bool)).sum())
    return (f"This study makes m = {m} paired tests (identical answers and the descriptive rows of the sweeps are "
            f"not tests); Holm's correction over all of them asks p < {alpha / m:.2g} of the strongest effect "
            f"before it, which a paired test on {n_examples} test examples reaches only for large, consistent "
            "differences. Each difference is given with its 95% interval (before correction) and its p-value "
            "before and after. The p-values of means and perplexities are exact sign-flip tests (t-tests above 40 "
            "differing examples), not bounded by a number of resamples; BLEU's are sacreBLEU's paired bootstrap, "
            "redrawn with more resamples wherever the resampling could decide its significance"
            + (f"; {unsettled} could not be decided within statistics.max_resamples and count as not significant "
               "(raise max_resamples)." if unsettled else "."))


def _difference_cell(c) -> str:
    if c["identical"]:
        return "identical ="
    return (f"{signed(c['difference'], c['metric'])} [{signed(c['ci_low'], c['metric'])}, "
            f"{signed(c['ci_high'], c['metric'])}] {p_text(c['p_adjusted'])}{' *' if c['significant'] else ''}")


# --- what fine-tuning bought ---------------------------------------------------------------------------------


def gain_table(scores, comparisons):
    """Per model and metric: base, fine-tuned, the improvement (positive = better), its interval and test."""
    import pandas as pd

    rows = []
    tuned = comparisons[(comparisons.family == "fine-tuned vs base")
                        & comparisons.decoding_a.isin(["baseline", "teacher_forced"])]
    for _, c in tuned.iterrows():
        sign = 1 if HIGHER_IS_BETTER[c.metric] else -1
        low, high = sorted((sign * c.ci_low, sign * c.ci_high))
        rows.append({
            "model": c.model_a, "metric": LABELS[c.metric],
            "direction": "higher is better" if HIGHER_IS_BETTER[c.metric] else "lower is better",
            "base": number(c.a, c.metric), "fine-tuned": number(c.b, c.metric),
            "improvement": f"{signed(sign * c.difference, c.metric)} [{signed(low, c.metric)}, {signed(high, c.metric)}]",
            "ratio": ratio_text(c.b, c.a, c.metric),
            "Holm p": p_text(c.p_adjusted), "significant": "yes *" if c.significant else "no",
        })
    return pd.DataFrame(rows)


def ratio_text(value, reference, metric: str) -> str:
    """'2.35x', or 'n/a' where the reference shows as 0 at the metric's precision (BLEU 0.0: a ratio of
    9.49e+23x would only measure sacreBLEU's smoothing, not a gain)."""
    shown = number(reference, metric)
    if reference is None or reference != reference or reference <= 0 or not any(ch in "123456789" for ch in shown):
        return "n/a (base is 0)"
    return f"{value / reference:.3g}x"


def gain_sentences(comparisons) -> list:
    """Per model: each metric base -> fine-tuned, significant ones marked, and what the marks say."""
    out = []
    tuned = comparisons[(comparisons.family == "fine-tuned vs base")
                        & comparisons.decoding_a.isin(["baseline", "teacher_forced"])]
    for model in sorted(tuned.model_a.unique()):
        rows = tuned[tuned.model_a == model]
        changes = [f"{LABELS[c.metric]} {number(c.a, c.metric)} → {number(c.b, c.metric)}{' *' if c.significant else ''}"
                   for _, c in rows.iterrows()]
        better = [c for _, c in rows.iterrows() if (c.b - c.a) * (1 if HIGHER_IS_BETTER[c.metric] else -1) > 0]
        significant = [LABELS[c.metric] for _, c in rows.iterrows() if c.significant and c.better == "b"]
        worse = [LABELS[c.metric] for _, c in rows.iterrows() if c.significant and c.better == "a"]
        verdict = (f"better on {len(better)} of {len(rows)} metrics"
                   + (f", significantly on {', '.join(significant)}" if significant else ", none significantly after Holm")
                   + (f"; significantly worse on {', '.join(worse)}" if worse else ""))
        out.append(f"**{model}**, base → fine-tuned: " + "; ".join(changes) + f". {verdict[0].upper()}{verdict[1:]}.")
    return out


# --- how each decoding parameter matters ---------------------------------------------------------------------


def sweep_table(scores, comparisons, parameter: str, baseline_value):
    """Rows (value, model) of one swept parameter, fine-tuned; cells with interval and a mark against the baseline."""
    import pandas as pd

    finetuned = scores[scores.variant == "finetuned"]
    rows = []
    for model in sorted(finetuned.model.unique()):
        points = [(baseline_value, "baseline")] + [
            (r.sweep_value, r.decoding) for r in
            finetuned[(finetuned.model == model) & (finetuned.sweep_parameter == parameter)]
            .drop_duplicates("decoding").itertuples()
        ]
        for value, decoding in sorted(points, key=lambda p: _sortable(p[0])):
            entry = {parameter: value_text(value) + (" (baseline)" if decoding == "baseline" else ""), "model": model}
            for metric in TEXT_METRICS:
                row = row_of(scores, model, "finetuned", decoding, metric)
                c = None if decoding == "baseline" else comparison_of(
                    comparisons, "decoding vs baseline", metric, (model, "finetuned", "baseline"),
                    (model, "finetuned", decoding))
                entry[LABELS[metric]] = "" if row is None else with_interval(row, metric) + _suffix(mark(c))
            rows.append(entry)
    return pd.DataFrame(rows)


def value_text(value) -> str:
    """A swept value as the config wrote it (10, not 10.0: the CSV reads a column with gaps as floats)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _suffix(m: str) -> str:
    return f" {m}" if m else ""


def _sortable(value):
    try:
        return (0, float(value), "")
    except (TypeError, ValueError):
        return (1, 0.0, str(value))


def sweep_series(scores, model: str, parameter: str, baseline_value, metric: str):
    """[(value, row)] of one model's sweep of `parameter`, the baseline's value included, sorted by value."""
    finetuned = scores[(scores.variant == "finetuned") & (scores.model == model) & (scores.metric == metric)]
    points = [(baseline_value, row_of(scores, model, "finetuned", "baseline", metric))]
    points += [(r.sweep_value, r) for _, r in finetuned[finetuned.sweep_parameter == parameter].iterrows()]
    return sorted([(v, r) for v, r in points if r is not None], key=lambda p: _sortable(p[0]))


def sweep_sentences(scores, comparisons, parameter: str, baseline_value) -> list:
    """Per model and metric: the best value, whether the trend is monotone, which values are as good."""
    out = []
    for model in sorted(scores[scores.variant == "finetuned"].model.unique()):
        parts = []
        for metric in TEXT_METRICS:
            series = sweep_series(scores, model, parameter, baseline_value, metric)
            if len(series) < 2:
                continue
            sign = 1 if HIGHER_IS_BETTER[metric] else -1
            best_value, best_row = max(series, key=lambda p: sign * p[1]["value"])
            equal = [value_text(v) for v, r in series if r["value"] == best_row["value"]]
            values = [r["value"] for _, r in series]
            steps = [b - a for a, b in zip(values, values[1:])]
            trend = ("rises" if all(s > 0 for s in steps) else "falls" if all(s < 0 for s in steps)
                     else "is flat" if all(s == 0 for s in steps) else "is not monotone")
            close = []
            for value, row in series:
                if value == best_value or row["value"] == best_row["value"]:
                    continue
                c = comparison_of(comparisons, "sweep value vs best", metric,
                                  (model, "finetuned", best_row["decoding"]), (model, "finetuned", row["decoding"]))
                if c is not None and (c["identical"] or c["ci_low"] <= 0 <= c["ci_high"]):
                    close.append(value_text(value) + (" (identical answers)" if c["identical"] else ""))
            text = (f"{LABELS[metric]} is best at {parameter} = {' = '.join(equal)} "
                    f"({with_interval(best_row, metric)}{', the same value' if len(equal) > 1 else ''}); "
                    f"it {trend} with {parameter}")
            others = len(series) - len(equal)
            # The best was picked on these data, so these are intervals, not tests (compare.py).
            if others and len(close) == others:
                text += "; every other value's difference from it has an interval that holds 0"
            elif close:
                text += "; differences from it whose interval holds 0: " + ", ".join(close)
            elif others:
                text += "; every other value's difference from it has an interval that excludes 0"
            parts.append(text)
        if parts:
            out.append(f"**{model}**: " + ". ".join(parts) + ".")
    return out


# --- agreement between metrics -------------------------------------------------------------------------------


def agreement_table(scores, per_example_tables=None):
    """Rank correlation of each pair of text metrics: across all runs, and per example (pooled over runs)."""
    import itertools

    import pandas as pd

    from lmsweep.stats import rank_correlation

    runs = scores[scores.metric.isin(TEXT_METRICS)].pivot_table(
        index=["model", "variant", "decoding"], columns="metric", values="value")
    rows = []
    for x, y in itertools.combinations([m for m in TEXT_METRICS if m in runs.columns], 2):
        across = rank_correlation(runs[x], runs[y], "spearman")
        kendall = rank_correlation(runs[x], runs[y], "kendall")
        entry = {"metrics": f"{LABELS[x]} / {LABELS[y]}", "runs": across.n,
                 "Spearman across runs": _rho(across), "Kendall across runs": _rho(kendall)}
        if per_example_tables is not None and len(per_example_tables):
            col_x, col_y = per_example_tables[x], per_example_tables[y]
            per = rank_correlation(col_x, col_y, "spearman")
            entry["Spearman per example"] = _rho(per)
            entry["examples"] = per.n
        rows.append(entry)
    return pd.DataFrame(rows)


def _rho(result) -> str:
    return f"{result.rho:.2f}" if result.rho == result.rho else f"n/a ({result.reason})"


def disagreements(scores, x: str = "bleu", y: str = "bertscore_f1", n: int = 3) -> str:
    """Say plainly where two metrics disagree most: the runs whose rank under one is far from the other."""
    runs = scores[scores.metric.isin([x, y])].pivot_table(index=["model", "variant", "decoding"],
                                                           columns="metric", values="value").dropna()
    if len(runs) < 3:
        return ""
    ranks = runs.rank(ascending=False)
    gap = (ranks[x] - ranks[y]).abs().sort_values(ascending=False)
    gap = gap[gap > 0].head(n)
    if gap.empty:
        return f"{LABELS[x]} and {LABELS[y]} rank every run alike."
    items = []
    for key, g in gap.items():
        model, variant, decoding = key
        items.append(f"{model} ({variant}, {decoding}): #{int(ranks.loc[key, x])} by {LABELS[x]}, "
                     f"#{int(ranks.loc[key, y])} by {LABELS[y]}")
    return (f"Where {LABELS[x]} and {LABELS[y]} disagree most, among {len(runs)} runs: " + "; ".join(items) + ".")


# --- output hygiene and cost ---------------------------------------------------------------------------------


def hygiene_table(scores):
    import pandas as pd

    rows = []
    keys = scores[scores.metric.isin(SHARES)][["model", "variant", "decoding"]].drop_duplicates()
    for key in keys.itertuples(index=False):
        entry = {"model": key.model, "variant": key.variant, "decoding": key.decoding}
        for metric in SHARES:
            row = row_of(scores, key.model, key.variant, key.decoding, metric)
            entry[LABELS[metric]] = "" if row is None else number(row["value"], metric)
        rows.append(entry)
    return pd.DataFrame(rows)


def cost_table(scores, generation_info: list):
    """Per run: generation wall time (measured inside the job), new tokens per second, and its scores."""
    import pandas as pd

    by_run = {}
    for info in generation_info:
        key = (info["model"], info["variant"], info["decoding"])
        entry = by_run.setdefault(key, {"seconds": 0.0, "tokens": 0, "replicates": 0, "batch": set()})
        entry["seconds"] += info["seconds"]["generate"]
        entry["tokens"] += info["new_tokens"]
        entry["replicates"] += 1
        entry["batch"].update(info.get("batch_sizes", []))
    rows = []
    for (model, variant, decoding), e in sorted(by_run.items()):
        row = {"model": model, "variant": variant, "decoding": decoding,
               "generation s (per replicate)": f"{e['seconds'] / e['replicates']:.1f}",
               "new tokens/s": f"{e['tokens'] / max(e['seconds'], 1e-9):.0f}",
               "batch sizes": ", ".join(str(b) for b in sorted(e["batch"]))}
        for metric in ("bleu", "bertscore_f1"):
            r = row_of(scores, model, variant, decoding, metric)
            row[LABELS[metric]] = "" if r is None else number(r["value"], metric)
        rows.append(row)
    return pd.DataFrame(rows)


# --- examples ------------------------------------------------------------------------------------------------


def best_config(scores, model: str) -> str:
    """The fine-tuned config of `model` with the best mean rank over BLEU, ROUGE-L and BERTScore."""
    rows = scores[(scores.model == model) & (scores.variant == "finetuned") & scores.metric.isin(TEXT_METRICS)]
    wide = rows.pivot_table(index="decoding", columns="metric", values="value")
    ranks = wide.rank(ascending=False).mean(axis=1)
    return str(ranks.sort_values(kind="stable").index[0])


def example_pairs(runs: dict, scores, n: int = 3, metric: str = "bertscore_f1") -> dict:
    """{model: (best config, [examples])}: the test examples whose score differs most between the
    baseline config and the model's best config (first replicate of each), side by side."""
    out = {}
    for model in sorted({m for m, v, _ in runs if v == "finetuned"}):
        best = best_config(scores, model)
        base_run, best_run = runs.get((model, "finetuned", "baseline")), runs.get((model, "finetuned", best))
        if base_run is None or best_run is None or best == "baseline":
            out[model] = (best, [])
            continue
        a, b = base_run.tables[0], best_run.tables[0]
        gaps = (b[metric] - a[metric]).abs().sort_values(ascending=False)
        examples = []
        for i in gaps.index[:n]:
            examples.append({"id": int(a.id[i]), "reference": a.reference[i],
                             "baseline": a.prediction[i], "best": b.prediction[i],
                             "baseline score": a[metric][i], "best score": b[metric][i]})
        out[model] = (best, examples)
    return out


# --- what the study's numbers should be read with -------------------------------------------------------------


def study_warnings(record: dict, scores, comparisons, infos) -> list:
    """Everything that makes a number of this study doubtful, said once, at the top of the report.

    The same things are warned about in the jobs' logs; here they stand beside the numbers they concern.
    """
    from lmsweep.data import study_warnings as split_warnings

    out = [w[0].upper() + w[1:] + "." for w in split_warnings(record)]
    cut = [i for i in infos if i.get("prompts_cut")]
    if cut:
        runs = ", ".join(sorted({f"{i['model']}/{i['variant']}/{i['decoding']}" for i in cut}))
        most = max(i["prompts_cut"] for i in cut)
        out.append(f"Prompts longer than the model's context minus max_new_tokens were cut to fit (up to {most} of "
                   f"{cut[0]['n_examples']} prompts in a run; prompt_tokens_cut in the predictions files): {runs}. "
                   "A cut prompt may lose what the answer depends on; lower max_new_tokens to keep them whole.")
    hit = scores[(scores.metric == "hit_max_new_tokens") & (scores.value > 0.1)]
    if len(hit):
        worst = hit.sort_values("value", ascending=False).iloc[0]
        out.append(f"{len(hit)} run(s) stopped more than 10% of their answers at max_new_tokens, before their end "
                   f"(worst: {worst.model}/{worst.variant}/{worst.decoding}, {worst.value:.0%}): their metrics score "
                   "cut answers; raise max_new_tokens if answers should be longer.")
    for model, m in sorted((record.get("models") or {}).items()):
        lengths = m.get("lengths") or {}
        if lengths.get("truncated"):
            out.append(f"{model}: training.max_length {lengths['max_length']} cut {lengths['truncated']} of "
                       f"{lengths['examples']} training examples (they lose their end and EOS).")
    for run, p in sorted((record.get("perplexity") or {}).items()):
        if p.get("answers_cut"):
            out.append(f"{run}: {p['answers_cut']} reference answer(s) are longer than the model's context: their "
                       f"perplexity scores only what fits ({p['bytes_cut']:,} bytes left out of bits per byte and "
                       "word perplexity, which count only the scored text).")
    if "settled" in comparisons:
        open_tests = comparisons[comparisons.in_holm_family.astype(bool) & ~comparisons.settled.astype(bool)]
        if len(open_tests):
            out.append(f"{len(open_tests)} Monte-Carlo test(s) could not be decided against Holm's level within "
                       "statistics.max_resamples and count as not significant (settled: false in comparisons.csv); "
                       "raise statistics.max_resamples.")
    return out
