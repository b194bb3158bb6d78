"""The study's own report: model comparison, fine-tuning gain, decoding sweeps, provenance.

Written as Markdown (plots beside it) and as one self-contained HTML file
(plots embedded), from `scores.csv` and the provenance records of each step.
"""

import base64
import html
import json
from pathlib import Path

METRICS = ["bleu", "rouge_l", "bertscore_f1", "perplexity"]
HIGHER_IS_BETTER = {"bleu": True, "rouge_l": True, "bertscore_f1": True, "perplexity": False}


def comparison_table(scores):
    """Fine-tuned models at the baseline decoding config, one column per metric, with ranks."""
    finetuned = scores[scores.variant == "finetuned"]
    at_baseline = finetuned[finetuned.decoding.isin(["baseline", "teacher_forced"])]
    table = at_baseline.pivot_table(index="model", columns="metric", values="value")
    table = table[[m for m in METRICS if m in table.columns]]
    for metric in list(table.columns):
        table[f"rank_{metric}"] = table[metric].rank(ascending=not HIGHER_IS_BETTER[metric]).astype(int)
    return table


def gain_table(scores):
    """Base and fine-tuned side by side at the baseline config, with the change."""
    rows = scores[scores.decoding.isin(["baseline", "teacher_forced"])]
    wide = rows.pivot_table(index=["model", "metric"], columns="variant", values="value")
    if "base" not in wide.columns:
        return wide
    wide["gain"] = wide["finetuned"] - wide["base"]
    return wide[["base", "finetuned", "gain"]]


def sweep_tables(scores, baseline: dict):
    """{parameter: table of metric value by (swept value) x (model, metric)}; the baseline value included."""
    import pandas as pd

    tables = {}
    finetuned = scores[(scores.variant == "finetuned") & (scores.metric != "perplexity")]
    for parameter in sorted(p for p in finetuned.sweep_parameter.dropna().unique()):
        moved = finetuned[finetuned.sweep_parameter == parameter].copy()
        base = finetuned[finetuned.decoding == "baseline"].copy()
        base["sweep_value"] = baseline.get(parameter)
        both = pd.concat([moved, base])
        # Numbers sort as numbers; other values (do_sample true/false) as text.
        numeric = pd.to_numeric(both.sweep_value, errors="coerce")
        both["sweep_value"] = numeric if numeric.notna().all() else both.sweep_value.astype(str)
        tables[parameter] = both.pivot_table(index="sweep_value", columns=["metric", "model"], values="value")
    return tables


def runtime_table(benchmark_files):
    """Wall time, peak memory and CPU time of each job, from Snakemake's benchmark files.

    benchmarks/<rule>/<model>[/<variant>/<decoding>].tsv: the path names the job.
    """
    import pandas as pd

    rows = []
    for path in benchmark_files:
        parts = Path(path).with_suffix("").parts
        at = parts.index("benchmarks")
        rule, labels = parts[at + 1], parts[at + 2 :]
        bench = pd.read_csv(path, sep="\t").iloc[-1]
        model, variant, decoding = (list(labels) + [None, None])[:3]
        if rule == "finetune":
            variant = "finetuned"
        rows.append({
            "rule": rule, "model": model, "variant": variant, "decoding": decoding,
            "wall_s": float(bench["s"]), "max_rss_mb": float(bench["max_rss"]), "cpu_s": float(bench["cpu_time"]),
        })
    table = pd.DataFrame(rows, columns=["rule", "model", "variant", "decoding", "wall_s", "max_rss_mb", "cpu_s"])
    return table.sort_values(["rule", "model", "variant", "decoding"], na_position="first").reset_index(drop=True)


def plot_sweep(parameter: str, table, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [m for m in METRICS if m in table.columns.get_level_values(0)]
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.4), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        for model in table[metric].columns:
            ax.plot(table.index, table[metric][model], marker="o", label=model)
        ax.set_xlabel(parameter)
        ax.set_title(metric)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize="small")
    fig.suptitle(f"Fine-tuned models: metrics against {parameter} (others at the baseline)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _fmt(table) -> str:
    return table.to_markdown(floatfmt=".4g")


def provenance_tables(provenance: dict) -> dict:
    """The settings behind each model's adapter and each decoding config, as tables."""
    import pandas as pd

    models = pd.DataFrame([
        {
            "model": name, "base_model": m["base_model"], "lora_r": m["lora"]["r"], "lora_alpha": m["lora"]["alpha"],
            "target_modules": ",".join(m["target_modules"]), "modules_to_save": ",".join(m["lora"]["modules_to_save"]),
            "4bit": m["quantization"].get("load_in_4bit", False), "steps": m["global_step"],
            "train_loss": m["train_loss"], "trust_remote_code": m.get("trust_remote_code", False),
        }
        for name, m in sorted(provenance["models"].items())
    ]).set_index("model")
    decoding = pd.DataFrame.from_dict(provenance["decoding_configs"], orient="index").sort_index()
    return {"Adapters": models, "Decoding configs": decoding}


def build(scores_csv, provenance: dict, out_dir, benchmark_files=()) -> dict:
    """Write report.md, report.html, runtime.csv and the sweep plots to `out_dir`; return their paths."""
    import pandas as pd

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    scores = pd.read_csv(scores_csv)
    comparison = comparison_table(scores)
    gain = gain_table(scores)
    sweeps = sweep_tables(scores, provenance["baseline"])
    runtime = runtime_table(benchmark_files)
    runtime.to_csv(out_dir / "runtime.csv", index=False)
    settings = provenance_tables(provenance)
    runtime_note = (
        "Wall time, peak memory (MB) and CPU time from Snakemake's benchmark files."
        + (" This run used warm_start: memory and CPU count the job's launcher only, not the"
           " forked worker; wall time is exact." if provenance.get("warm_start") else "")
    )

    md = ["# lmsweep report", ""]
    md += [
        f"Dataset `{provenance['dataset']}`: {provenance['n_train']} training and "
        f"{provenance['n_test']} test examples; seed {provenance['seed']}. "
        "Scores are on the test split; perplexity is of the reference answers (answer tokens only, teacher forced).",
        "",
        "## Model comparison (fine-tuned, baseline decoding)",
        "",
        _fmt(comparison),
        "",
        "Rank 1 is best (highest BLEU, ROUGE-L and BERTScore; lowest perplexity).",
        "",
        "## What fine-tuning bought (base model vs. adapter, baseline decoding)",
        "",
        _fmt(gain),
        "",
    ]
    plots = {}
    for parameter, table in sweeps.items():
        name = f"sweep_{parameter}.png"
        plot_sweep(parameter, table, out_dir / name)
        plots[parameter] = out_dir / name
        md += [f"## Sweep: {parameter}", "", f"![{parameter}]({name})", "", _fmt(table), ""]
    runtime_summary = runtime_summary_table(runtime)
    md += ["## Runtime", "", runtime_note, "", _fmt(runtime_summary), ""]
    md += ["## Where the numbers come from", ""]
    for title, table in settings.items():
        md += [f"### {title}", "", _fmt(table), ""]
    md += ["Metric signatures: " + "; ".join(f"`{k}`: `{v}`" for k, v in sorted(provenance["metric_signatures"].items())), ""]
    md += ["All provenance:", "", "```json", json.dumps(provenance, indent=2, sort_keys=True), "```", ""]
    (out_dir / "report.md").write_text("\n".join(md))
    (out_dir / "report.html").write_text(
        render_html(comparison, gain, sweeps, plots, provenance, runtime_summary, runtime_note, settings)
    )
    return {"markdown": out_dir / "report.md", "html": out_dir / "report.html", "plots": plots,
            "runtime": out_dir / "runtime.csv"}


def runtime_summary_table(runtime):
    """Per rule, model and decoding config: wall time and peak memory (the price of each setting)."""
    if runtime.empty:
        return runtime
    table = runtime.copy()
    table["decoding"] = table["decoding"].fillna("-")
    return table.pivot_table(
        index=["rule", "model", "variant", "decoding"], values=["wall_s", "max_rss_mb"], aggfunc="first"
    )


def render_html(comparison, gain, sweeps, plots, provenance, runtime_summary, runtime_note, settings) -> str:
    def img(path) -> str:
        data = base64.b64encode(Path(path).read_bytes()).decode()
        return f'<img alt="{html.escape(Path(path).stem)}" src="data:image/png;base64,{data}">'

    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>lmsweep report</title>",
        "<style>body{font-family:sans-serif;max-width:1200px;margin:2em auto}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
        "img{max-width:100%}pre{background:#f6f6f6;padding:1em;overflow:auto}</style></head><body>",
        "<h1>lmsweep report</h1>",
        f"<p>Dataset <code>{html.escape(str(provenance['dataset']))}</code>: {provenance['n_train']} training and "
        f"{provenance['n_test']} test examples; seed {provenance['seed']}.</p>",
        "<h2>Model comparison (fine-tuned, baseline decoding)</h2>",
        comparison.to_html(float_format="{:.4g}".format),
        "<p>Rank 1 is best (highest BLEU, ROUGE-L and BERTScore; lowest perplexity).</p>",
        "<h2>What fine-tuning bought (base model vs. adapter, baseline decoding)</h2>",
        gain.to_html(float_format="{:.4g}".format),
    ]
    for parameter, table in sweeps.items():
        parts += [f"<h2>Sweep: {html.escape(parameter)}</h2>", img(plots[parameter]),
                  table.to_html(float_format="{:.4g}".format)]
    parts += ["<h2>Runtime</h2>", f"<p>{html.escape(runtime_note)}</p>",
              runtime_summary.to_html(float_format="{:.4g}".format)]
    parts += ["<h2>Where the numbers come from</h2>"]
    for title, table in settings.items():
        parts += [f"<h3>{html.escape(title)}</h3>", table.to_html(float_format="{:.4g}".format)]
    parts += ["<p>Metric signatures:</p><ul>"]
    parts += [f"<li><code>{html.escape(k)}</code>: <code>{html.escape(v)}</code></li>"
              for k, v in sorted(provenance["metric_signatures"].items())]
    parts += ["</ul><h3>All provenance</h3>",
              f"<pre>{html.escape(json.dumps(provenance, indent=2, sort_keys=True))}</pre>",
              "</body></html>"]
    return "\n".join(parts)
