"""Rule build_tiny_model: a tiny random-weight model of a real architecture, for the demo and the tests."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from lmsweep.settings import Build

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Settings:
    build: Build
    seed: int


@dataclass(frozen=True)
class Paths:
    train: str  # the tokenizer is trained on the training split's text
    model: str


def run(settings: Settings, paths: Paths, threads: int = 1) -> None:
    import torch

    from lmsweep import tiny
    from lmsweep.io import atomic_path, read_jsonl
    from lmsweep.prompts import format_prompt
    from lmsweep.reproducibility import seed_everything

    torch.set_num_threads(1)
    seed_everything(settings.seed)
    texts = [format_prompt(r) + r["output"] for r in read_jsonl(paths.train)]
    with atomic_path(paths.model, is_dir=True) as tmp:
        tiny.build(settings.build, texts, settings.seed, tmp)
    log.info(f"built a tiny {settings.build.architecture} model in {paths.model}: {settings.build}")
