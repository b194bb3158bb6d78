"""Every config mistake stops the workflow before any job runs, with a message that names the fix.

Each case edits a copy of the demo config and runs the real `snakemake --cores 1`
(not a dry run): it must fail at parse time, say what is wrong, and create
nothing under results/ or logs/.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DEMO = yaml.safe_load((REPO / "demo" / "config.yaml").read_text())


def run_with(tmp_path, change):
    config = json.loads(json.dumps(DEMO))
    change(config, tmp_path)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path),
         "--cores", "1"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    return proc, proc.stdout + proc.stderr


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
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_config_is_stopped_before_any_job(tmp_path, case):
    change, messages = CASES[case]
    proc, out = run_with(tmp_path, change)
    assert proc.returncode != 0
    assert "config error (nothing was run)" in out
    for message in messages:
        assert message in out, f"missing {message!r} in:\n{out}"
    assert not (tmp_path / "results").exists() and not (tmp_path / "logs").exists()


def test_4bit_without_a_gpu_is_stopped_on_a_local_run(tmp_path):
    if os.path.exists("/dev/nvidiactl"):
        pytest.skip("this machine has an NVIDIA driver")
    proc, out = run_with(tmp_path, lambda c, t: (c["quantization"].update(load_in_4bit=True), c.update(device="auto")))
    assert proc.returncode != 0
    assert "needs a CUDA GPU (bitsandbytes 4-bit), and this machine shows none" in out
    assert "set quantization.load_in_4bit: false" in out


def test_unknown_architecture_without_target_modules(tmp_path):
    def change(config, tmp_path):
        model = tmp_path / "my_gpt2"
        model.mkdir()
        (model / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
        config["models"] = {"my_gpt2": {"name_or_path": str(model)}}

    proc, out = run_with(tmp_path, change)
    assert proc.returncode != 0
    assert "models.my_gpt2: no default LoRA target modules for architecture 'gpt2'" in out
    assert "set models.my_gpt2.lora.target_modules" in out


def test_several_mistakes_are_listed_together(tmp_path):
    def change(config, tmp_path):
        config["training"]["learning_rate"] = -1
        config["lora"]["rank"] = 8
        config["seed"] = "42"

    proc, out = run_with(tmp_path, change)
    assert out.count("\n  - ") == 3, out


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
