"""Which model is best: rankings (exact ties as ties), the models' table, their pairwise differences,
and what Holm's correction over the study asks of a p-value."""

from __future__ import annotations

from lmsweep.findings.cells import baseline_decoding, comparison_of, difference_cell, difference_text, with_interval
from lmsweep.vocabulary import ACROSS_MODELS, HIGHER_IS_BETTER, LABELS, TEXT

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
    for metric in TEXT + ACROSS_MODELS:
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
    orders = {m: order_text(model_ranking(scores, m)) for m in TEXT + ACROSS_MODELS}
    orders = {m: o for m, o in orders.items() if o}
    if len(set(orders.values())) <= 1:
        return "All metrics rank the models alike: " + next(iter(orders.values()), "") + "."
    parts = [f"{LABELS[m]}: {o}" for m, o in orders.items()]
    return "The metrics do not agree on the ranking (" + "; ".join(parts) + ")."


def model_table(scores, comparisons):
    """Fine-tuned models at the baseline config: one row per model, one column per metric, rank in brackets."""
    import pandas as pd

    rows = {}
    for metric in TEXT + ACROSS_MODELS + ("perplexity",):
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
        entry[LABELS[c.metric]] = difference_cell(c)
    return pd.DataFrame(list(out.values()))


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
