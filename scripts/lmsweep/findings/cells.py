"""Cells and lookups every table and sentence of the report shares: a value with its interval, a p-value,
a mark, the row of a run, the comparison of two runs."""

from __future__ import annotations

from lmsweep.vocabulary import PERPLEXITY, TEACHER_FORCED, number, signed

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
    return TEACHER_FORCED if metric in PERPLEXITY else "baseline"


def difference_text(c, metric: str) -> str:
    """'+4.5 [−10.2, +19.1], p = 0.32 before, p = 1.00 after Holm': the difference, its interval, both p-values."""
    return (f"{signed(c['difference'], metric)} [{signed(c['ci_low'], metric)}, {signed(c['ci_high'], metric)}], "
            f"{p_text(c['p_value'])} before, {p_text(c['p_adjusted'])} after Holm")


def difference_cell(c) -> str:
    if c["identical"]:
        return "identical ="
    return (f"{signed(c['difference'], c['metric'])} [{signed(c['ci_low'], c['metric'])}, "
            f"{signed(c['ci_high'], c['metric'])}] {p_text(c['p_adjusted'])}{' *' if c['significant'] else ''}")


def value_text(value) -> str:
    """A swept value as the config wrote it (10, not 10.0: the CSV reads a column with gaps as floats)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def suffix(m: str) -> str:
    return f" {m}" if m else ""


def sortable(value):
    try:
        return (0, float(value), "")
    except (TypeError, ValueError):
        return (1, 0.0, str(value))
