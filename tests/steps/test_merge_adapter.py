"""Rule merge_adapter: the adapter merged into its base gives the numbers the base with its adapter gives
(inference.weights: merged, the production default, against as_trained), in a folder that loads with plain
transformers."""

import json

import pytest

from lmsweep.io import write_jsonl
from lmsweep.prompts import format_prompt
from lmsweep.settings import Lora, Training

LORA = {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": None, "modules_to_save": ["embed_tokens", "lm_head"]}
TRAINING = {
    "epochs": 1, "max_steps": 4, "batch_size": 4, "gradient_accumulation_steps": 1, "learning_rate": 3.0e-3,
    "lr_scheduler": "constant", "warmup": 0, "weight_decay": 0.0, "optim": "adamw_torch", "max_length": 256,
    "gradient_checkpointing": False, "padding_free": False, "logging_steps": 1, "save_steps": 100, "validation_size": 0,
}


@pytest.fixture(scope="module")
def adapter(tiny_llama, demo_records, tmp_path_factory, cpu_load):
    """A LoRA adapter of the tiny Llama, trained a few steps (its modules to save changed too)."""
    from lmsweep.train import train_adapter

    folder = tmp_path_factory.mktemp("trained")
    write_jsonl(folder / "train.jsonl", demo_records[:16])
    train_adapter(folder / "train.jsonl", str(tiny_llama), folder / "adapter", folder / "train_log.csv",
                  folder / "checkpoints", model_name="tiny_llama", lora=Lora(**LORA), training=Training(**TRAINING),
                  load=cpu_load(), seed=3, device="cpu")
    return folder / "adapter"


@pytest.fixture(scope="module")
def merged(tiny_llama, adapter, tmp_path_factory, cpu_load):
    from lmsweep.steps import merge_adapter as step

    folder = tmp_path_factory.mktemp("merge") / "tiny_llama"
    settings = step.Settings(model="tiny_llama", base_model=str(tiny_llama), load=cpu_load(), seed=3, device="cpu")
    info = step.run(settings, step.Paths(base=str(tiny_llama), adapter=str(adapter), merged=str(folder)))
    return folder, info


def test_the_merged_model_gives_the_logits_of_the_base_with_its_adapter(tiny_llama, adapter, merged, demo_records):
    import torch
    from transformers import AutoModelForCausalLM

    from lmsweep.models import load_for_inference, load_tokenizer

    as_trained = load_for_inference(str(tiny_llama), str(adapter), "cpu")
    plain = AutoModelForCausalLM.from_pretrained(merged[0]).eval()
    base = AutoModelForCausalLM.from_pretrained(tiny_llama).eval()
    tokenizer = load_tokenizer(str(merged[0]))
    batch = tokenizer([format_prompt(r) + r["output"] for r in demo_records[20:26]], return_tensors="pt",
                      padding=True)
    with torch.no_grad():
        want, got, untrained = (m(**batch).logits for m in (as_trained, plain, base))
    assert torch.allclose(got, want, atol=1e-4, rtol=1e-4), (got - want).abs().max()
    assert (got - untrained).abs().max() > 1e-2  # the adapter changed the model: the test can tell


def test_the_merged_folder_is_a_plain_model_that_records_how_it_was_made(tiny_llama, adapter, merged):
    from lmsweep.records import MergeInfo

    folder, info = merged
    assert not (folder / "adapter_config.json").exists()  # nothing of PEFT left: the adapter is in the weights
    assert (folder / "model.safetensors").is_file() and (folder / "tokenizer.json").is_file()
    assert MergeInfo.load(folder / "merge_info.json") == info
    assert info.base_model == str(tiny_llama) and info.adapter == str(adapter)
    assert info.dequantized_from_4bit is False and info.dtype == "torch.float32"
    assert json.loads((folder / "config.json").read_text())["model_type"] == "llama"


def test_generate_on_the_merged_folder_answers_as_the_adapter_does(tiny_llama, adapter, merged, demo_records,
                                                                   cpu_load, tmp_path):
    """The generate step on either weights, greedy: the same answers."""
    from lmsweep.io import read_jsonl
    from lmsweep.settings import Decoding, RunLabels
    from lmsweep.steps import generate as step

    write_jsonl(tmp_path / "test.jsonl", demo_records[30:36])
    greedy = Decoding(settings={"do_sample": False, "num_beams": 1, "max_new_tokens": 8}, defaults="library",
                      sweep=None)
    labels = RunLabels(model="tiny_llama", variant="finetuned", decoding="greedy", replicate=0)
    answers = {}
    for weights, base, adapter_path, load in (
            ("as_trained", str(tiny_llama), str(adapter), cpu_load()),
            ("merged", str(merged[0]), [], cpu_load(weights="merged", merged_folder=True))):
        settings = step.Settings(labels=labels, base_model=base, load=load, decoding=greedy, batch_size=3, seed=0,
                                 device="cpu")
        paths = step.Paths(test=str(tmp_path / "test.jsonl"), base=base, adapter=adapter_path,
                           predictions=str(tmp_path / f"{weights}.jsonl"), info=str(tmp_path / f"{weights}.info.json"))
        step.run(settings, paths)
        answers[weights] = [r["prediction"] for r in read_jsonl(paths.predictions)]
    assert answers["merged"] == answers["as_trained"]
