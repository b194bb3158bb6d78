"""What a study needs from the Hugging Face Hub, what the local cache holds, and fetching the rest.

Compute nodes often have no internet. `snakemake --cores 1 prefetch` runs on
the submit host, once, and downloads every Hub model and dataset the config
names into the cache the jobs read (config `hf_home`; null = the user's
HF_HOME). Jobs on a cluster then run with the Hub's offline switches
(OFFLINE_ENV) and never reach for the network.

"Cached" is decided from the files on disk, as the libraries decide it when
offline: a model is there when its snapshot for the configured revision holds
config.json and every weight shard (huggingface_hub's cache layout, looked up
with snapshot_download(local_files_only=True)); a dataset is there when
`datasets` has a prepared copy it can load offline.
"""

import fnmatch
import json
import logging
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from lmsweep.sources import OFFLINE_BERTSCORE, is_local

log = logging.getLogger(__name__)

# Every library that could reach the Hub, switched off (huggingface_hub,
# datasets, and transformers' older switch).
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}

# The files a model repository is fetched with: config, tokenizer, safetensors
# weights, remote code. lmsweep loads safetensors only (models.py), so the
# PyTorch, TensorFlow, Flax and ONNX copies many repositories also carry are
# skipped (Llama-2-7b-hf: 13 GB instead of 40 GB).
MODEL_FILES = ["*.json", "*.safetensors", "*.model", "*.txt", "*.py", "*.tiktoken", "*.jinja"]


@dataclass(frozen=True)
class Item:
    """One thing to fetch from the Hub."""

    kind: str  # "model" or "dataset"
    repo_id: str
    revision: str | None = None
    # Weights the loader accepts: "safetensors" (lmsweep's loaders) or "any"
    # (bert-score loads whatever the repository has; .bin only when there is no safetensors).
    weights: str = "safetensors"
    split: str | None = None  # datasets: the split prepare_data reads
    used_by: str = ""  # the config key that names it

    def describe(self) -> str:
        at = f"@{self.revision}" if self.revision else ""
        return f"{self.kind} {self.repo_id}{at} ({self.used_by})"


def needs(config: dict) -> list:
    """The Hub models and dataset `config` reads, in config order, each once."""
    items = []
    for name, entry in config["models"].items():
        path = entry.get("name_or_path")
        if path and not is_local(path):
            items.append(Item("model", path, entry.get("revision"), used_by=f"models.{name}.name_or_path"))
    dataset = config["dataset"]
    source = dataset["source"]
    if source != "synthetic" and not is_local(source):
        items.append(Item("dataset", source, dataset.get("revision"), split=dataset.get("split", "train"),
                          used_by="dataset.source"))
    bertscore = config.get("scoring", {}).get("bertscore", {}).get("model_type", "roberta-large")
    if bertscore != OFFLINE_BERTSCORE and not is_local(bertscore):
        items.append(Item("model", bertscore, weights="any", used_by="scoring.bertscore.model_type"))
    unique = {}
    for item in items:
        unique.setdefault((item.kind, item.repo_id, item.revision), item)
    return list(unique.values())


def cache_env(hf_home: str) -> dict:
    """Environment that points huggingface_hub, transformers and datasets at `hf_home`.

    HF_HUB_CACHE and HF_DATASETS_CACHE are set too, because either one set in
    the user's shell would otherwise win over HF_HOME.
    """
    home = os.path.abspath(os.path.expanduser(hf_home))
    return {"HF_HOME": home, "HF_HUB_CACHE": os.path.join(home, "hub"),
            "HF_DATASETS_CACHE": os.path.join(home, "datasets")}


def cache_dirs(hf_home: str | None = None) -> tuple:
    """(hub cache, datasets cache) under `hf_home`, or where the libraries look by default."""
    if hf_home:
        env = cache_env(hf_home)
        return Path(env["HF_HUB_CACHE"]), Path(env["HF_DATASETS_CACHE"])
    from huggingface_hub import constants

    datasets_cache = os.environ.get("HF_DATASETS_CACHE") or os.path.join(constants.HF_HOME, "datasets")
    return Path(constants.HF_HUB_CACHE), Path(os.path.expanduser(datasets_cache))


def snapshot_dir(repo_id: str, revision: str | None, hub_cache, repo_type: str = "model") -> Path | None:
    """The cached snapshot folder of `repo_id` at `revision` (branch, tag or commit), or None."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo_id, repo_type=repo_type, revision=revision,
                                      cache_dir=hub_cache, local_files_only=True))
    except LocalEntryNotFoundError:
        return None


def weights_complete(snapshot: Path, weights: str = "safetensors") -> bool:
    """Whether `snapshot` holds a complete set of weights (every shard its index names)."""
    kinds = [("model.safetensors.index.json", "model.safetensors")]
    if weights == "any":
        kinds.append(("pytorch_model.bin.index.json", "pytorch_model.bin"))
    for index, single in kinds:
        if (snapshot / index).is_file():
            shards = set(json.loads((snapshot / index).read_text())["weight_map"].values())
            return all((snapshot / shard).is_file() for shard in shards)
        if (snapshot / single).is_file():
            return True
    return False


def camelcase_to_snakecase(name: str) -> str:
    """datasets.naming.camelcase_to_snakecase, without importing datasets (seconds)."""
    name = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    name = re.sub(r"([a-z\d])([A-Z])", r"\1_\2", name)
    return name.lower()


def datasets_cache_dir(repo_id: str, datasets_cache) -> Path:
    """Where `datasets` keeps the prepared copy of a Hub dataset (namespace___name)."""
    parts = repo_id.split("/")
    parts[-1] = camelcase_to_snakecase(parts[-1])
    return Path(datasets_cache) / "___".join(parts)


def is_cached(item: Item, hub_cache, datasets_cache) -> bool:
    if item.kind == "dataset":
        # What datasets' CachedDatasetModuleFactory looks for when offline:
        # a prepared copy under <namespace>___<name>/<config>/<version>/<hash>/.
        return any(p.is_dir() for p in datasets_cache_dir(item.repo_id, datasets_cache).glob("*/*/*"))
    snapshot = snapshot_dir(item.repo_id, item.revision, hub_cache)
    return snapshot is not None and (snapshot / "config.json").is_file() and weights_complete(snapshot, item.weights)


def missing(items, hub_cache, datasets_cache) -> list:
    """The items the cache does not hold yet."""
    return [item for item in items if not is_cached(item, hub_cache, datasets_cache)]


def model_patterns(item: Item, repo_files=None) -> list:
    """allow_patterns for snapshot_download: MODEL_FILES, plus .bin weights where only those exist."""
    if item.weights == "any" and repo_files is not None:
        if not any(fnmatch.fnmatch(f, "*.safetensors") for f in repo_files):
            return MODEL_FILES + ["*.bin"]
    return list(MODEL_FILES)


def fetch_model(item: Item, hub_cache, datasets_cache=None) -> str:
    from huggingface_hub import HfApi, snapshot_download

    repo_files = HfApi().list_repo_files(item.repo_id, revision=item.revision) if item.weights == "any" else None
    return snapshot_download(item.repo_id, revision=item.revision, cache_dir=hub_cache,
                             allow_patterns=model_patterns(item, repo_files))


def fetch_dataset(item: Item, hub_cache=None, datasets_cache=None) -> str:
    # load_dataset downloads and prepares the copy that datasets loads offline;
    # the raw Hub files alone are not enough for it.
    import datasets

    loaded = datasets.load_dataset(item.repo_id, split=item.split, revision=item.revision,
                                   cache_dir=str(datasets_cache))
    return f"{len(loaded)} records in {datasets_cache_dir(item.repo_id, datasets_cache)}"


FETCHERS = {"model": fetch_model, "dataset": fetch_dataset}


def fetch_missing(items, hub_cache, datasets_cache, fetchers=None) -> list:
    """Fetch every item the cache lacks; return one record per item (what was done, where)."""
    fetchers = fetchers or FETCHERS
    records = []
    for item in items:
        if is_cached(item, hub_cache, datasets_cache):
            log.info(f"cached   {item.describe()}")
            records.append({**asdict(item), "action": "cached"})
            continue
        log.info(f"fetching {item.describe()}")
        where = fetchers[item.kind](item, hub_cache, datasets_cache)
        if not is_cached(item, hub_cache, datasets_cache):
            raise RuntimeError(f"{item.describe()} was fetched to {where}, but the cache still lacks part of it "
                               "(config.json or weight shards); see the log above")
        log.info(f"fetched  {item.describe()} -> {where}")
        records.append({**asdict(item), "action": "fetched", "where": str(where)})
    return records
