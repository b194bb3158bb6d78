"""Rule generate: answers for every test prompt under one decoding config, with or without the adapter.

The generation config is lmsweep's own (transformers' defaults, then the
config's settings; lmsweep.generation); a model entry with `decoding_defaults:
model` takes its folder's generation_config.json for the fields the settings
leave unset instead. Writes one JSON line per test record and the run's
GenerationInfo: the effective generation config, the model defaults it
overrode, truncation counts and timings.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from lmsweep.records import GenerationInfo
from lmsweep.settings import Decoding, Load, RunLabels

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Settings:
    labels: RunLabels
    base_model: str  # the folder or Hub id of the base, or the merged model's folder
    load: Load
    decoding: Decoding
    batch_size: int | str  # prompts per generate() call, or "auto"
    seed: int
    device: str
    prompt_format: str = "alpaca"  # or chat_template (lmsweep.prompts)


@dataclass(frozen=True)
class Paths:
    test: str
    base: list | str  # the model folder the workflow made (built, or merged), when there is one
    adapter: list | str  # the adapter folder of the finetuned variant as trained
    predictions: str
    info: str


def run(settings: Settings, paths: Paths, threads: int = 1) -> GenerationInfo:
    import time

    started = time.perf_counter()
    from lmsweep.models import load_for_step

    adapter = paths.adapter or None
    labels = settings.labels
    model, tokenizer, device = load_for_step(settings.base_model, adapter, settings.load, settings.device, threads,
                                             settings.seed, padding_side="left", name=labels.model,
                                             merge=settings.load.weights == "merged" and not settings.load.merged_folder)
    from lmsweep.generation import build_generation_config, effective_settings, generate
    from lmsweep.io import read_jsonl, write_jsonl
    from lmsweep.models import inference_path
    from lmsweep.prompts import Prompter
    from lmsweep.reproducibility import library_versions

    records = read_jsonl(paths.test)
    prompter = Prompter(settings.prompt_format, tokenizer, labels.model)
    decoding = settings.decoding
    config, overridden = build_generation_config(
        decoding.settings, model.generation_config if hasattr(model, "generation_config") else None,
        tokenizer, model_defaults=decoding.defaults == "model",
    )
    for key, (theirs, ours) in sorted(overridden.items()):
        log.warning(f"the model folder's generation config sets {key}={theirs!r}; this run uses {ours!r} "
                    "(decoding_defaults: library), as for every model")
    loaded = time.perf_counter()
    results = generate(model, prompter, records, decoding.settings, settings.batch_size, settings.seed,
                       labels.replicate, generation_config=config)
    finished = time.perf_counter()
    effective = effective_settings(config)
    meta = {"model": labels.model, "variant": labels.variant, "decoding": labels.decoding,
            "settings": decoding.settings, "generation_config": effective, "sweep": decoding.sweep,
            "seed": settings.seed, "replicate": labels.replicate, "prompt_format": settings.prompt_format,
            "base_model": settings.base_model,
            "adapter": adapter, "inference": inference_path(settings.load, adapter), "versions": library_versions()}
    write_jsonl(paths.predictions, [
        {"id": r["id"], "prompt": prompter.text(r), "reference": r["output"], **result, **meta}
        for r, result in zip(records, results)
    ])
    new_tokens = sum(r["new_tokens"] for r in results)
    info = GenerationInfo(
        **{k: v for k, v in meta.items()},
        n_examples=len(records),
        overridden_model_defaults={k: {"model": t, "used": o} for k, (t, o) in sorted(overridden.items())},
        hit_max_new_tokens=sum(r["hit_max_new_tokens"] for r in results),
        prompts_cut=sum(1 for r in results if r["prompt_tokens_cut"]),
        batch_sizes=sorted({r["batch_size"] for r in results}),
        sampling=results[0]["sampling"] if results else None,
        new_tokens=new_tokens,
        seconds={"load": round(loaded - started, 3), "generate": round(finished - loaded, 3)},
        new_tokens_per_second=round(new_tokens / max(finished - loaded, 1e-9), 2),
        device=str(device),
    )
    info.save(paths.info)
    share = info.hit_max_new_tokens / max(1, len(records))
    if share > 0.1:
        log.warning(f"{info.hit_max_new_tokens} of {len(records)} answers ({share:.0%}) stopped at "
                    f"max_new_tokens={config.max_new_tokens} before their end: raise decoding.baseline.max_new_tokens "
                    "if the answers should be longer")
    log.info(f"{len(records)} predictions written to {paths.predictions}")
    return info
