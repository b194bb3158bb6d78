"""The report's tables of where the numbers came from and what they cost: runtime, training, decoding as
it ran, the weights behind each number, and the examples shown side by side."""

from __future__ import annotations

from pathlib import Path

from lmsweep.vocabulary import TEACHER_FORCED

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
            # benchmarks/finetune/<model>.tsv, or <model>@<adaptation>.tsv for a swept adapter (its runs' variant)
            model, _, adaptation = model.partition("@")
            variant = adaptation or "finetuned"
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
            "adapter": name, "base model": m["base_model"], "steps": m["global_step"],
            "train loss": f"{m['train_loss']:.3f}" if m["train_loss"] is not None else "n/a",
            "validation loss (last, lowest)": _validation_text(m.get("validation") or {}),
            "processes": m.get("processes", 1), "effective batch": m.get("effective_batch_size"),
            "examples cut at max_length": (f"{lengths['truncated']} of {lengths['examples']} "
                                           f"(max_length {lengths['max_length']})" if lengths else "n/a"),
            "LoRA": f"r {m['lora']['r']}, alpha {m['lora']['alpha']}, on {', '.join(m['target_modules'])}"
                    + (f"; in full: {', '.join(m['lora']['modules_to_save'])}" if m["lora"].get("modules_to_save") else ""),
            "4-bit": "yes" if m["quantization"].get("load_in_4bit") else "no",
        })
    return pd.DataFrame(rows)


def _validation_text(validation: dict) -> str:
    if not validation.get("records") or validation.get("last_loss") is None:
        return "n/a (training.validation_size 0)"
    return (f"{validation['last_loss']:.3f}, {validation['best_loss']:.3f} at step {validation['best_step']} "
            f"({validation['records']} records)")


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
        forced = group.decoding == TEACHER_FORCED
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


def test_kind(test: str) -> str:
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


def examples_frame(examples):
    import pandas as pd

    def short(text, n=160):
        text = " ".join(str(text).split())
        return text if len(text) <= n else text[: n - 1] + "…"

    return pd.DataFrame([{
        "test id": e["id"], "reference": short(e["reference"]),
        "baseline answer": short(e["baseline"]) or "(empty)", "best config's answer": short(e["best"]) or "(empty)",
        "BERTScore F1 (baseline → best)": f"{e['baseline score']:.3f} → {e['best score']:.3f}",
    } for e in examples])


def pooled_examples(runs: dict):
    """Every run's per-example scores in one table (all replicates), for per-example agreement."""
    import pandas as pd

    tables = [t for run in runs.values() for t in run.tables]
    return pd.concat(tables, ignore_index=True) if tables else None
