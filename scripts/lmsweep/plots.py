"""The report's plots: decoding sweeps with interval bars, cost against quality, loss curves, adapters' cost."""

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


def plot_loss_curves(loss_files: dict, model: str, path) -> None:
    """Every adapter of one model: training loss (solid) and validation loss (dashed) against the step.

    `loss_files`: {adapter name: its train_log.csv}; the adapters of `model` are `model` and `model@<adaptation>`.
    """
    import pandas as pd

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    mine = sorted(name for name in loss_files if name == model or name.startswith(f"{model}@"))
    for index, name in enumerate(mine):
        log = pd.read_csv(loss_files[name])
        color, label = colors[index % len(colors)], name.removeprefix(model).removeprefix("@") or "baseline"
        trained = log.dropna(subset=["loss"])
        ax.plot(trained.step, trained.loss, color=color, label=label)
        if "eval_loss" in log and log.eval_loss.notna().any():
            held = log.dropna(subset=["eval_loss"])
            ax.plot(held.step, held.eval_loss, color=color, linestyle="--", marker=".")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss (answer tokens)")
    ax.set_title(f"{model}: every adapter's training loss (solid) and validation loss (dashed)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", title="adapter", title_fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_adaptation_cost(scores, record: dict, path, decoding: str = "baseline") -> None:
    """Quality against training cost, one point per adapter: BLEU (under `decoding`) and bits per byte."""
    plt = _pyplot()
    metrics = (("bleu", decoding), ("bits_per_byte", "teacher_forced"))
    fig, axes = plt.subplots(1, len(metrics), figsize=(6 * len(metrics), 4.2), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    models = sorted({m["model"] for m in record["adapters"].values()})
    unit = "GPU-seconds"
    for ax, (metric, run_decoding) in zip(axes[0], metrics):
        for index, model in enumerate(models):
            for name, m in sorted(record["adapters"].items()):
                cost = m.get("cost") or {}
                seconds = cost.get("gpu_seconds") if cost.get("device") == "cuda" else cost.get("train_seconds")
                unit = "GPU-seconds" if cost.get("device") == "cuda" else "wall seconds on the CPU"
                row = row_of(scores, model, m.get("adaptation") or "finetuned", run_decoding, metric)
                if m["model"] != model or row is None or seconds is None:
                    continue
                baseline = m.get("adaptation") is None
                ax.scatter([seconds], [row["value"]], color=colors[index % len(colors)], s=70 if baseline else 30,
                           edgecolors="black" if baseline else "none", label=model if baseline else None)
                ax.annotate(m.get("adaptation") or "baseline", (seconds, row["value"]), fontsize=7, xytext=(3, 3),
                            textcoords="offset points")
        ax.set_xlabel(f"training cost: {unit}")
        ax.set_ylabel(LABELS[metric] + (" (lower is better)" if metric == "bits_per_byte" else ""))
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize="small", title="baseline adapter ringed", title_fontsize="small")
    fig.suptitle("Each adapter's quality against its training cost")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
