"""Fixtures shared by the unit tests: demo records and tiny models, built offline once per session."""

import pytest

from lmsweep.demo_data import make_tasks
from lmsweep.prompts import format_prompt

# Small enough to build in a second; the demo tasks' prompts fit its 256 positions.
TINY_SIZE = {
    "vocab_size": 300, "hidden_size": 32, "intermediate_size": 64,
    "num_layers": 1, "num_heads": 2, "max_position_embeddings": 256,
}


@pytest.fixture(scope="session")
def demo_records():
    """Demo task records with 1-based ids, as data.validate() returns them."""
    return [{"id": i, **r} for i, r in enumerate(make_tasks(n=60, seed=11), start=1)]


@pytest.fixture(scope="session")
def build_tiny(tmp_path_factory):
    """build_tiny(architecture) -> folder with a seeded random-weight model and its BPE tokenizer."""
    from lmsweep import tiny

    texts = [format_prompt(r) + r["output"] for r in make_tasks(n=300, seed=0)]
    built = {}

    def build(architecture: str):
        if architecture not in built:
            built[architecture] = tmp_path_factory.mktemp(f"tiny_{architecture}")
            tiny.build(architecture, texts, TINY_SIZE, seed=0, out_dir=built[architecture])
        return built[architecture]

    return build


@pytest.fixture(scope="session")
def tiny_llama(build_tiny):
    return build_tiny("llama")


@pytest.fixture(scope="session")
def llama2_layout(tiny_llama, tmp_path_factory):
    """The tiny Llama laid out as Llama-2's folders are: a tokenizer without a pad token, and a
    generation_config.json with the model's own decoding defaults (Meta's: sampling, top_p 0.9,
    temperature 0.6, max_length 4096; pad_token_id 0)."""
    import json
    import shutil

    from transformers import AutoTokenizer

    folder = tmp_path_factory.mktemp("llama2_layout") / "model"
    shutil.copytree(tiny_llama, folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.pad_token = None
    tokenizer.save_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    config["pad_token_id"] = None
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "generation_config.json").write_text(json.dumps({
        "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id, "pad_token_id": 0,
        "do_sample": True, "temperature": 0.6, "top_p": 0.9, "max_length": 4096,
    }))
    return folder
