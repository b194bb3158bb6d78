"""Each step's script, run by hand with wrong arguments, prints its usage and a clear error."""

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
STEPS = ["prepare_data", "build_tiny_model", "finetune", "generate", "score", "perplexity", "aggregate", "report"]


def run(step, *args):
    return subprocess.run([sys.executable, str(SCRIPTS / f"{step}.py"), *args], capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("step", STEPS)
def test_no_arguments_prints_usage_and_what_is_missing(step):
    proc = run(step)
    assert proc.returncode == 2
    assert proc.stderr.startswith("usage: ")
    assert "error: the following arguments are required: --" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("step, args, message", [
    ("generate", ["--test", "missing.jsonl", "--base-model", "m", "--settings", "{}", "--out", "o.jsonl"],
     "argument --test: missing.jsonl does not exist"),
    ("score", ["--predictions", "missing.jsonl", "--out", "s.json", "--per-example", "s.csv"],
     "argument --predictions: missing.jsonl does not exist"),
    ("finetune", ["--train", "missing.jsonl", "--base-model", "m", "--model", "m", "--adapter", "a", "--params", "p"],
     "argument --train: missing.jsonl does not exist"),
    ("prepare_data", ["--source", "missing.jsonl", "--out-dir", "out"],
     "dataset file missing.jsonl does not exist"),
    ("generate", ["--test", __file__, "--base-model", "m", "--settings", "{not json", "--out", "o.jsonl"],
     "argument --settings: invalid loads value"),
    ("generate", ["--test", __file__, "--base-model", "m", "--settings", "{}", "--out", "o", "--device", "tpu"],
     "argument --device: invalid choice: 'tpu'"),
])
def test_a_bad_argument_is_named(tmp_path, step, args, message):
    proc = subprocess.run([sys.executable, str(SCRIPTS / f"{step}.py"), *args], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert proc.returncode == 2
    assert "usage: " in proc.stderr and message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
