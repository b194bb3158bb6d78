"""Rule build_tiny_model: a seeded random-weight model of a real architecture, with a tokenizer trained on the
training split's text, that loads with plain transformers."""

import hashlib

import pytest

from lmsweep.demo_data import make_tasks
from lmsweep.io import write_jsonl
from lmsweep.prompts import format_prompt
from lmsweep.steps import build_tiny_model as step

SIZE = {"vocab_size": 300, "hidden_size": 32, "intermediate_size": 64, "num_layers": 1, "num_heads": 2,
        "max_position_embeddings": 256}


@pytest.fixture(scope="module")
def train(tmp_path_factory):
    path = tmp_path_factory.mktemp("split") / "train.jsonl"
    write_jsonl(path, [{"id": i, **r} for i, r in enumerate(make_tasks(n=200, seed=2), start=1)])
    return path


def build(train, folder, architecture="llama", seed=0):
    from lmsweep.settings import Build

    settings = step.Settings(build=Build(architecture=architecture, **SIZE), seed=seed)
    step.run(settings, step.Paths(train=str(train), model=str(folder)))
    return folder


def weights_digest(folder) -> str:
    return hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()


@pytest.mark.parametrize("architecture", ["llama", "mistral", "phi"])
def test_the_model_is_the_architecture_asked_for_and_loads_with_plain_transformers(train, tmp_path, architecture):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = build(train, tmp_path / "model", architecture)
    model = AutoModelForCausalLM.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert model.config.model_type == architecture
    assert model.config.hidden_size == SIZE["hidden_size"] and model.config.num_hidden_layers == 1
    assert model.config.max_position_embeddings == SIZE["max_position_embeddings"]
    assert len(tokenizer) <= SIZE["vocab_size"] == model.config.vocab_size
    assert tokenizer.eos_token is not None and tokenizer.pad_token is not None
    # The tokenizer was trained on the split's text: its merges make a prompt fewer tokens than bytes, and it
    # gives the text back whole.
    prompt = format_prompt(make_tasks(n=1, seed=2)[0])
    ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    assert len(ids) < 0.7 * len(prompt.encode()) and tokenizer.decode(ids) == prompt
    with torch.no_grad():
        logits = model(**tokenizer(prompt, return_tensors="pt")).logits
    assert logits.shape[-1] == model.config.vocab_size and torch.isfinite(logits).all()


def test_the_build_is_reproducible_for_a_seed_and_moves_with_it(train, tmp_path):
    first = weights_digest(build(train, tmp_path / "a", seed=0))
    assert weights_digest(build(train, tmp_path / "b", seed=0)) == first
    assert weights_digest(build(train, tmp_path / "c", seed=1)) != first
    assert (tmp_path / "a" / "tokenizer.json").read_bytes() == (tmp_path / "b" / "tokenizer.json").read_bytes()


def test_a_failed_build_leaves_no_folder_that_looks_finished(train, tmp_path, monkeypatch):
    from lmsweep import tiny

    def broken(*args, **kwargs):
        raise RuntimeError("out of disk")

    monkeypatch.setattr(tiny, "build", broken)
    with pytest.raises(RuntimeError, match="out of disk"):
        build(train, tmp_path / "model")
    assert not (tmp_path / "model").exists()
