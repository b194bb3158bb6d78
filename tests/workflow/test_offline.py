"""The reduced study, as a GPU workstation without internet runs it: nothing downloaded, every GPU job on its
claimed device in a fork of the warm server, the production's merged weights.

`unshare -n` (root) gives snakemake and every job it starts a network namespace with only a down loopback:
any attempt to reach the Hub, PyPI or a DNS server fails at once. HF_HUB_OFFLINE=1 is set as a cluster job
has it. With CUDA_VISIBLE_DEVICES=0 every GPU job claims device 0 (lmsweep.runtime.gpus) and, device: auto
finding no CUDA here, runs on the CPU; the first run on a GPU machine hung exactly there (the warm fork
waited for the claim its own job held).
"""

import json
import os
import re

import pandas as pd
import pytest

from conftest import REDUCED, snakemake

pytestmark = pytest.mark.workflow


def test_the_reduced_study_runs_to_the_end_offline(reduced_run):
    if os.geteuid() == 0:
        assert reduced_run.offline, "unshare -n could not cut the network here"
    scores = pd.read_csv(reduced_run.study / "results" / "scores.csv")
    generated = scores[scores.decoding != "teacher_forced"]
    assert sorted(generated.decoding.unique()) == ["baseline", "top_k_10"]
    assert scores.value.notna().all()
    assert (reduced_run.study / "results" / "report" / "report.html").stat().st_size > 10_000


def test_the_merged_weights_made_the_fine_tuned_numbers(reduced_run):
    """inference.weights: merged, the production default: merge_adapter ran, generation and perplexity of the
    fine-tuned variant read the merged folder, and the base variant loads its base as the merge did."""
    results = reduced_run.study / "results"
    assert (results / "merge_adapter" / "tiny_llama" / "merge_info.json").is_file()
    scores = pd.read_csv(results / "scores.csv")
    weights = scores.groupby("variant").weights.unique().to_dict()
    assert list(weights["finetuned"]) == ["merged: adapter merged into the full-precision base"]
    assert list(weights["base"]) == ["merged: full-precision base"]
    merged, built = "results/merge_adapter/tiny_llama", "results/build_tiny_model/tiny_llama"
    for variant, base in (("finetuned", merged), ("base", built)):  # the base variant is teacher-forced only here
        assert json.loads((results / "perplexity" / "tiny_llama" / f"{variant}.json").read_text())["base_model"] == base
        log = (reduced_run.study / "logs" / "perplexity" / "tiny_llama" / f"{variant}.log").read_text()
        assert f"loading {base} on cpu" in log and "with adapter" not in log
    predictions = results / "generate" / "tiny_llama" / "finetuned" / "baseline" / "rep0.jsonl"
    assert json.loads(predictions.read_text().splitlines()[0])["base_model"] == merged
    log = (reduced_run.study / "logs" / "generate" / "tiny_llama" / "finetuned" / "baseline" / "rep0.log").read_text()
    assert f"loading {merged} on cpu" in log
    assert "generation config sets" not in log  # the tiny folder's output_attentions is no decoding difference


GPU_RULES = {"finetune", "merge_adapter", "generate", "score", "perplexity"}


def test_every_gpu_job_claimed_its_device_and_ran_in_a_warm_fork(reduced_run):
    said = reduced_run.text
    ran = re.findall(r"^(?:local)?rule (\w+):$", said, re.M)  # a local run shows every job as a localrule
    gpu_jobs = [rule for rule in ran if rule in GPU_RULES]
    assert set(gpu_jobs) == GPU_RULES and len(gpu_jobs) == 8
    assert said.count("running on GPU 0 (CUDA_VISIBLE_DEVICES=0)") == len(gpu_jobs)
    assert "warm start: job scripts run from one preloaded process" in said
    logs = [p.read_text() for p in (reduced_run.study / "logs").rglob("*.log")]
    assert not [text for text in logs + [said] if "runs cold" in text]


def test_prefetch_knows_the_demo_needs_nothing_from_the_hub(reduced_run):
    proc = snakemake(reduced_run.workflow, "--cores", "1", "prefetch", folder=REDUCED, env=reduced_run.env,
                     prefix=reduced_run.prefix)
    assert "nothing to fetch" in (reduced_run.study / "logs" / "prefetch" / "prefetch.log").read_text(), proc.text
