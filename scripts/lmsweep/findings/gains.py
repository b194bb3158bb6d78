"""What fine-tuning bought: each model's base against its adapter, signed so that positive is better."""

from __future__ import annotations

from lmsweep.findings.cells import p_text
from lmsweep.vocabulary import HIGHER_IS_BETTER, LABELS, number, signed

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
