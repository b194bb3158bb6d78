"""Where every number of the report came from: data, adapters, decoding as it ran, metrics, versions."""

from pathlib import Path

from lmsweep import checks

# bert-score 0.3.13 writes the version of its previous release into its own hash code.
BERTSCORE_HASH_NOTE = (
    "bert-score 0.3.13 writes `version=0.3.12` into its own hash code (a quirk of that release, see the "
    "installed version under Versions); the hash describes the model, layer, idf and rescaling used."
)


def adapters_info(adapters) -> dict:
    models = {}
    for adapter in adapters:
        info = checks.read_json_checked(Path(adapter) / "training_info.json",
                                        ["model", "settings", "target_modules", "global_step", "train_loss"],
                                        rebuild=adapter)
        settings = info["settings"]
        models[info["model"]] = {
            "base_model": settings["base_model"],
            "model_source": settings.get("model_source"),
            "lora": settings["lora"],
            "target_modules": info["target_modules"],
            "training": settings["training"],
            "quantization": settings["quantization"],
            "processes": info.get("processes", 1),
            "effective_batch_size": info.get("effective_batch_size"),
            "global_step": info["global_step"],
            "train_loss": info["train_loss"],
            "lengths": info.get("lengths"),
            "trust_remote_code": settings.get("trust_remote_code", False),
        }
    return models


GENERATION_INFO_KEYS = ["model", "variant", "decoding", "settings", "generation_config", "seconds", "new_tokens",
                        "n_examples", "hit_max_new_tokens", "prompts_cut"]


def read_generation_info(paths) -> list:
    """Every generate job's <run>.info.json, checked (its fix rebuilds the predictions beside it)."""
    return [checks.read_json_checked(p, GENERATION_INFO_KEYS, rebuild=str(p).removesuffix(".info.json") + ".jsonl")
            for p in paths]


def generation_records(infos) -> dict:
    """Per decoding config: the study's settings, and per model the effective generation config as it ran."""
    configs = {}
    for info in infos:
        entry = configs.setdefault(info["decoding"], {"settings": info["settings"], "sweep": info.get("sweep"),
                                                      "models": {}})
        entry["models"].setdefault(f"{info['model']}/{info['variant']}", {
            "generation_config": info["generation_config"],
            "overridden_model_defaults": info.get("overridden_model_defaults", {}),
            "sampling": info.get("sampling"),
            "batch_sizes": info.get("batch_sizes"),
            "prompts_cut": info.get("prompts_cut", 0),
        })
    return configs


def perplexity_records(paths) -> dict:
    """Per (model/variant): how much of the reference answers perplexity could score (a context cuts them)."""
    out = {}
    for path in paths:
        labels = checks.labels_of(path, "perplexity")
        summary = checks.read_json_checked(path, ["n_examples"])
        out[f"{labels['model']}/{labels['variant']}"] = {
            "answers_cut": summary.get("answers_cut", 0), "bytes_cut": summary.get("bytes_cut", 0),
            "answer_bytes": summary.get("answer_bytes"), "n_examples": summary["n_examples"],
        }
    return out


def provenance(manifest_path, adapters, summaries, generation_info, dataset: dict, baseline: dict, seed: int,
               statistics: dict | None = None, warm_start: bool = False, perplexities=()) -> dict:
    manifest = checks.read_json_checked(manifest_path, ["sha256", "dropped", "n_train", "n_test"])
    signatures, versions = {}, {}
    for path in summaries:
        summary = checks.read_json_checked(path, ["metrics", "versions"])
        for metric, result in summary["metrics"].items():
            signatures[metric] = result["signature"]
        versions = summary["versions"]
    infos = read_generation_info(generation_info)
    return {
        "dataset": dataset["source"],
        "read": manifest.get("read"),
        "dataset_sha256": manifest["sha256"],
        "dropped_records": manifest["dropped"],
        "n_train": manifest["n_train"],
        "n_test": manifest["n_test"],
        "train_test_overlap": manifest.get("train_test_overlap", 0),
        "perplexity": perplexity_records(perplexities),
        "seed": seed,
        "baseline": baseline,
        "decoding": generation_records(infos),
        "models": adapters_info(adapters),
        "metric_signatures": signatures,
        "statistics": statistics or {},
        "versions": versions,
        "warm_start": warm_start,
    }
