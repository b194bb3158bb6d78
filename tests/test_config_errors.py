"""Every config mistake stops the workflow before any job runs, with a message that names the fix.

Each case edits a copy of the demo config and checks it as the Snakefile does
while it is read (lmsweep.configcheck.config_problems, in this process): one
line, naming the key and the fix. Two cases run the real `snakemake --cores 1`
(not a dry run) to prove the wiring: a config error at parse time and one at
the run's start stop the workflow with every mistake listed, and create
nothing under results/ or logs/.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lmsweep.configcheck import config_problems, local_gpu_problems
from lmsweep.models import MODULE_NAMES

REPO = Path(__file__).resolve().parents[1]
DEMO = yaml.safe_load((REPO / "demo" / "config.yaml").read_text())
# The cases replace the demo's models: its adaptation sweep (of tiny_llama, tests/test_adaptation.py) is left out.
del DEMO["adaptation"]


SCHEMA = yaml.safe_load((REPO / "config.schema.yaml").read_text())


def write_config(tmp_path, change, text=None):
    """The demo config after `change(config, tmp_path)`, written to tmp_path/config.yaml; `text(yaml)` edits
    the file's text."""
    config = json.loads(json.dumps(DEMO))
    change(config, tmp_path)
    dumped = yaml.safe_dump(config, sort_keys=False)
    (tmp_path / "config.yaml").write_text(text(dumped) if text else dumped)
    return tmp_path / "config.yaml"


def check(tmp_path, monkeypatch, change, text=None, extra=()) -> list:
    """The problems the Snakefile finds reading the config (relative paths from the study's folder)."""
    path = write_config(tmp_path, change, text)
    monkeypatch.chdir(tmp_path)
    config = yaml.safe_load(path.read_text())
    for file in extra:
        config = update(config, yaml.safe_load(Path(file).read_text()))
    return config_problems(config, SCHEMA, [path, *extra])


def update(config: dict, other: dict) -> dict:
    """`other` merged into `config`, as Snakemake merges a --configfile into the config."""
    from snakemake.utils import update_config

    update_config(config, other)
    return config


def run_with(tmp_path, change, *args):
    """Run snakemake on the demo config after `change(config, tmp_path)`."""
    write_config(tmp_path, change)
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path),
         "--cores", "1", *args],
        cwd=REPO, capture_output=True, text=True,
    )
    return proc, proc.stdout + proc.stderr


def problems(out):
    """The problem lines of a config error."""
    return [line.strip()[2:] for line in out.splitlines() if line.startswith("  - ")]


def nothing_was_run(tmp_path):
    return not (tmp_path / "results").exists() and not (tmp_path / "logs").exists()


def set_key(*path, value):
    def change(config, tmp_path):
        node = config
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = value(tmp_path) if callable(value) else value
    return change


CASES = {
    "typo in a key": (set_key("training", "learning_rat", value=1e-3),
                      ["training: unknown key 'learning_rat' (did you mean 'learning_rate'?)", "allowed:"]),
    "typo in a model's lora key": (set_key("models", "tiny_phi", "lora", value={"rnak": 4}),
                                   ["models.tiny_phi.lora: unknown key 'rnak'", "allowed: alpha, dropout"]),
    "wrong type": (set_key("training", "batch_size", value="16"),
                   ["training.batch_size: '16' is a str, expected integer"]),
    "negative learning rate": (set_key("training", "learning_rate", value=-1e-4),
                               ["training.learning_rate: -0.0001 is out of range; it must be > 0"]),
    "top_k 0": (set_key("decoding", "baseline", "top_k", value=0),
                ["decoding.baseline.top_k: 0 is out of range; it must be >= 1"]),
    "temperature 0 with sampling": (set_key("decoding", "sweep", "temperature", value=[0.0, 0.5]),
                                    ["temperature_0.0", "temperature=0.0 must be > 0 when do_sample is true"]),
    "beams below 1": (set_key("decoding", "sweep", "num_beams", value=[0, 2]),
                      ["num_beams=0 must be >= 1"]),
    "a parameter that cannot be swept": (set_key("decoding", "sweep", "top_q", value=[0.5]),
                                         ["decoding.sweep: 'top_q' is not allowed; use one of do_sample, top_k"]),
    "duplicate decoding value": (set_key("decoding", "sweep", "top_k", value=[10, 10]),
                                 ["decoding.sweep.top_k: value 10 is listed twice"]),
    "illegal decoding name": (set_key("decoding", "extra", value={"my/config": {"top_k": 5}}),
                              ["decoding config name 'my/config' is not allowed"]),
    "illegal model name": (set_key("models", "tiny.llama", value={"build": {"architecture": "llama"}}),
                           ["models: 'tiny.llama' is not allowed: use letters, digits, '_' and '-'"]),
    "model both built and downloaded": (
        set_key("models", "tiny_phi", value={"build": {"architecture": "phi"}, "name_or_path": "microsoft/phi-2"}),
        ["models.tiny_phi: give exactly one of name_or_path or build"]),
    "unknown base decoding": (set_key("models", "tiny_phi", "base_decoding", value=["greedy"]),
                              ["models.tiny_phi.base_decoding: 'greedy' is not a decoding config; known: baseline"]),
    "split larger than the data": (set_key("dataset", "test_size", value=1000),
                                   ["test_size 1000 + train_size None exceed dataset.synthetic_size 700"]),
    "fractions over one": (lambda c, t: c["dataset"].update(test_size=0.6, train_size=0.6),
                           ["test_size 0.6 and train_size 0.6 add up to more than the whole dataset"]),
    "missing local dataset": (set_key("dataset", "source", value="data/alpaca.jsonl"),
                              ["dataset.source: 'data/alpaca.jsonl' does not exist"]),
    "4-bit on cpu": (set_key("quantization", "load_in_4bit", value=True),
                     ["quantization.load_in_4bit: true needs CUDA, but device is cpu; set load_in_4bit: false"]),
    "unknown enum": (set_key("dataset", "on_invalid", value="ignore"),
                     ["dataset.on_invalid: 'ignore' is not allowed; use one of error, drop"]),
    "negative seed": (set_key("seed", value=-1),
                      ["seed: -1 is out of range; it must be >= 0 and <= 4294967295 (numpy's seed range"]),
    "seed above 2**32-1": (set_key("seed", value=2**32),
                           ["seed: 4294967296 is out of range; it must be >= 0 and <= 4294967295"]),
    "missing local model folder": (
        set_key("models", "tiny_phi", value={"name_or_path": "./no_such_model"}),
        ["models.tiny_phi.name_or_path: './no_such_model' does not exist", "give an existing folder or a Hub id"]),
    "a model path that is clearly not a Hub id": (
        set_key("models", "tiny_phi", value={"name_or_path": "models/phi/v2"}),
        ["models.tiny_phi.name_or_path: 'models/phi/v2' does not exist"]),
    "missing local BERTScore model": (
        set_key("scoring", "bertscore", "model_type", value="~/no_such_bertscore_model"),
        ["scoring.bertscore.model_type: '~/no_such_bertscore_model' does not exist"]),
    "dataset source is a directory": (
        set_key("dataset", "source", value=lambda t: (t / "alpaca").mkdir() or "alpaca"),
        ["dataset.source: 'alpaca' is a directory; give a .json, .jsonl or .parquet file"]),
    "module to save that no model has": (
        set_key("lora", "modules_to_save", value=["embed_tokens", "nonexistent_head"]),
        ["lora.modules_to_save: 'nonexistent_head' is no module of tiny_llama (llama), tiny_mistral (mistral), "
         "tiny_phi (phi) (did you mean 'lm_head'?)"]),
    "one model's LoRA target that its architecture lacks": (
        set_key("models", "tiny_phi", "lora", value={"target_modules": ["q_proj", "o_proj"]}),
        ["models.tiny_phi.lora.target_modules: 'o_proj' is no module of tiny_phi (phi)", "Module names: "]),
    "a global LoRA target one architecture lacks": (
        set_key("lora", "target_modules", value=["q_proj", "fc1"]),
        ["lora.target_modules: 'fc1' is no module of tiny_llama (llama), tiny_mistral (mistral); PEFT would train "
         "nothing by that name (set models.<name>.lora.target_modules for the models that lack it)"]),
    "dropout 1": (set_key("lora", "dropout", value=1.0),
                  ["lora.dropout: 1.0 is out of range; it must be >= 0 and < 1 "
                   "(at 1 all LoRA input would be dropped)"]),
    "infinite temperature": (set_key("decoding", "baseline", "temperature", value=float("inf")),
                             ["decoding.baseline.temperature: inf is not a finite number"]),
    "nan in a sweep": (set_key("decoding", "sweep", "temperature", value=[float("nan"), 0.5]),
                       ["decoding.sweep.temperature.0: nan is not a finite number"]),
    "sweep value equal to the baseline's": (
        set_key("decoding", "sweep", "top_k", value=[10, 50]),
        ["decoding.sweep.top_k: 50 is the baseline's value, so top_k_50 would be the baseline config twice; "
         "remove it"]),
    "max_new_tokens at the context length": (
        set_key("models", "tiny_phi", "build", "max_position_embeddings", value=64),
        set_key("decoding", "sweep", "max_new_tokens", value=[64]),
        ["decoding.sweep.max_new_tokens: 64 new tokens are at or above the context length of "
         "tiny_phi (64, build.max_position_embeddings)"]),
    "max_length too small": (set_key("training", "max_length", value=8),
                             ["training.max_length: 8 is out of range; it must be >= 32"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_config_is_stopped_before_any_job(tmp_path, monkeypatch, case):
    *changes, messages = CASES[case]
    found = check(tmp_path, monkeypatch, lambda config, tmp: [change(config, tmp) for change in changes])
    # One mistake, one line: a semantic check does not repeat what the schema said.
    assert len(found) == 1, found
    for message in messages:
        assert message in found[0], f"missing {message!r} in:\n{found[0]}"


def test_4bit_without_a_gpu_is_stopped_on_a_local_run(tmp_path, monkeypatch):
    if os.path.exists("/dev/nvidiactl"):
        pytest.skip("this machine has an NVIDIA driver")
    def change(config, tmp_path):
        config["quantization"]["load_in_4bit"] = True
        config["device"] = "auto"

    assert check(tmp_path, monkeypatch, change) == []  # allowed in the config: a cluster's nodes have GPUs ...
    config = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert config_problems(config, SCHEMA, []) == []
    (found,) = local_gpu_problems(config)  # ... refused when the run starts its jobs here
    assert "needs a CUDA GPU (bitsandbytes 4-bit), and this machine shows none" in found
    assert "set quantization.load_in_4bit: false" in found


def test_unknown_architecture_without_target_modules(tmp_path, monkeypatch):
    def change(config, tmp_path):
        model = tmp_path / "my_gpt2"
        model.mkdir()
        (model / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
        config["models"] = {"my_gpt2": {"name_or_path": str(model)}}

    (found,) = check(tmp_path, monkeypatch, change)
    assert "models.my_gpt2: no default LoRA target modules for architecture 'gpt2'" in found
    assert "set models.my_gpt2.lora.target_modules" in found


def test_several_mistakes_stop_snakemake_listed_together_before_any_job(tmp_path):
    """End to end: the Snakefile refuses the config while it is read, every mistake on its own line."""
    def change(config, tmp_path):
        config["training"]["learning_rate"] = -1
        config["lora"]["rank"] = 8
        config["seed"] = "42"

    proc, out = run_with(tmp_path, change)
    assert proc.returncode != 0
    assert "config error (nothing was run)" in out
    assert out.count("\n  - ") == 3, out
    assert sorted(problems(out)) == sorted([
        "training.learning_rate: -1 is out of range; it must be > 0",
        "lora: unknown key 'rank'; allowed: alpha, dropout, modules_to_save, r, target_modules",
        "seed: '42' is a str, expected integer",
    ]), out
    assert nothing_was_run(tmp_path)


def test_a_bad_dataset_stops_at_prepare_data_before_any_training(tmp_path):
    lines = [json.dumps({"instruction": "Say hi.", "input": "", "output": "hi"})] * 3
    lines.append('{"instruction": "Broken", "input": "",')
    (tmp_path / "data.jsonl").write_text("\n".join(lines) + "\n")
    proc, out = run_with(tmp_path, set_key("dataset", "source", value="data.jsonl"))
    assert proc.returncode != 0
    log = (tmp_path / "logs" / "prepare_data" / "prepare_data.log").read_text()
    assert "data.jsonl, line 4: not valid JSON" in log
    assert not (tmp_path / "results" / "finetune").exists()
    assert not (tmp_path / "results" / "prepare_data" / "train.jsonl").exists()


def line_of(text, needle, after=0):
    """1-based number of the first line at or after line `after` that starts with `needle`."""
    lines = text.splitlines()
    return next(i for i in range(after, len(lines)) if lines[i].startswith(needle)) + 1


def test_every_kind_of_mistake_is_listed_in_one_error(tmp_path, monkeypatch):
    def change(config, tmp_path):
        config["lora"]["r"] = 0  # schema
        config["models"]["tiny_phi"]["base_decoding"] = ["greedy"]  # semantic
        config["models"]["tiny_mistral"] = {"name_or_path": "./no_such_model"}  # a missing path

    def duplicate(text):  # a second tiny_llama entry, which PyYAML would silently keep
        return text.replace("models:\n", "models:\n  tiny_llama:\n    build:\n      architecture: mistral\n", 1)

    found = check(tmp_path, monkeypatch, change, text=duplicate)
    text = (tmp_path / "config.yaml").read_text()
    first = line_of(text, "  tiny_llama:")
    second = line_of(text, "  tiny_llama:", after=first)
    assert sorted(found) == sorted([
        "lora.r: 0 is out of range; it must be >= 1",
        "models.tiny_phi.base_decoding: 'greedy' is not a decoding config; known: " + ", ".join(
            ["baseline"] + [f"{p}_{v}" for p, values in DEMO["decoding"]["sweep"].items() for v in values]),
        f"models.tiny_mistral.name_or_path: './no_such_model' does not exist (relative paths start from the "
        f"working directory {tmp_path}); give an existing folder or a Hub id (owner/name)",
        f"{tmp_path / 'config.yaml'}: models.tiny_llama is given twice (lines {first} and {second}); "
        "YAML keeps only the last one, so remove or rename one",
    ]), found


def test_a_key_given_twice_in_a_configfile_from_the_command_line(tmp_path, monkeypatch):
    extra = tmp_path / "extra.yaml"
    extra.write_text("training:\n  epochs: 1\n  learning_rate: 1.0e-3\n  epochs: 2\n")
    found = check(tmp_path, monkeypatch, lambda c, t: None, extra=[extra])
    assert found == [f"{extra}: training.epochs is given twice (lines 2 and 4); "
                     "YAML keeps only the last one, so remove or rename one"], found


def test_a_local_model_folder_is_checked_against_its_config_json(tmp_path, monkeypatch):
    def change(config, tmp_path):
        model = tmp_path / "my_llama"
        model.mkdir()
        (model / "config.json").write_text(json.dumps({"model_type": "llama", "max_position_embeddings": 24}))
        config["models"] = {"my_llama": {"name_or_path": str(model), "lora": {"target_modules": ["q_prj"]}}}

    found = check(tmp_path, monkeypatch, change)
    assert sorted(found) == sorted([
        "decoding.baseline.max_new_tokens: 24 new tokens are at or above the context length of my_llama "
        "(24, max_position_embeddings in its config.json); lower it well below that, the prompt needs room too",
        "models.my_llama.lora.target_modules: 'q_prj' is no module of my_llama (llama) (did you mean 'q_proj'?); "
        "PEFT would train nothing by that name. Module names: " + ", ".join(sorted(MODULE_NAMES["llama"])),
    ]), found


def test_more_training_gpus_than_the_run_has_are_refused_at_start(tmp_path):
    """End to end: what only the run's start knows (its gpu resource) stops it before any job."""
    def change(config, tmp_path):
        config["resources"]["finetune"]["gpus"] = 2

    proc, out = run_with(tmp_path, change, "--resources", "gpu=1")
    assert proc.returncode != 0
    assert "config error (nothing was run)" in out
    assert ("resources.finetune.gpus: 2 GPUs per training job, but this run has gpu=1" in out
            and "Run with --resources gpu=2" in out), out
    assert nothing_was_run(tmp_path)


@pytest.mark.parametrize("resources, limit, key", [
    ({"gpu_per_job": 1, "finetune": {"gpus": 2}}, 1, "resources.finetune.gpus: 2"),
    ({"gpu_per_job": 4, "finetune": {}}, 2, "resources.gpu_per_job: 4"),  # finetune's default
    ({"gpu_per_job": 1, "finetune": {"gpus": 2}}, 2, None),
    ({"gpu_per_job": 1, "finetune": {"gpus": 8}}, None, None),  # no gpu limit declared: nothing scales down
    ({"gpu_per_job": 4, "finetune": {"gpus": 1}}, 1, None),
])
def test_training_gpus_against_the_runs_gpu_resource(resources, limit, key):
    config = {"quantization": {"load_in_4bit": False}, "device": "cpu", "resources": resources}
    found = local_gpu_problems(config, limit)
    assert [p.split(" GPUs")[0] for p in found] == ([key] if key else []), found


# --- module names: the table the config check reads, and the check after a model loads ---------------------


def tiny_config(model_type):
    from transformers import AutoConfig

    return AutoConfig.for_model(
        model_type, vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=1, head_dim=8, max_position_embeddings=64,
    )


@pytest.mark.parametrize("model_type", sorted(MODULE_NAMES))
def test_module_names_are_those_of_the_real_transformers_class(model_type):
    import torch
    from transformers import AutoModelForCausalLM

    from lmsweep.models import LORA_TARGETS

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(tiny_config(model_type))
    leaves = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules() if name}
    assert set(MODULE_NAMES[model_type]) == {leaf for leaf in leaves if not leaf.isdigit()}
    assert set(LORA_TARGETS.get(model_type, [])) <= set(MODULE_NAMES[model_type])


@pytest.fixture(scope="module")
def llama_model(tiny_llama):
    from lmsweep.models import load_base_model

    return load_base_model(str(tiny_llama), "cpu")


def test_lora_module_names_the_model_has_pass(llama_model):
    from lmsweep.models import check_lora_modules

    check_lora_modules(llama_model, ["q_proj", "self_attn.v_proj"], ["embed_tokens", "lm_head"], "tiny_llama")
    check_lora_modules(llama_model, None, [], "tiny_llama")  # the per-architecture default is not checked here


def test_lora_module_names_the_model_lacks_are_refused_with_the_key_and_close_matches(llama_model):
    from lmsweep.models import ModelSetupError, check_lora_modules

    with pytest.raises(ModelSetupError) as err:
        check_lora_modules(llama_model, ["q_prj", "k_proj"], ["nonexistent_head"], "tiny_llama")
    lines = str(err.value).splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("model 'tiny_llama': lora.target_modules names 'q_prj', which is no module of this "
                               "llama model (did you mean 'q_proj'?); fix lora.target_modules or "
                               "models.tiny_llama.lora.target_modules (module names: ")
    assert "lora.modules_to_save names 'nonexistent_head'" in lines[1] and "(did you mean 'lm_head'?)" in lines[1]


@pytest.mark.parametrize("target_modules, modules_to_save, accepted", [
    (["proj"], [], False),          # a target matches a whole last name only: "proj" is no module
    (["mlp.up_proj"], [], True),    # or a dotted tail of one
    (["q_proj"], ["head"], True),   # a module to save matches any tail of a name: "head" saves lm_head
    (["q_proj"], ["lm_hea"], False),
])
def test_module_names_match_as_peft_matches_them(llama_model, target_modules, modules_to_save, accepted):
    """check_lora_modules accepts exactly what PEFT finds in the model."""
    import copy

    from peft import LoraConfig, get_peft_model
    from peft.utils import ModulesToSaveWrapper

    from lmsweep.models import ModelSetupError, check_lora_modules

    try:
        check_lora_modules(llama_model, target_modules, modules_to_save, "tiny_llama")
        ours = True
    except ModelSetupError:
        ours = False
    try:
        peft_model = get_peft_model(copy.deepcopy(llama_model),
                                    LoraConfig(r=2, target_modules=target_modules, modules_to_save=modules_to_save))
        saved = any(isinstance(m, ModulesToSaveWrapper) for m in peft_model.modules())
        peft_found = saved or not modules_to_save
    except ValueError:  # PEFT: "Target modules {...} not found in the base model"
        peft_found = False
    assert ours == peft_found == accepted
