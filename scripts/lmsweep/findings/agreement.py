"""Whether the metrics agree: rank correlations across runs and per example, and where they part."""

from __future__ import annotations

from lmsweep.vocabulary import LABELS, TEXT

def agreement_table(scores, per_example_tables=None):
    """Rank correlation of each pair of text metrics: across all runs, and per example (pooled over runs)."""
    import itertools

    import pandas as pd

    from lmsweep.stats import rank_correlation

    runs = scores[scores.metric.isin(TEXT)].pivot_table(
        index=["model", "variant", "decoding"], columns="metric", values="value")
    rows = []
    for x, y in itertools.combinations([m for m in TEXT if m in runs.columns], 2):
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
