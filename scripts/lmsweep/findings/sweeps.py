"""How each decoding parameter matters: one table per swept parameter, and its sentences."""

from __future__ import annotations

from lmsweep.findings.cells import comparison_of, mark, row_of, sortable, suffix, value_text, with_interval
from lmsweep.vocabulary import HIGHER_IS_BETTER, LABELS, TEXT

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
        for value, decoding in sorted(points, key=lambda p: sortable(p[0])):
            entry = {parameter: value_text(value) + (" (baseline)" if decoding == "baseline" else ""), "model": model}
            for metric in TEXT:
                row = row_of(scores, model, "finetuned", decoding, metric)
                c = None if decoding == "baseline" else comparison_of(
                    comparisons, "decoding vs baseline", metric, (model, "finetuned", "baseline"),
                    (model, "finetuned", decoding))
                entry[LABELS[metric]] = "" if row is None else with_interval(row, metric) + suffix(mark(c))
            rows.append(entry)
    return pd.DataFrame(rows)


def sweep_series(scores, model: str, parameter: str, baseline_value, metric: str):
    """[(value, row)] of one model's sweep of `parameter`, the baseline's value included, sorted by value."""
    finetuned = scores[(scores.variant == "finetuned") & (scores.model == model) & (scores.metric == metric)]
    points = [(baseline_value, row_of(scores, model, "finetuned", "baseline", metric))]
    points += [(r.sweep_value, r) for _, r in finetuned[finetuned.sweep_parameter == parameter].iterrows()]
    return sorted([(v, r) for v, r in points if r is not None], key=lambda p: sortable(p[0]))


def sweep_sentences(scores, comparisons, parameter: str, baseline_value) -> list:
    """Per model and metric: the best value, whether the trend is monotone, which values are as good."""
    out = []
    for model in sorted(scores[scores.variant == "finetuned"].model.unique()):
        parts = []
        for metric in TEXT:
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
