"""What identifies a base model's weights: a local folder's fingerprint, a cached Hub snapshot's commit."""

import os

from lmsweep import modelsource


def test_a_folders_fingerprint_moves_with_its_files_and_only_then(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "llama"}')
    (folder / "model.safetensors").write_bytes(b"\0" * 1000)
    first = modelsource.folder_fingerprint(folder)
    assert modelsource.folder_fingerprint(folder) == first
    (folder / "model.safetensors").write_bytes(b"\1" + b"\0" * 999)  # same size, new content
    second = modelsource.folder_fingerprint(folder)
    assert second != first
    (folder / "tokenizer.json").write_text("{}")  # a file added
    assert modelsource.folder_fingerprint(folder) != second


def test_large_files_are_fingerprinted_by_size_and_time_not_read(tmp_path, monkeypatch):
    monkeypatch.setattr(modelsource, "CONTENT_HASH_BYTES", 10)
    folder = tmp_path / "model"
    folder.mkdir()
    weights = folder / "model.safetensors"
    weights.write_bytes(b"\0" * 100)
    os.utime(weights, ns=(1_000_000_000, 1_000_000_000))
    first = modelsource.folder_fingerprint(folder)
    weights.write_bytes(b"\1" * 100)
    os.utime(weights, ns=(1_000_000_000, 1_000_000_000))
    assert modelsource.folder_fingerprint(folder) == first  # same size and time: not read, by design
    os.utime(weights, ns=(2_000_000_000, 2_000_000_000))
    assert modelsource.folder_fingerprint(folder) != first


def cache_snapshot(hub_cache, repo_id, commit, ref="main"):
    """A model in huggingface_hub's cache layout: refs/<ref> names the commit, snapshots/<commit>/ its files."""
    repo = hub_cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / ref).write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True, exist_ok=True)
    (snapshot / "config.json").write_text("{}")


def test_a_hub_model_is_identified_by_its_cached_commit_and_moves_with_it(tmp_path):
    hf_home = tmp_path / "hf"
    assert modelsource.describe("org/model", None, str(hf_home)) == {"kind": "hub", "commit": None}
    cache_snapshot(hf_home / "hub", "org/model", "a" * 40)
    assert modelsource.describe("org/model", None, str(hf_home)) == {"kind": "hub", "commit": "a" * 40}
    cache_snapshot(hf_home / "hub", "org/model", "b" * 40)  # a newer main was fetched
    assert modelsource.describe("org/model", None, str(hf_home))["commit"] == "b" * 40
    cache_snapshot(hf_home / "hub", "org/model", "c" * 40, ref="v1")
    assert modelsource.describe("org/model", "v1", str(hf_home))["commit"] == "c" * 40


def test_a_local_folder_is_a_folder_whatever_its_name(tmp_path):
    (tmp_path / "org" / "model").mkdir(parents=True)
    (tmp_path / "org" / "model" / "config.json").write_text("{}")
    assert modelsource.describe(str(tmp_path / "org" / "model"))["kind"] == "folder"
