"""The adaptation sweep (lmsweep.adaptation): its configs, what each adapter is trained with, the jobs a
study plans with and without one, and its refusals, each naming its key, before any job."""

import copy
import json
from pathlib import Path

import pytest
import yaml

from lmsweep.configcheck import config_problems
from lmsweep.models import ATTENTION_TARGETS, LORA_TARGETS, ModelSetupError, lora_targets
from lmsweep.wiring import ADAPTER, Study, Wildcards

REPO = Path(__file__).resolve().parents[1]
SCHEMA = yaml.safe_load((REPO / "config.schema.yaml").read_text())
DEMO = yaml.safe_load((REPO / "demo" / "config.yaml").read_text())


def checked(change=None, config=None) -> tuple:
    """(problems, config with the schema's defaults) of the demo config after `change(config)`."""
    config = copy.deepcopy(config or DEMO)
    if change:
        change(config)
    return config_problems(config, SCHEMA, []), config


def study(change=None) -> Study:
    problems, config = checked(change)
    assert problems == []
    return Study(config)


def without_sweep(config):
    del config["adaptation"]


# --- the configs and their settings ------------------------------------------------------------------------------


def test_each_value_is_a_named_adaptation_beside_the_baseline_adapter():
    s = study(lambda c: c["adaptation"]["sweep"].update(dropout=[0.1, 0.2], target_modules=["attention"],
                                                         max_steps=[20]))
    assert s.adaptations == {"r_16": ("r", 16), "learning_rate_0.001": ("learning_rate", 0.001),
                             "dropout_0.1": ("dropout", 0.1), "dropout_0.2": ("dropout", 0.2),
                             "target_modules_attention": ("target_modules", "attention"),
                             "max_steps_20": ("max_steps", 20)}
    assert s.variants == ["finetuned", "base", *s.adaptations]
    # one adapter per (model, adaptation); the baseline's folders are those of a study without a sweep
    assert s.each_adapter(ADAPTER)[:7] == [
        "results/finetune/tiny_llama/adapter", "results/finetune/tiny_llama@r_16/adapter",
        "results/finetune/tiny_llama@learning_rate_0.001/adapter", "results/finetune/tiny_llama@dropout_0.1/adapter",
        "results/finetune/tiny_llama@dropout_0.2/adapter",
        "results/finetune/tiny_llama@target_modules_attention/adapter",
        "results/finetune/tiny_llama@max_steps_20/adapter"]


def test_an_adapter_moves_one_setting_and_alpha_follows_the_rank_by_the_stated_rule():
    s = study()
    base = s.settings("finetune", Wildcards(model="tiny_llama"))
    r16 = s.settings("finetune", Wildcards(model="tiny_llama", adaptation="@r_16"))
    lr = s.settings("finetune", Wildcards(model="tiny_llama", adaptation="@learning_rate_0.001"))
    assert (base.lora.r, base.lora.alpha, base.adaptation) == (8, 16, None)
    # alpha = baseline alpha x r / baseline r: the same scale alpha / r = 2
    assert (r16.lora.r, r16.lora.alpha, r16.adaptation) == (16, 32, "r_16")
    assert r16.training == base.training and r16.load == base.load
    assert lr.training.learning_rate == 0.001 and lr.lora == base.lora
    assert {f for f in base.training.__dataclass_fields__ if getattr(base.training, f) != getattr(lr.training, f)} \
        == {"learning_rate"}
    # each adapter resumes from its own checkpoints: a folder of another identity is removed (lmsweep.train)
    assert len({base.checkpoints, r16.checkpoints, lr.checkpoints}) == 3
    fixed = study(lambda c: c["adaptation"].update(alpha="fixed"))
    assert fixed.settings("finetune", Wildcards(model="tiny_llama", adaptation="@r_16")).lora.alpha == 16


def test_a_models_own_settings_are_its_baseline_and_the_sweep_moves_from_them():
    s = study(lambda c: (c["models"]["tiny_phi"].update(lora={"r": 4, "alpha": 4}),
                         c["adaptation"].update(models=None)))
    assert s.settings("finetune", Wildcards(model="tiny_phi", adaptation="@r_16")).lora.alpha == 16  # 4 x 16 / 4
    assert s.settings("finetune", Wildcards(model="tiny_llama", adaptation="@r_16")).lora.alpha == 32


def test_bf16_lora_against_a_qlora_baseline_loads_each_adapter_as_it_trained():
    def change(config):
        config.update(device="auto")
        config["quantization"]["load_in_4bit"] = True
        config["inference"]["weights"] = "merged"
        config["adaptation"]["sweep"] = {"load_in_4bit": [False]}

    s = study(change)
    plain = Wildcards(model="tiny_llama", adaptation="@load_in_4bit_false")
    assert s.settings("finetune", plain).load.quantization.load_in_4bit is False
    assert s.settings("finetune", Wildcards(model="tiny_llama")).load.quantization.load_in_4bit is True
    run = Wildcards(model="tiny_llama", variant="load_in_4bit_false", decoding="baseline")
    assert s.settings("generate", run).load.merged_from_4bit is False
    assert s.paths("generate", run).base == "results/merge_adapter/tiny_llama@load_in_4bit_false"
    assert s.paths("merge_adapter", plain).merged == "results/merge_adapter/tiny_llama@load_in_4bit_false"
    baseline = Wildcards(model="tiny_llama", variant="finetuned", decoding="baseline")
    assert s.settings("generate", baseline).load.merged_from_4bit is True


@pytest.mark.parametrize("model_type", sorted(LORA_TARGETS))
def test_attention_only_targets_are_the_attention_projections(model_type):
    attention = lora_targets(model_type, "attention")
    assert attention == ATTENTION_TARGETS[model_type] and set(attention) < set(LORA_TARGETS[model_type])
    assert all("proj" in t or t == "dense" for t in attention)
    assert not {"gate_proj", "up_proj", "down_proj", "fc1", "fc2"} & set(attention)
    assert lora_targets(model_type, "all") == lora_targets(model_type, None) == LORA_TARGETS[model_type]
    with pytest.raises(ModelSetupError, match="adaptation.sweep"):
        lora_targets("gpt_unknown", "attention", "m")


# --- the jobs a study plans ----------------------------------------------------------------------------------------


def runs_of(s: Study) -> list:
    return list(s.runs())


def test_without_a_sweep_the_study_plans_what_it_planned_before_adaptation_sweeps():
    """The runs and adapters of a study without `adaptation`, as lmsweep planned them before (issue 21)."""
    s = study(without_sweep)
    assert s.adaptations == {} and s.variants == ["finetuned", "base"]
    assert s.each_adapter(ADAPTER) == [f"results/finetune/{m}/adapter" for m in s.models]
    expected = [(m, v, d, 0) for m in s.models for v, ds in (("finetuned", s.decoding), ("base", ["baseline"]))
                for d in ds]
    assert runs_of(s) == expected and len(expected) == 42
    assert s.benchmarks()[:3] == [f"benchmarks/finetune/{m}.tsv" for m in s.models]
    assert s.adaptation_plots() == {}
    # an empty sweep is the same study
    empty = study(lambda c: c["adaptation"].update(sweep={}))
    assert runs_of(empty) == expected and empty.each_adapter(ADAPTER) == s.each_adapter(ADAPTER)


def test_a_sweep_adds_each_adapters_runs_under_the_chosen_decoding_configs_with_every_replicate():
    s = study(lambda c: (c["adaptation"].update(decoding=["baseline", "num_beams_2"], models=None),
                         c["generation"].update(replicates=2)))
    swept = [r for r in runs_of(s) if r[1] not in ("finetuned", "base")]
    assert sorted(swept) == sorted((m, a, d, rep) for m in s.models for a in ("r_16", "learning_rate_0.001")
                                   for d in ("baseline", "num_beams_2") for rep in range(2))
    assert "results/perplexity/tiny_mistral/r_16.json" in s.each_model("results/perplexity/{model}/{variant}.json")


def test_adaptation_models_sweeps_only_the_models_it_names():
    s = study()  # the demo: tiny_llama only
    assert [s.swept(m) for m in s.models] == [["r_16", "learning_rate_0.001"], [], []]
    assert {r[0] for r in runs_of(s) if r[1] not in ("finetuned", "base")} == {"tiny_llama"}
    assert s.each_adapter(ADAPTER) == ["results/finetune/tiny_llama/adapter",
                                       "results/finetune/tiny_llama@r_16/adapter",
                                       "results/finetune/tiny_llama@learning_rate_0.001/adapter",
                                       "results/finetune/tiny_mistral/adapter", "results/finetune/tiny_phi/adapter"]
    assert len(s.each_model("results/perplexity/{model}/{variant}.json")) == 6 + 2


# --- refused before any job ----------------------------------------------------------------------------------------


def sweep(**values):
    return lambda c: c["adaptation"].update(sweep=values)


@pytest.mark.parametrize("change, key, words", [
    (sweep(r=[0]), "adaptation.sweep.r.0", ">= 1"),
    (sweep(r=[4.0]), "adaptation.sweep.r.0", "write 4"),
    (sweep(rank=[4]), "adaptation.sweep", "'rank' is not allowed"),
    (sweep(r=[8]), "adaptation.sweep.r", "baseline's value (lora.r)"),
    (sweep(learning_rate=[0.003]), "adaptation.sweep.learning_rate", "baseline's value (training.learning_rate)"),
    (sweep(target_modules=["all"]), "adaptation.sweep.target_modules", "train the baseline adapter again"),
    (sweep(target_modules=["mlp"]), "adaptation.sweep.target_modules.0", "use one of attention, all"),
    (sweep(load_in_4bit=[False]), "adaptation.sweep.load_in_4bit", "false is the baseline's value"),
    (sweep(load_in_4bit=[True]), "adaptation.sweep.load_in_4bit", "needs CUDA"),
    (sweep(r=[4, 4]), "adaptation.sweep.r", "listed twice"),
    (sweep(dropout=[1.0]), "adaptation.sweep.dropout.0", "< 1"),
    (sweep(max_steps=[0]), "adaptation.sweep.max_steps.0", ""),
    (sweep(r=[]), "adaptation.sweep.r", "at least"),
    (lambda c: (c["adaptation"].update(sweep={"epochs": [2]}), c["training"].update(max_steps=40)),
     "adaptation.sweep.epochs", "sweep max_steps instead"),
    (lambda c: c["models"]["tiny_llama"].update(lora={"r": 16}), "adaptation.sweep.r",
     "tiny_llama's own value (models.tiny_llama.lora.r)"),
    (lambda c: c["adaptation"].update(models=["tiny_lama"]), "adaptation.models", "'tiny_lama' is no model"),
    (lambda c: c["adaptation"].update(decoding=["top_k_11"]), "adaptation.decoding",
     "'top_k_11' is no decoding config"),
    (lambda c: c["adaptation"].update(alpha="double"), "adaptation.alpha", "follows_rank"),
    (lambda c: c["training"].update(validation_size=-1), "training.validation_size", ">= 0"),
], ids=["rank 0", "integral float", "unknown setting", "baseline rank", "baseline lr", "all = null",
        "unknown targets", "baseline 4-bit", "4-bit on cpu", "twice", "dropout 1", "max_steps 0", "empty",
        "epochs under max_steps", "a model's own value", "unknown model", "unknown decoding", "alpha rule",
        "validation size"])
def test_a_bad_adaptation_config_is_refused_by_its_key(change, key, words):
    problems, _ = checked(change)
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"{key}:") and words in problems[0], problems


def test_attention_targets_are_refused_for_an_architecture_without_known_ones(tmp_path, monkeypatch):
    folder = tmp_path / "gpt"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "gpt_neox", "max_position_embeddings": 2048}))
    monkeypatch.chdir(tmp_path)

    def change(config):
        config["models"] = {"neox": {"name_or_path": "gpt", "lora": {"target_modules": ["query_key_value"]}}}
        config["adaptation"]["sweep"] = {"target_modules": ["attention"]}

    problems, _ = checked(change)
    assert any(p.startswith("adaptation.sweep.target_modules: 'attention' is not known for neox's architecture "
                            "'gpt_neox'") for p in problems), problems
