"""Only stale steps rerun: each change to the study plans exactly the jobs it touches.

The dry runs read the shared finished demo, a change of the config merged in by a `--configfile`
override and an edit of lmsweep's code undone afterwards. (The changes that are run, not only planned:
tests/workflow/test_changes_run.py.)
"""


import re

import pytest

from conftest import copy_workflow, edited, planned_jobs, snakemake

pytestmark = pytest.mark.workflow

DOWNSTREAM = {"check_scores": 1, "aggregate": 1, "compare": 1, "report": 1, "all": 1}
SWEEP = {"top_k": [10, 25, 40, 75], "num_beams": [2, 4, 6, 8], "temperature": [0.25, 0.5, 0.7, 1.0]}
# The demo's adaptation sweep: tiny_llama's two more adapters (r_16, learning_rate_0.001), under baseline decoding.
ADAPTATION = {"sweep": {"r": [16], "learning_rate": [0.001]}, "alpha": "follows_rank", "decoding": ["baseline"],
              "models": ["tiny_llama"]}
# Every job of a model's chain that the whole demo reruns: 3 + 2 adapters, 42 + 2 generations, 6 + 2 perplexities.
EVERYTHING = {"finetune": 5, "generate": 44, "score": 44, "perplexity": 8}
# What every adapter makes: all of that but the base model's 3 generations and 3 perplexities.
ADAPTED = {"finetune": 5, "generate": 41, "score": 41, "perplexity": 5}


def sweep(**changes) -> dict:
    """The demo's decoding sweep with some parameters' values replaced."""
    return {"decoding": {"sweep": {**SWEEP, **changes}}}


def test_the_sweep_here_is_the_demos(demo_run):
    import yaml

    config = yaml.safe_load((demo_run / "demo" / "config.yaml").read_text())
    assert config["decoding"]["sweep"] == SWEEP and config["adaptation"] == ADAPTATION


def test_nothing_changed_plans_nothing(demo_run):
    assert planned_jobs(demo_run) == {}


def test_a_study_without_an_adaptation_sweep_plans_the_jobs_it_planned_before_the_sweep(tmp_path):
    """The demo without `adaptation` (nor a validation slice), from scratch: the 102 jobs, at their paths, that
    lmsweep planned before adaptation sweeps (issue 21)."""
    import yaml

    config = yaml.safe_load((copy_workflow(tmp_path / "w") / "demo" / "config.yaml").read_text())
    del config["adaptation"]
    del config["training"]["validation_size"]
    (tmp_path / "w" / "demo" / "config.yaml").write_text(yaml.safe_dump(config))
    assert planned_jobs(tmp_path / "w") == {"prepare_data": 1, "build_tiny_model": 3, "finetune": 3, "generate": 42,
                                            "score": 42, "perplexity": 6, **DOWNSTREAM}
    shown = snakemake(tmp_path / "w", "--dry-run").text
    assert sorted(set(re.findall(r"results/finetune/[^/\s,]+/adapter", shown))) == [
        f"results/finetune/{m}/adapter" for m in ("tiny_llama", "tiny_mistral", "tiny_phi")]
    assert "@" not in shown


@pytest.mark.parametrize("change, expected", [
    # one decoding value changed: that config only
    (sweep(temperature=[0.3, 0.5, 0.7, 1.0]), {"generate": 3, "score": 3}),
    # a named config (settings of a name the study did not have) runs under its name
    ({"decoding": {"extra": {"greedy": {"do_sample": False}}}}, {"generate": 3, "score": 3}),
    # a decoding config added: only its jobs
    (sweep(top_k=[10, 25, 40, 75, 100]), {"generate": 3, "score": 3}),
    # a decoding config removed: only the tables
    (sweep(top_k=[10, 25, 40]), {}),
    # one model's LoRA rank: that model's chain only
    ({"models": {"tiny_phi": {"lora": {"r": 4}}}}, {"finetune": 1, "generate": 13, "score": 13, "perplexity": 1}),
    # the rank of the model whose adaptation is swept: its baseline adapter and both swept ones (they move from it)
    ({"models": {"tiny_llama": {"lora": {"r": 4}}}}, {"finetune": 3, "generate": 15, "score": 15, "perplexity": 3}),
    # one adaptation value changed: that adapter's chain alone; the baseline adapter and its 13 configs untouched
    ({"adaptation": {"sweep": {"r": [32]}}}, {"finetune": 1, "generate": 1, "score": 1, "perplexity": 1}),
    # an adaptation setting added: its adapter's chain alone
    ({"adaptation": {"sweep": {"dropout": [0.1]}}}, {"finetune": 1, "generate": 1, "score": 1, "perplexity": 1}),
    # alpha fixed instead of following the rank: only the rank's adapter changes
    ({"adaptation": {"alpha": "fixed"}}, {"finetune": 1, "generate": 1, "score": 1, "perplexity": 1}),
    # the swept adapters under one more decoding config: those generations only
    ({"adaptation": {"decoding": ["baseline", "top_k_10"]}}, {"generate": 2, "score": 2}),
    # one more model swept: its two adapters' chains
    ({"adaptation": {"models": ["tiny_llama", "tiny_phi"]}},
     {"finetune": 2, "generate": 2, "score": 2, "perplexity": 2}),
    # another validation slice trains on other records: every adapter
    ({"training": {"validation_size": 40}}, ADAPTED),
    # a model added: only its own chain
    ({"models": {"tiny_llama_wide": {"build": {"architecture": "llama", "hidden_size": 96}}}},
     {"build_tiny_model": 1, "finetune": 1, "generate": 14, "score": 14, "perplexity": 2}),
    # a scoring setting: scoring only
    ({"scoring": {"bertscore": {"num_layers": 5}}}, {"score": 44}),
    # a generation setting: generation and scoring
    ({"generation": {"batch_size": 8}}, {"generate": 44, "score": 44}),
    # a changed split: everything
    ({"dataset": {"test_size": 20}}, {"prepare_data": 1, "build_tiny_model": 3, **EVERYTHING}),
    ({"seed": 7}, {"prepare_data": 1, "build_tiny_model": 3, **EVERYTHING}),
    # 1 -> 3 replicates: two more generate and score jobs per sampled config (every demo config samples, the
    # num_beams_N ones by beam sampling, each base baseline and the swept adapters'); nothing that exists reruns
    ({"generation": {"replicates": 3}}, {"generate": 2 * (3 * 13 + 3 + 2), "score": 2 * (3 * 13 + 3 + 2)}),
    # a greedy config gets no replicates: the new config once per model, every sampled config one more
    ({"generation": {"replicates": 2}, "decoding": {"extra": {"beam_search_2": {"do_sample": False, "num_beams": 2}}}},
     {"generate": 3 + 44, "score": 3 + 44}),
    # more training processes make a larger effective batch: every adapter, and all made from them
    ({"resources": {"finetune": {"gpus": 2}}}, ADAPTED),
], ids=["decoding value", "named config", "config added", "config removed", "lora rank", "swept model's rank",
        "adaptation value", "adaptation added", "alpha fixed", "adaptation decoding", "adaptation models",
        "validation size", "model added", "scoring setting", "generation setting", "test size", "seed",
        "more replicates", "greedy config", "training gpus"])
def test_a_change_plans_exactly_the_jobs_it_touches(demo_run, change, expected):
    assert planned_jobs(demo_run, config=change) == {**expected, **DOWNSTREAM}


def test_editing_a_steps_script_reruns_that_step(demo_run):
    """Snakemake reruns a script's jobs when the script is newer than their outputs (put back as it was after)."""
    import os

    script = demo_run / "scripts" / "score.py"
    text, stat = script.read_text(), script.stat()
    script.write_text(text.replace('main("score"', '# a changed line\nmain("score"', 1))
    try:
        assert planned_jobs(demo_run) == {"score": 44, **DOWNSTREAM}
    finally:
        script.write_text(text)
        os.utime(script, ns=(stat.st_atime_ns, stat.st_mtime_ns))


# --- lmsweep's own code (issue 18) -------------------------------------------------------------------------------


def test_a_comment_docstring_or_formatting_edit_in_lmsweep_reruns_nothing(demo_run):
    with edited(demo_run, "stats/family.py", '"""Many tests at once', '# a comment\n"""Many, many tests at once'), \
            edited(demo_run, "prompts.py", "def format_prompt(record: dict) -> str:",
                   "def format_prompt(record: dict)   ->   str:  # reformatted"):
        assert planned_jobs(demo_run) == {}


@pytest.mark.parametrize("module, old, new, expected", [
    # the statistics: only the tables and the report
    ("stats/family.py", "MARGIN_SE = 4.0", "MARGIN_SE = 4.5", {}),
    # a metric: scoring and what is made from it, not generation
    ("metrics.py", "use_stemmer: bool = True", "use_stemmer: bool = False", {"score": 44}),
    # the sampler: generation and what is made from it, not training nor perplexity
    ("sampling.py", "UNIFORM_BITS = 23", "UNIFORM_BITS = 22", {"generate": 44, "score": 44}),
    # the prompt template: what formats prompts (the tiny models' tokenizers are trained on them) and after
    ("prompts.py", "### Response:", "### Answer:", {"build_tiny_model": 3, **EVERYTHING}),
    # a step's own module: its jobs
    ("steps/perplexity.py", "answers_cut = int(", "answers_cut = 0 + int(", {"perplexity": 8}),

    # the metric vocabulary: what reads it (the tables, the checks), not a model's steps
    ("vocabulary.py", '"token perplexity"', '"perplexity in tokens"', {}),
    # what a training run records (its validation loss): every adapter and what is made from them, not the base's
    ("trainlog.py", '"eval_loss" in entry', '"eval_loss" in entry and True', ADAPTED),
], ids=["statistics", "metric", "sampler", "prompt template", "step module", "vocabulary", "training log"])
def test_editing_lmsweep_code_reruns_exactly_the_steps_that_run_it(demo_run, module, old, new, expected):
    with edited(demo_run, module, old, new):
        assert planned_jobs(demo_run) == {**expected, **DOWNSTREAM}


@pytest.mark.parametrize("module", ["runtime/gpus.py", "runtime/warm_server.py", "runtime/job.py",
                                    "wiring/layout.py"])
def test_runtime_and_wiring_modules_change_where_and_how_jobs_run_not_what_they_compute(demo_run, module):
    """The runtime (claims, warm forks, the job's launch) is tested to give the same numbers; the wiring reruns
    a job when what it gives the job changes (its settings and paths are params and inputs), not by itself."""
    path = demo_run / "scripts" / "lmsweep" / module
    text = path.read_text()
    path.write_text(text + "\n\ndef _an_edit():\n    return 1\n")
    try:
        assert planned_jobs(demo_run) == {}
    finally:
        path.write_text(text)
