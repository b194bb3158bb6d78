"""Models load from safetensors only, and run no repository code unless asked."""

import json

import pytest

from lmsweep import models, tiny
from lmsweep.demo_data import make_tasks
from lmsweep.prompts import format_prompt
from lmsweep.settings import Build

SIZE = {"vocab_size": 300, "hidden_size": 16, "intermediate_size": 32, "num_layers": 1, "num_heads": 2,
        "max_position_embeddings": 128}


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny_llama")
    texts = [format_prompt(r) + r["output"] for r in make_tasks(50, seed=1)]
    tiny.build(Build(architecture="llama", **SIZE), texts, seed=1, out_dir=out)
    return out


def test_a_pickled_checkpoint_is_refused(tiny_model, tmp_path):
    import shutil

    import torch
    from safetensors.torch import load_file

    pickled = tmp_path / "pickled"
    pickled.mkdir()
    shutil.copy2(tiny_model / "config.json", pickled / "config.json")
    torch.save(load_file(tiny_model / "model.safetensors"), pickled / "pytorch_model.bin")
    with pytest.raises(OSError, match="safetensors"):
        models.load_base_model(str(pickled), "cpu")
    assert models.load_base_model(str(tiny_model), "cpu").config.model_type == "llama"


def test_an_adapter_folder_holding_only_a_pickle_is_refused_by_path(tiny_model, tmp_path):
    """Issue 18: PEFT loaded an adapter_model.bin (torch.load) when no safetensors file was there."""
    import shutil

    import torch
    from peft import LoraConfig, get_peft_model
    from safetensors.torch import load_file

    adapter = tmp_path / "adapter"
    peft_model = get_peft_model(models.load_base_model(str(tiny_model), "cpu"),
                                LoraConfig(r=2, target_modules=["q_proj"]))
    peft_model.save_pretrained(adapter)
    assert models.load_for_inference(str(tiny_model), str(adapter), "cpu") is not None  # safetensors: loads
    pickled = tmp_path / "pickled"
    shutil.copytree(adapter, pickled)
    torch.save(load_file(pickled / "adapter_model.safetensors"), pickled / "adapter_model.bin")
    (pickled / "adapter_model.safetensors").unlink()
    with pytest.raises(models.ModelSetupError, match=r"adapter .*pickled holds no adapter_model.safetensors \(only "
                                                     r"adapter_model.bin: pickle files, which lmsweep never loads\)"):
        models.load_for_inference(str(tiny_model), str(pickled), "cpu")


def test_remote_code_is_off_by_default_in_the_schema_and_the_study():
    import yaml
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    schema = yaml.safe_load((repo / "config.schema.yaml").read_text())
    assert schema["properties"]["models"]["additionalProperties"]["properties"]["trust_remote_code"]["default"] is False
    study = yaml.safe_load((repo / "config.yaml").read_text())
    assert not any(m.get("trust_remote_code") for m in study["models"].values())


def test_a_model_asking_for_remote_code_fails_without_the_opt_in(tiny_model, tmp_path):
    custom = tmp_path / "custom"
    custom.mkdir()
    config = json.loads((tiny_model / "config.json").read_text())
    config["model_type"] = "lmsweep_custom"
    config["auto_map"] = {"AutoConfig": "modeling_custom.CustomConfig",
                          "AutoModelForCausalLM": "modeling_custom.CustomModel"}
    (custom / "config.json").write_text(json.dumps(config))
    (custom / "modeling_custom.py").write_text("raise SystemExit('remote code ran')\n")
    with pytest.raises(ValueError, match="trust_remote_code"):
        models.load_base_model(str(custom), "cpu")
