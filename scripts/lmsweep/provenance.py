"""Where every number of the report came from: data, adapters, decoding as it ran, metrics, versions.

The record built here is the report's own (shown as JSON at its end); it is
made from the steps' typed records, each read and checked (lmsweep.records).
"""

from pathlib import Path

from lmsweep import checks
from lmsweep.records import GenerationInfo, Manifest, PerplexitySummary, ScoreSummary, TrainingInfo

# bert-score 0.3.13 writes the version of its previous release into its own hash code.
BERTSCORE_HASH_NOTE = (
    "bert-score 0.3.13 writes `version=0.3.12` into its own hash code (a quirk of that release, see the "
    "installed version under Versions); the hash describes the model, layer, idf and rescaling used."
)


def adapters_info(adapters) -> dict:
    """{adapter: what trained it}: the baseline adapter by its model's name, a swept one as <model>@<adaptation>."""
    models = {}
    for adapter in adapters:
        info = TrainingInfo.load(Path(adapter) / "training_info.json", rebuild=adapter)
        settings = info.settings
        models[info.model if info.adaptation is None else f"{info.model}@{info.adaptation}"] = {
            "model": info.model,
            "adaptation": info.adaptation,
            "validation": info.validation,
            "cost": info.cost,
            "base_model": settings["base_model"],
            "model_source": settings.get("model_source"),
            "prompt_format": settings.get("prompt_format", "alpaca"),
            "lora": settings["lora"],
            "target_modules": info.target_modules,
            "training": settings["training"],
            "quantization": settings["quantization"],
            "processes": info.processes,
            "effective_batch_size": info.effective_batch_size,
            "global_step": info.global_step,
            "train_loss": info.train_loss,
            "lengths": info.lengths,
            "trust_remote_code": settings.get("trust_remote_code", False),
        }
    return models


def read_generation_info(paths) -> list:
    """Every generate job's GenerationInfo, checked (its fix rebuilds the predictions beside it)."""
    return [GenerationInfo.load(p, rebuild=str(p).removesuffix(".info.json") + ".jsonl") for p in paths]


def generation_records(infos) -> dict:
    """Per decoding config: the study's settings, and per model the effective generation config as it ran."""
    configs = {}
    for info in infos:
        entry = configs.setdefault(info.decoding, {"settings": info.settings, "sweep": info.sweep, "models": {}})
        entry["models"].setdefault(f"{info.model}/{info.variant}", {
            "generation_config": info.generation_config,
            "overridden_model_defaults": info.overridden_model_defaults,
            "sampling": info.sampling,
            "batch_sizes": info.batch_sizes,
            "prompts_cut": info.prompts_cut,
        })
    return configs


def perplexity_records(paths) -> dict:
    """Per (model/variant): how much of the reference answers perplexity could score (a context cuts them)."""
    out = {}
    for path in paths:
        labels = checks.labels_of(path, "perplexity")
        summary = PerplexitySummary.load(path)
        out[f"{labels['model']}/{labels['variant']}"] = {
            "answers_cut": summary.answers_cut, "bytes_cut": summary.bytes_cut,
            "answer_bytes": summary.answer_bytes, "n_examples": summary.n_examples,
        }
    return out


def provenance(manifest_path, adapters, summaries, generation_info, dataset: str, baseline: dict, seed: int,
               statistics: dict, warm_start: bool = False, perplexities=()) -> dict:
    manifest = Manifest.load(manifest_path)
    trained = adapters_info(adapters)
    signatures, versions = {}, {}
    for path in summaries:
        summary = ScoreSummary.load(path)
        for metric, result in summary.metrics.items():
            signatures[metric] = result["signature"]
        versions = summary.versions
    return {
        "dataset": dataset,
        "read": manifest.read,
        "dataset_form": manifest.form,
        "dataset_sha256": manifest.sha256,
        "dropped_records": manifest.dropped,
        "n_train": manifest.n_train,
        "n_test": manifest.n_test,
        "train_test_overlap": manifest.train_test_overlap,
        "perplexity": perplexity_records(perplexities),
        "seed": seed,
        "baseline": baseline,
        "decoding": generation_records(read_generation_info(generation_info)),
        # The baseline adapters, by model, then every adapter, the swept ones as <model>@<adaptation>.
        "models": {name: entry for name, entry in trained.items() if entry["adaptation"] is None},
        "adapters": trained,
        "metric_signatures": signatures,
        "statistics": statistics,
        "versions": versions,
        "warm_start": warm_start,
    }
