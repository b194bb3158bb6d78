"""Adapted how: how each adaptation setting moves the metrics against the baseline adapter, and what each
adapter cost (lmsweep.adaptation)."""

from __future__ import annotations

from lmsweep.adaptation import PARAMETERS
from lmsweep.findings.cells import (
    baseline_decoding, comparison_of, mark, p_text, row_of, sortable, suffix, value_text, with_interval,
)
from lmsweep.vocabulary import HIGHER_IS_BETTER, LABELS, TEXT, number, signed

FAMILY = "adaptation vs baseline"
# The metrics an adaptation is judged on: the text metrics under a decoding config, and bits per byte (teacher
# forced, the measure of how well the adapter models the reference answers).
METRICS = (*TEXT, "bits_per_byte")
# Where each swept setting is in an adapter's recorded settings (provenance's record["adapters"]).
SECTION = {parameter: section for parameter, (section, _) in PARAMETERS.items()}


def baseline_value(record: dict, model: str, parameter: str):
    """The baseline adapter's value of a swept setting, as it trained."""
    entry = record["adapters"].get(model) or {}
    value = (entry.get(SECTION[parameter]) or {}).get(parameter)
    if parameter == "target_modules":
        return "all" if value is None else value
    return value


def by_parameter(adaptations: dict) -> dict:
    """{parameter: {adaptation name: value}} in the config's order."""
    out = {}
    for name, (parameter, value) in adaptations.items():
        out.setdefault(parameter, {})[name] = value
    return out


def swept_models(scores, names) -> list:
    """The models with an adapter of one of `names` (adaptation.models may leave some out)."""
    return sorted(scores[scores.variant.isin(list(names))].model.unique())


def _series(scores, record, model, parameter, names: dict, metric, decoding):
    """[(value, variant, row)] of one model's adapters along one setting, the baseline adapter's value included."""
    decoding = baseline_decoding(metric) if metric not in TEXT else decoding
    points = [(baseline_value(record, model, parameter), "finetuned")] + [(v, n) for n, v in names.items()]
    out = [(value, variant, row_of(scores, model, variant, decoding, metric)) for value, variant in points]
    return sorted([p for p in out if p[2] is not None], key=lambda p: sortable(p[0])), decoding


def _setting_text(record, model, parameter, value, variant) -> str:
    text = f"{parameter} = {value_text(value)}"
    if parameter == "r":
        alpha = (record["adapters"].get(model if variant == "finetuned" else f"{model}@{variant}") or {}) \
            .get("lora", {}).get("alpha")
        if alpha is not None:
            text += f" (alpha {value_text(alpha)})"
    return text


def adaptation_table(scores, comparisons, record, parameter: str, names: dict, decoding: str = "baseline"):
    """Rows (value, model) of one swept setting: each metric with its interval, marked against the baseline adapter."""
    import pandas as pd

    rows = []
    for model in swept_models(scores, names):
        series, _ = _series(scores, record, model, parameter, names, "bleu", decoding)
        for value, variant, _ in series:
            entry = {parameter: _setting_text(record, model, parameter, value, variant).split(" = ", 1)[1]
                     + (" (baseline)" if variant == "finetuned" else ""), "model": model}
            for metric in METRICS:
                run_decoding = decoding if metric in TEXT else baseline_decoding(metric)
                row = row_of(scores, model, variant, run_decoding, metric)
                c = None if variant == "finetuned" else comparison_of(
                    comparisons, FAMILY, metric, (model, "finetuned", run_decoding), (model, variant, run_decoding))
                entry[LABELS[metric]] = "" if row is None else with_interval(row, metric) + suffix(mark(c))
            rows.append(entry)
    return pd.DataFrame(rows)


def _against_text(c, metric: str) -> str:
    """'−23.2 [−42.5, −4.2], Holm p = 0.21', '*' when significant; what was not tested says why."""
    if c["identical"]:
        return "identical answers"
    if not c["in_holm_family"]:
        return "the same score on every example"
    return (f"{signed(c['difference'], metric)} [{signed(c['ci_low'], metric)}, {signed(c['ci_high'], metric)}], "
            f"Holm {p_text(c['p_adjusted'])}{' *' if c['significant'] else ''}")


def adaptation_sentences(scores, comparisons, record, parameter: str, names: dict, decoding: str = "baseline") -> list:
    """Per model and metric: the best value, the trend, each value against the baseline adapter (Holm-tested)."""
    out = []
    for model in swept_models(scores, names):
        parts = []
        for metric in METRICS:
            series, run_decoding = _series(scores, record, model, parameter, names, metric, decoding)
            if len(series) < 2:
                continue
            sign = 1 if HIGHER_IS_BETTER[metric] else -1
            best_value, _, best_row = max(series, key=lambda p: sign * p[2]["value"])
            values = [r["value"] for _, _, r in series]
            steps = [b - a for a, b in zip(values, values[1:])]
            trend = ("rises" if all(s > 0 for s in steps) else "falls" if all(s < 0 for s in steps)
                     else "is flat" if all(s == 0 for s in steps) else "is not monotone")
            against = []
            for value, variant, _ in series:
                if variant == "finetuned":
                    continue
                c = comparison_of(comparisons, FAMILY, metric, (model, "finetuned", run_decoding),
                                  (model, variant, run_decoding))
                if c is None:
                    continue
                against.append(f"{value_text(value)}: {_against_text(c, metric)}")
            label = LABELS[metric][0].upper() + LABELS[metric][1:]
            parts.append(f"{label} is best at {parameter} = {value_text(best_value)} "
                         f"({with_interval(best_row, metric)}); it {trend} with {parameter}; against the baseline "
                         f"adapter ({parameter} = {value_text(baseline_value(record, model, parameter))}): "
                         + "; ".join(against))
        if parts:
            out.append(f"**{model}**: " + ". ".join(parts) + ".")
    return out


def adapter_cost_table(scores, record, decoding: str = "baseline"):
    """Per adapter: the setting it moves, what it cost, its losses, and its BLEU and bits per byte."""
    import pandas as pd

    rows = []
    for name, m in sorted(record["adapters"].items()):
        cost, variant = m.get("cost") or {}, m.get("adaptation") or "finetuned"
        seconds = cost.get("gpu_seconds") if cost.get("device") == "cuda" else cost.get("train_seconds")
        validation = m.get("validation") or {}
        bleu = row_of(scores, m["model"], variant, decoding, "bleu")
        bpb = row_of(scores, m["model"], variant, baseline_decoding("bits_per_byte"), "bits_per_byte")
        rows.append({
            "adapter": name, "moves": m.get("adaptation") or "(baseline)",
            "trainable parameters": f"{cost['trainable_parameters']:,}" if cost.get("trainable_parameters") else "n/a",
            "training s" + (" (GPU-s)" if cost.get("device") == "cuda" else " (CPU wall)"):
                f"{seconds:.1f}" if seconds is not None else "n/a (not measured)",
            "peak GPU memory (MB)":
                f"{cost['peak_gpu_memory_mb']:.0f}" if cost.get("peak_gpu_memory_mb") else "n/a (CPU)",
            "adapter size (MB)": f"{cost['adapter_bytes'] / 2**20:.2f}" if cost.get("adapter_bytes") else "n/a",
            "train loss": f"{m['train_loss']:.3f}" if m.get("train_loss") is not None else "n/a",
            "validation loss": f"{validation['last_loss']:.3f}" if validation.get("last_loss") is not None else "n/a",
            "BLEU": number(bleu["value"], "bleu") if bleu is not None else "",
            "bits per byte": number(bpb["value"], "bits_per_byte") if bpb is not None else "",
        })
    return pd.DataFrame(rows)
