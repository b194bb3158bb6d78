"""A step run by hand: one command line for every rule, built from the study's config as the rule builds its job."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "scripts"
RULES = ["prepare_data", "build_tiny_model", "finetune", "merge_adapter", "generate", "score", "perplexity",
         "check_scores", "aggregate", "compare", "report", "prefetch"]


def run(rule, *args, cwd=None):
    return subprocess.run([sys.executable, str(SCRIPTS / f"{rule}.py"), *args], capture_output=True, text=True,
                          cwd=cwd)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """A study folder holding the demo's config (nothing run)."""
    folder = tmp_path_factory.mktemp("study")
    shutil.copy(REPO / "demo" / "config.yaml", folder / "config.yaml")
    return folder


@pytest.mark.parametrize("rule", RULES)
def test_help_says_what_the_step_does_and_how_a_job_is_named(rule):
    proc = run(rule, "--help")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"usage: scripts/{rule}.py")
    assert f"Rule {rule}:" in proc.stdout and "--directory" in proc.stdout and "--show" in proc.stdout


@pytest.mark.parametrize("rule, missing", [("finetune", "--model"), ("generate", "--model, --variant, --decoding, "
                                                                                 "--rep"),
                                           ("perplexity", "--model, --variant")])
def test_a_job_without_its_wildcards_prints_usage_and_what_is_missing(rule, missing, demo):
    proc = run(rule, "--directory", str(demo))
    assert proc.returncode == 2
    assert proc.stderr.startswith("usage: ")
    assert f"error: the following arguments are required: {missing}" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("args, message", [
    (["--model", "tiny_gpt"], "argument --model: 'tiny_gpt' is not one of the study's: tiny_llama, tiny_mistral, "
                              "tiny_phi"),
    (["--model", "tiny_phi", "--variant", "merged", "--decoding", "baseline", "--rep", "0"],
     "argument --variant: 'merged' is not one of the study's: finetuned, base"),
    (["--model", "tiny_phi", "--variant", "base", "--decoding", "greedy", "--rep", "0"],
     "argument --decoding: 'greedy' is not one of the study's: baseline"),
    (["--model", "tiny_phi", "--variant", "base", "--decoding", "baseline", "--rep", "one"],
     "argument --rep: 'one' is not a replicate number"),
])
def test_a_job_the_study_does_not_have_is_named(args, message, demo):
    rule = "finetune" if len(args) == 2 else "generate"
    proc = run(rule, "--directory", str(demo), *args)
    assert proc.returncode == 2
    assert message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_folder_without_a_config_or_a_bad_config_is_an_error(tmp_path):
    proc = run("aggregate", "--directory", str(tmp_path))
    assert proc.returncode != 0 and f"error: no config file config.yaml in {tmp_path}" in proc.stderr
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({**yaml.safe_load((REPO / "demo" / "config.yaml")
                                                                          .read_text()), "sed": 1}))
    proc = run("aggregate", "--directory", str(tmp_path))
    assert proc.returncode != 0 and "config error (nothing was run)" in proc.stderr and "'sed'" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = run("aggregate", "--directory", str(tmp_path / "nowhere"))
    assert proc.returncode == 2 and "is not a folder" in proc.stderr


def test_show_prints_the_job_the_rule_runs(demo):
    """The settings and paths of the job by hand are those the workflow gives the rule's job (lmsweep.wiring)."""
    from dataclasses import asdict

    from lmsweep.configcheck import config_problems
    from lmsweep.wiring import Study, Wildcards

    proc = run("generate", "--directory", str(demo), "--model", "tiny_phi", "--variant", "finetuned", "--decoding",
               "top_k_10", "--rep", "1", "--show")
    assert proc.returncode == 0, proc.stderr
    shown = json.loads(proc.stdout)
    config = yaml.safe_load((demo / "config.yaml").read_text())
    assert config_problems(config, yaml.safe_load((REPO / "config.schema.yaml").read_text()), []) == []
    wc = Wildcards(model="tiny_phi", variant="finetuned", decoding="top_k_10", rep="1")
    study = Study(config)
    assert shown == {"rule": "generate", "settings": asdict(study.settings("generate", wc)),
                     "paths": asdict(study.paths("generate", wc)), "threads": 1}
    assert shown["paths"]["predictions"] == "results/generate/tiny_phi/finetuned/top_k_10/rep1.jsonl"
    assert shown["settings"]["decoding"]["settings"]["top_k"] == 10


def test_a_job_file_of_another_rule_is_refused(demo, tmp_path):
    proc = run("aggregate", "--directory", str(demo), "--show")
    (tmp_path / "job.json").write_text(proc.stdout)
    proc = run("compare", "--job", str(tmp_path / "job.json"))
    assert proc.returncode != 0 and "is a job of rule 'aggregate', not 'compare'" in proc.stderr
