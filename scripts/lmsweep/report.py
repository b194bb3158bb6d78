"""The study's own report: its questions answered in computed sentences, then the tables behind them.

Written as Markdown (plots beside it) and as one self-contained HTML file
(plots embedded) from the same blocks, from scores.csv, comparisons.csv and
the provenance records of each step (lmsweep.findings makes the sentences and
tables, lmsweep.plots the figures).
"""

import base64
import html
import json
import re
from pathlib import Path

from lmsweep import findings
from lmsweep.findings import LABELS
from lmsweep.provenance import BERTSCORE_HASH_NOTE

HOW_TO_READ = [
    "`24.1 [20.3, 28.0]`: the value, then its 95% interval over test examples (bootstrap: how much the number "
    "would move on other prompts like these).",
    "`±1.2`: where a config ran with several sampling seeds, the standard deviation of the value across seeds.",
    "`*`: significantly different from what it is compared with (paired test on the same examples, Holm-corrected "
    "over every comparison of the study); `=`: the two runs gave identical answers, so nothing was tested.",
    "BLEU (0-100), ROUGE-L F1 and BERTScore F1 (0-1): higher is better. Bits per byte, word perplexity and token "
    "perplexity of the reference answers: lower is better. Compare models on bits per byte or word perplexity: token "
    "perplexity counts in each model's own tokens, so it compares only the two variants of one model.",
    "`fine-tuned`: the base model with its LoRA adapter; `base`: the base model alone.",
]


class Document:
    """Blocks rendered twice: Markdown and self-contained HTML."""

    def __init__(self):
        self.blocks = []

    def heading(self, level: int, text: str):
        self.blocks.append(("heading", level, text))

    def paragraph(self, text: str):
        if text:
            self.blocks.append(("paragraph", text))

    def bullets(self, items):
        items = [i for i in items if i]
        if items:
            self.blocks.append(("bullets", items))

    def table(self, frame, note: str = ""):
        if frame is not None and len(frame):
            self.blocks.append(("table", frame, note))

    def image(self, path, alt: str):
        self.blocks.append(("image", Path(path), alt))

    def code(self, text: str):
        self.blocks.append(("code", text))

    def markdown(self) -> str:
        out = []
        for block in self.blocks:
            kind = block[0]
            if kind == "heading":
                out += ["#" * block[1] + " " + block[2], ""]
            elif kind == "paragraph":
                out += [block[1], ""]
            elif kind == "bullets":
                out += [f"- {item}" for item in block[1]] + [""]
            elif kind == "table":
                out += [markdown_table(block[1]), ""] + ([block[2], ""] if block[2] else [])
            elif kind == "image":
                out += [f"![{block[2]}]({block[1].name})", ""]
            elif kind == "code":
                out += ["```json", block[1], "```", ""]
        return "\n".join(out)

    def html(self) -> str:
        parts = [
            "<!doctype html><html><head><meta charset='utf-8'><title>lmsweep report</title>",
            "<style>body{font-family:sans-serif;max-width:1250px;margin:2em auto;line-height:1.4}"
            "table{border-collapse:collapse;margin:.6em 0 1.2em}td,th{border:1px solid #ccc;padding:3px 8px}"
            "td{text-align:right}th{background:#f3f3f3}td:first-child{text-align:left}"
            "img{max-width:100%}pre{background:#f6f6f6;padding:1em;overflow:auto;font-size:85%}"
            "code{background:#f3f3f3;padding:0 3px}.note{color:#555;font-size:90%}</style></head><body>",
        ]
        for block in self.blocks:
            kind = block[0]
            if kind == "heading":
                parts.append(f"<h{block[1]}>{inline(block[2])}</h{block[1]}>")
            elif kind == "paragraph":
                parts.append(f"<p>{inline(block[1])}</p>")
            elif kind == "bullets":
                parts.append("<ul>" + "".join(f"<li>{inline(i)}</li>" for i in block[1]) + "</ul>")
            elif kind == "table":
                parts.append(block[1].to_html(index=False, escape=True, border=0, na_rep=""))
                if block[2]:
                    parts.append(f"<p class='note'>{inline(block[2])}</p>")
            elif kind == "image":
                data = base64.b64encode(block[1].read_bytes()).decode()
                parts.append(f'<img alt="{html.escape(block[2])}" src="data:image/png;base64,{data}">')
            elif kind == "code":
                parts.append(f"<pre>{html.escape(block[1])}</pre>")
        parts.append("</body></html>")
        return "\n".join(parts)


def markdown_cell(value) -> str:
    """A table cell as Markdown reads it: '|' escaped, line breaks as spaces (an answer may hold both)."""
    if not isinstance(value, str):
        return value
    return value.replace("\\", "\\\\").replace("|", "\\|").replace("\r\n", " ").replace("\n", " ").replace("\r", " ")


def markdown_table(frame) -> str:
    """`frame` as a Markdown table whose cells cannot break it."""
    return frame.map(markdown_cell).rename(columns=markdown_cell).to_markdown(index=False)


def inline(text: str) -> str:
    """The Markdown this report uses inline (**bold**, `code`) as HTML, everything else escaped."""
    escaped = html.escape(text)
    escaped = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", escaped)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", escaped)


def runtime_table(benchmark_files):
    """Wall time, peak memory and CPU time of each job, from Snakemake's benchmark files.

    benchmarks/<rule>/<model>[/<variant>/<decoding>/rep<r>].tsv: the path names the job.
    """
    import pandas as pd

    rows = []
    for path in benchmark_files:
        parts = Path(path).with_suffix("").parts
        at = parts.index("benchmarks")
        rule, labels = parts[at + 1], parts[at + 2 :]
        bench = pd.read_csv(path, sep="\t").iloc[-1]
        model, variant, decoding, replicate = (list(labels) + [None, None, None])[:4]
        if rule in ("finetune", "merge_adapter"):
            variant = "finetuned"
        rows.append({
            "rule": rule, "model": model, "variant": variant, "decoding": decoding, "replicate": replicate,
            "wall_s": float(bench["s"]), "max_rss_mb": float(bench["max_rss"]), "cpu_s": float(bench["cpu_time"]),
        })
    columns = ["rule", "model", "variant", "decoding", "replicate", "wall_s", "max_rss_mb", "cpu_s"]
    table = pd.DataFrame(rows, columns=columns)
    return table.sort_values(columns[:5], na_position="first").reset_index(drop=True)


def runtime_summary(runtime):
    """Per rule and model: jobs, total and longest wall time, peak memory."""
    if runtime.empty:
        return runtime
    grouped = runtime.groupby(["rule", "model"], dropna=False)
    table = grouped.agg(jobs=("wall_s", "size"), wall_s_total=("wall_s", "sum"), wall_s_longest=("wall_s", "max"),
                        max_rss_mb=("max_rss_mb", "max")).reset_index()
    return table.round(1)


def training_table(models: dict):
    import pandas as pd

    rows = []
    for name, m in sorted(models.items()):
        lengths = m.get("lengths") or {}
        rows.append({
            "model": name, "base model": m["base_model"], "steps": m["global_step"],
            "train loss": f"{m['train_loss']:.3f}" if m["train_loss"] is not None else "n/a",
            "processes": m.get("processes", 1), "effective batch": m.get("effective_batch_size"),
            "examples cut at max_length": (f"{lengths['truncated']} of {lengths['examples']} "
                                           f"(max_length {lengths['max_length']})" if lengths else "n/a"),
            "LoRA": f"r {m['lora']['r']}, alpha {m['lora']['alpha']}, on {', '.join(m['target_modules'])}"
                    + (f"; in full: {', '.join(m['lora']['modules_to_save'])}" if m["lora"].get("modules_to_save") else ""),
            "4-bit": "yes" if m["quantization"].get("load_in_4bit") else "no",
        })
    return pd.DataFrame(rows)


def decoding_table(record: dict):
    import pandas as pd

    rows = []
    for name, entry in record["decoding"].items():
        settings = entry["settings"]
        samplings = {m.get("sampling") for m in entry["models"].values()}
        kind = ("greedy" if not settings.get("do_sample") and settings.get("num_beams", 1) == 1
                else "beam search" if not settings.get("do_sample")
                else "beam sampling" if settings.get("num_beams", 1) > 1 else "sampling")
        rows.append({"config": name, "kind": kind,
                     "settings": ", ".join(f"{k}={v}" for k, v in sorted(settings.items())),
                     "random streams": ", ".join(sorted(s for s in samplings if s))})
    return pd.DataFrame(rows)


def weights_table(scores):
    """Per model and variant: the weights that made its answers and its perplexity."""
    import pandas as pd

    rows = []
    for (model, variant), group in scores.groupby(["model", "variant"], sort=True):
        forced = group.decoding == "teacher_forced"
        rows.append({"model": model, "variant": variant,
                     "answers (BLEU, ROUGE-L, BERTScore)": "; ".join(sorted(group[~forced].weights.dropna().unique())),
                     "perplexity": "; ".join(sorted(group[forced].weights.dropna().unique()))})
    return pd.DataFrame(rows)


def batch_dependence_note(record: dict) -> str:
    """Which configs' answers depend on the batch they were made in (beam sampling), said beside their table."""
    affected = {}
    for name, entry in record["decoding"].items():
        for m in entry["models"].values():
            if m.get("sampling") == "per-batch":
                affected.setdefault(name, set()).update(m.get("batch_sizes") or [])
    if not affected:
        return ""
    sizes = sorted({b for s in affected.values() for b in s})
    return (f"Answers of {', '.join(f'`{n}`' for n in sorted(affected))} depend on which prompts share their batch: "
            "beam sampling draws from one random generator per batch (transformers has no per-row generator for "
            "it), so another generation.batch_size, or a batch halved on out-of-memory, gives other answers "
            f"(batch sizes of these runs: {', '.join(map(str, sizes))}). Every other sampled config draws from one "
            "stream per test example and does not depend on the batch.")


def _test_kind(test: str) -> str:
    """A test's kind without its counts ('exact sign-flip test (24 examples differ: ...)' -> 'exact sign-flip test')."""
    return test.split(" (")[0] if not test.startswith("swap") else test


def overridden_notes(record: dict) -> list:
    notes = set()
    for entry in record["decoding"].values():
        for model, m in entry["models"].items():
            for key, values in (m.get("overridden_model_defaults") or {}).items():
                notes.add(f"{model.split('/')[0]}: the model folder's generation config sets `{key}={values['model']}`; "
                          f"every run used `{key}={values['used']}` (the study's setting or transformers' default)")
    return sorted(notes)


def build(scores_csv, comparisons_csv, record: dict, out_dir, runs: dict | None = None, generation_info=(),
          benchmark_files=(), sweep_parameters=None) -> dict:
    """Write report.md, report.html, runtime.csv and the plots to `out_dir`; return their paths."""
    import pandas as pd

    from lmsweep import plots

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    from lmsweep.checks import read_csv_checked
    from lmsweep.provenance import read_generation_info

    scores = read_csv_checked(scores_csv, ["model", "variant", "decoding", "metric", "value", "ci_low", "ci_high"])
    comparisons = read_csv_checked(comparisons_csv, ["family", "metric", "in_holm_family", "p_value", "significant"])
    runs = runs or {}
    infos = read_generation_info(generation_info)
    baseline = record["baseline"]
    # The plots the rule declares: the config's sweeps (scores.csv holds the same, checked by aggregate).
    parameters = sorted(sweep_parameters if sweep_parameters is not None else scores.sweep_parameter.dropna().unique())
    doc = Document()

    models = sorted(scores.model.unique())
    configs = sorted(scores[scores.variant == "finetuned"].decoding.unique())
    doc.heading(1, "lmsweep report")
    doc.paragraph(
        f"{len(models)} base models ({', '.join(models)}), each fine-tuned with a LoRA adapter on "
        f"`{record['dataset']}` ({record['n_train']} training records) and decoded under "
        f"{len([c for c in configs if c != 'teacher_forced'])} configs on {record['n_test']} held-out test prompts; "
        f"seed {record['seed']}."
    )
    doc.heading(3, "How to read this report")
    doc.bullets(HOW_TO_READ)
    doc.paragraph(findings.holm_bar(comparisons, (record.get("statistics") or {}).get("alpha", 0.05),
                                    record["n_test"]))
    warnings = findings.study_warnings(record, scores, comparisons, infos)
    if warnings:
        doc.heading(3, "Read these numbers with care")
        doc.bullets(warnings)

    doc.heading(2, "The answers")
    doc.heading(3, "Which model is best (fine-tuned, baseline decoding)")
    doc.bullets(findings.best_model_sentences(scores, comparisons))
    doc.paragraph(findings.rankings_agree(scores))
    if parameters:
        doc.heading(3, "How each decoding parameter matters")
        doc.paragraph("Each value is tested against the baseline config (`*` in the sweep tables below). The best "
                      "value of a sweep is picked on these same data, so its differences from the other values are "
                      "given as intervals only, not as tests: a test against a value chosen for being best would "
                      "find it better too often.")
        for parameter in parameters:
            doc.paragraph(f"**{parameter}** (the other settings at the baseline, {_settings_text(baseline)}):")
            doc.bullets(findings.sweep_sentences(scores, comparisons, parameter, baseline.get(parameter)))
            if parameter == "num_beams" and baseline.get("do_sample"):
                doc.paragraph("The num_beams configs keep the baseline's `do_sample: true`: they are beam sampling, "
                              "not beam search. Beam search is a config with `do_sample: false` (see config.yaml).")
    doc.heading(3, "What fine-tuning bought")
    doc.bullets(findings.gain_sentences(comparisons))
    doc.heading(3, "Do the metrics agree")
    doc.paragraph(findings.disagreements(scores))

    doc.heading(2, "Model comparison (fine-tuned, baseline decoding)")
    doc.table(findings.model_table(scores, comparisons),
              "(#1) is the best rank for that metric. Token perplexity is in each model's own tokens: do not rank "
              "models with different tokenizers on it.")
    doc.paragraph("Differences between models, B − A, paired on the same test examples:")
    doc.table(findings.model_pair_table(scores, comparisons), "* significant after Holm; = identical answers.")

    doc.heading(2, "What fine-tuning bought (base model vs. adapter, baseline decoding)")
    doc.table(findings.gain_table(scores, comparisons),
              "improvement: fine-tuned against base, signed so that positive is better for every metric; "
              "ratio: fine-tuned / base.")

    plot_paths = {}
    for parameter in parameters:
        doc.heading(2, f"Decoding sweep: {parameter}")
        path = out_dir / f"sweep_{parameter}.png"
        plots.plot_sweep(scores, parameter, baseline.get(parameter), path)
        plot_paths[parameter] = path
        doc.image(path, f"sweep of {parameter}")
        doc.table(findings.sweep_table(scores, comparisons, parameter, baseline.get(parameter)),
                  "* significantly different from the baseline config (Holm); = identical answers to the baseline.")

    doc.heading(2, "Metric agreement")
    pooled = _pooled_examples(runs)
    doc.table(findings.agreement_table(scores, pooled),
              "Rank correlation between metrics: across all runs (every model, variant and config), and per "
              "test example pooled over all runs. 1 = the same order, 0 = unrelated.")

    doc.heading(2, "Examples: baseline config against each model's best config")
    for model, (best, examples) in findings.example_pairs(runs, scores).items():
        if not examples:
            doc.paragraph(f"**{model}**: its best config is the baseline itself.")
            continue
        doc.paragraph(f"**{model}**: best config `{best}` (best mean rank over BLEU, ROUGE-L and BERTScore). "
                      "The test examples whose BERTScore F1 differs most between the two:")
        doc.table(_examples_frame(examples))

    doc.heading(2, "Answer hygiene")
    doc.table(findings.hygiene_table(scores),
              "Shares of answers that are empty, that stopped at max_new_tokens before their end, and the mean "
              "share of an answer's word 3-grams that repeat an earlier one (degenerate loops).")

    doc.heading(2, "Cost against quality")
    cost_path = out_dir / "cost.png"
    if infos:
        plots.plot_cost(scores, infos, cost_path)
        doc.image(cost_path, "cost against quality")
    doc.table(findings.cost_table(scores, infos),
              "Generation time is measured inside each generate job (model loading excluded), so it is exact "
              "under warm_start too.")

    doc.heading(2, "Training")
    doc.table(training_table(record["models"]))

    runtime = runtime_table(benchmark_files)
    runtime.to_csv(out_dir / "runtime.csv", index=False)
    doc.heading(2, "Runtime")
    doc.paragraph(
        "Wall time, peak memory (MB) and CPU time from Snakemake's benchmark files (all jobs in runtime.csv)."
        + (" This run used warm_start: memory and CPU count the job's launcher only, not the forked worker; "
           "wall time is exact." if record.get("warm_start") else "")
    )
    doc.table(runtime_summary(runtime))

    doc.heading(2, "Where the numbers come from")
    doc.paragraph("Decoding configs as they ran. Every generation used a generation config built by lmsweep: "
                  "transformers' defaults, then these settings (not a model folder's own decoding defaults, unless "
                  "`decoding_defaults: model`); the complete effective configuration is in the provenance below and "
                  "in every line of the predictions files. Random streams: per-example (each test example samples "
                  "from its own seeded stream: answers do not depend on the batch), per-batch (beam sampling: "
                  "seeded per batch), none (greedy or beam search).")
    doc.table(decoding_table(record))
    doc.paragraph(batch_dependence_note(record))
    doc.bullets(overridden_notes(record))
    if "weights" in scores and scores.weights.notna().any():
        doc.paragraph("Weights behind the numbers (inference.weights): as trained (the base as training saw it, "
                      "4-bit or full precision, with the adapter beside it) or merged (the adapter merged into the "
                      "base, dequantized first when it was 4-bit), for the generated answers and for perplexity.")
        doc.table(weights_table(scores))
    doc.paragraph("Metric signatures:")
    signatures = [f"{LABELS.get(k, k)}: `{v}`" for k, v in sorted(record["metric_signatures"].items())]
    if "bertscore_f1" in record["metric_signatures"]:
        signatures.append(BERTSCORE_HASH_NOTE)
    doc.bullets(signatures)
    stats = record.get("statistics") or {}
    if stats:
        doc.paragraph(f"Statistics: {stats.get('confidence', 0.95):.0%} intervals from {stats.get('resamples')} "
                      f"bootstrap resamples, seed {stats.get('seed')}; significance level {stats.get('alpha')} after "
                      f"Holm's correction over the m = {findings.holm_family_size(comparisons)} paired tests; "
                      f"Monte-Carlo p-values redrawn with up to {stats.get('max_resamples')} resamples where that "
                      "could decide them. How each p-value was made (the `test` column of comparisons.csv): "
                      + "; ".join(sorted({_test_kind(t) for t in comparisons.test.dropna()})) + ".")
    doc.paragraph("All provenance:")
    doc.code(json.dumps(record, indent=2, sort_keys=True, default=str))

    (out_dir / "report.md").write_text(doc.markdown())
    (out_dir / "report.html").write_text(doc.html())
    return {"markdown": out_dir / "report.md", "html": out_dir / "report.html", "plots": plot_paths,
            "runtime": out_dir / "runtime.csv"}


def _settings_text(settings: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(settings.items()))


def _examples_frame(examples):
    import pandas as pd

    def short(text, n=160):
        text = " ".join(str(text).split())
        return text if len(text) <= n else text[: n - 1] + "…"

    return pd.DataFrame([{
        "test id": e["id"], "reference": short(e["reference"]),
        "baseline answer": short(e["baseline"]) or "(empty)", "best config's answer": short(e["best"]) or "(empty)",
        "BERTScore F1 (baseline → best)": f"{e['baseline score']:.3f} → {e['best score']:.3f}",
    } for e in examples])


def _pooled_examples(runs: dict):
    """Every run's per-example scores in one table (all replicates), for per-example agreement."""
    import pandas as pd

    tables = [t for run in runs.values() for t in run.tables]
    return pd.concat(tables, ignore_index=True) if tables else None
