"""What makes a number reproducible: one seed for every generator a step uses, and the library versions
recorded beside every result."""

import random
from importlib import metadata


# The libraries whose versions can move a number; recorded beside every result.
TRACKED_PACKAGES = (
    "torch",
    "transformers",
    "peft",
    "trl",
    "datasets",
    "accelerate",
    "bitsandbytes",
    "tokenizers",
    "sacrebleu",
    "rouge-score",
    "bert-score",
    "pandas",
    "numpy",
)


def library_versions(packages=TRACKED_PACKAGES) -> dict:
    """Installed versions of `packages` (None for one that is not installed)."""
    import platform

    out = {"python": platform.python_version()}
    for name in packages:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and (if this process uses it) torch."""
    random.seed(seed)
    try:
        import numpy as np

        np.random.seed(seed)
    except ImportError:
        pass
    import sys

    if "torch" in sys.modules:
        import torch

        torch.manual_seed(seed)
