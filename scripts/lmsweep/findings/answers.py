"""The answers themselves: hygiene, generation cost against quality, and examples side by side."""

from __future__ import annotations

from lmsweep.findings.cells import row_of
from lmsweep.vocabulary import HYGIENE, LABELS, TEXT, number

def hygiene_table(scores):
    import pandas as pd

    rows = []
    keys = scores[scores.metric.isin(HYGIENE)][["model", "variant", "decoding"]].drop_duplicates()
    for key in keys.itertuples(index=False):
        entry = {"model": key.model, "variant": key.variant, "decoding": key.decoding}
        for metric in HYGIENE:
            row = row_of(scores, key.model, key.variant, key.decoding, metric)
            entry[LABELS[metric]] = "" if row is None else number(row["value"], metric)
        rows.append(entry)
    return pd.DataFrame(rows)


def cost_table(scores, generation_info: list):  # of lmsweep.records.GenerationInfo
    """Per run: generation wall time (measured inside the job), new tokens per second, and its scores."""
    import pandas as pd

    by_run = {}
    for info in generation_info:
        key = (info.model, info.variant, info.decoding)
        entry = by_run.setdefault(key, {"seconds": 0.0, "tokens": 0, "replicates": 0, "batch": set()})
        entry["seconds"] += info.seconds["generate"]
        entry["tokens"] += info.new_tokens
        entry["replicates"] += 1
        entry["batch"].update(info.batch_sizes)
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
    rows = scores[(scores.model == model) & (scores.variant == "finetuned") & scores.metric.isin(TEXT)]
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
