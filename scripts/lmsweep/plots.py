"""The report's plots: decoding sweeps with interval bars, and cost against quality."""

from lmsweep.findings import row_of, sweep_series
from lmsweep.vocabulary import LABELS, TEXT


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _numeric(values):
    try:
        return [float(v) for v in values], True
    except (TypeError, ValueError):
        return list(range(len(values))), False


def plot_sweep(scores, parameter: str, baseline_value, path) -> None:
    """One panel per metric: each fine-tuned model's value against the parameter, with its interval;
    the baseline's value marked, and the base model (no adapter, baseline decoding) as a dashed line."""
    plt = _pyplot()
    models = sorted(scores[scores.variant == "finetuned"].model.unique())
    fig, axes = plt.subplots(1, len(TEXT), figsize=(4.4 * len(TEXT), 3.6), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, metric in zip(axes[0], TEXT):
        for index, model in enumerate(models):
            color = colors[index % len(colors)]
            series = sweep_series(scores, model, parameter, baseline_value, metric)
            if not series:
                continue
            labels = [v for v, _ in series]
            x, numeric = _numeric(labels)
            y = [r["value"] for _, r in series]
            low = [r["value"] - r["ci_low"] for _, r in series]
            high = [r["ci_high"] - r["value"] for _, r in series]
            ax.errorbar(x, y, yerr=[low, high], marker="o", capsize=3, color=color, label=model)
            if not numeric:
                ax.set_xticks(x, [str(v) for v in labels])
            base = row_of(scores, model, "base", "baseline", metric)
            if base is not None:
                ax.axhline(base["value"], color=color, linestyle="--", linewidth=1, alpha=0.7)
        try:
            ax.axvline(float(baseline_value), color="grey", linestyle=":", linewidth=1)
        except (TypeError, ValueError):
            pass
        ax.set_xlabel(parameter + " (dotted: the baseline's value)")
        ax.set_title(LABELS[metric])
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize="small", title="fine-tuned; dashed: base model", title_fontsize="small")
    fig.suptitle(f"{parameter}, the other settings at the baseline; bars: 95% interval over test examples")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_cost(scores, generation_info: list, path, metric: str = "bertscore_f1") -> None:
    """Generation seconds per replicate (measured inside each job) against the metric, one point per config."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    by_run = {}
    for info in generation_info:
        key = (info.model, info.variant, info.decoding)
        by_run.setdefault(key, []).append(info.seconds["generate"])
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    models = sorted({m for m, _, _ in by_run})
    for index, model in enumerate(models):
        xs, ys, names = [], [], []
        for (m, variant, decoding), seconds in sorted(by_run.items()):
            row = row_of(scores, m, variant, decoding, metric)
            if m != model or variant != "finetuned" or row is None:
                continue
            xs.append(sum(seconds) / len(seconds))
            ys.append(row["value"])
            names.append(decoding)
        ax.scatter(xs, ys, color=colors[index % len(colors)], label=model)
        for x, y, name in zip(xs, ys, names):
            if name == "baseline" or name.startswith("num_beams"):
                ax.annotate(name, (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel("generation wall time per replicate (s)")
    ax.set_ylabel(LABELS[metric])
    ax.set_title(f"Cost against quality (fine-tuned; {LABELS[metric]})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
