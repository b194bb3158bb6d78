"""Rule merge_adapter: each adapter merged once into its base model's weights, for fast inference.

A 4-bit base (QLoRA) is dequantized first: the adapter was trained against
the quantized weights, so it is merged into those, in the compute dtype
(bf16). The folder loads with plain transformers.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from lmsweep.records import MergeInfo
from lmsweep.settings import Load

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Settings:
    model: str
    base_model: str
    load: Load
    seed: int
    device: str


@dataclass(frozen=True)
class Paths:
    base: list  # the built model folder, when the workflow built it
    adapter: str
    merged: str


def run(settings: Settings, paths: Paths, threads: int = 1) -> MergeInfo:
    import time

    started = time.perf_counter()
    from lmsweep.models import load_for_step

    model, tokenizer, device = load_for_step(settings.base_model, paths.adapter, settings.load, settings.device,
                                             threads, settings.seed, name=settings.model, merge=True)
    from lmsweep.io import atomic_path
    from lmsweep.reproducibility import library_versions

    with atomic_path(paths.merged, is_dir=True) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        info = MergeInfo(
            base_model=settings.base_model, adapter=paths.adapter, model_source=settings.load.source,
            dequantized_from_4bit=settings.load.quantization.load_in_4bit, dtype=str(next(model.parameters()).dtype),
            seconds=round(time.perf_counter() - started, 1), versions=library_versions(),
        )
        info.save(tmp / "merge_info.json")
    log.info(f"merged {paths.adapter} into {settings.base_model}: {paths.merged} ({info.dtype}, {info.seconds} s)")
    return info
