"""Only stale steps rerun: each change to the study plans exactly the jobs it touches.

The dry runs read the shared finished demo, a change of the config merged in by a `--configfile`
override and an edit of lmsweep's code undone afterwards. (The changes that are run, not only planned:
tests/workflow/test_changes_run.py.)
"""


import pytest

from conftest import edited, planned_jobs

pytestmark = pytest.mark.workflow

DOWNSTREAM = {"check_scores": 1, "aggregate": 1, "compare": 1, "report": 1, "all": 1}
SWEEP = {"top_k": [10, 25, 40, 75], "num_beams": [2, 4, 6, 8], "temperature": [0.25, 0.5, 0.7, 1.0]}


def sweep(**changes) -> dict:
    """The demo's decoding sweep with some parameters' values replaced."""
    return {"decoding": {"sweep": {**SWEEP, **changes}}}


def test_the_sweep_here_is_the_demos(demo_run):
    import yaml

    assert yaml.safe_load((demo_run / "demo" / "config.yaml").read_text())["decoding"]["sweep"] == SWEEP


def test_nothing_changed_plans_nothing(demo_run):
    assert planned_jobs(demo_run) == {}


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
    # a model added: only its own chain
    ({"models": {"tiny_llama_wide": {"build": {"architecture": "llama", "hidden_size": 96}}}},
     {"build_tiny_model": 1, "finetune": 1, "generate": 14, "score": 14, "perplexity": 2}),
    # a scoring setting: scoring only
    ({"scoring": {"bertscore": {"num_layers": 5}}}, {"score": 42}),
    # a generation setting: generation and scoring
    ({"generation": {"batch_size": 8}}, {"generate": 42, "score": 42}),
    # a changed split: everything
    ({"dataset": {"test_size": 20}},
     {"prepare_data": 1, "build_tiny_model": 3, "finetune": 3, "generate": 42, "score": 42, "perplexity": 6}),
    ({"seed": 7},
     {"prepare_data": 1, "build_tiny_model": 3, "finetune": 3, "generate": 42, "score": 42, "perplexity": 6}),
    # 1 -> 3 replicates: two more generate and score jobs per sampled config (every demo config samples, the
    # num_beams_N ones by beam sampling, and each base baseline); nothing that exists reruns
    ({"generation": {"replicates": 3}}, {"generate": 2 * (3 * 13 + 3), "score": 2 * (3 * 13 + 3)}),
    # a greedy config gets no replicates: the new config once per model, every sampled config one more
    ({"generation": {"replicates": 2}, "decoding": {"extra": {"beam_search_2": {"do_sample": False, "num_beams": 2}}}},
     {"generate": 3 + 42, "score": 3 + 42}),
    # more training processes make a larger effective batch: another adapter, and all made from it
    ({"resources": {"finetune": {"gpus": 2}}}, {"finetune": 3, "generate": 39, "score": 39, "perplexity": 3}),
], ids=["decoding value", "named config", "config added", "config removed", "lora rank", "model added",
        "scoring setting", "generation setting", "test size", "seed", "more replicates", "greedy config",
        "training gpus"])
def test_a_change_plans_exactly_the_jobs_it_touches(demo_run, change, expected):
    assert planned_jobs(demo_run, config=change) == {**expected, **DOWNSTREAM}


def test_editing_a_steps_script_reruns_that_step(demo_run):
    """Snakemake reruns a script's jobs when the script is newer than their outputs (put back as it was after)."""
    import os

    script = demo_run / "scripts" / "score.py"
    text, stat = script.read_text(), script.stat()
    script.write_text(text.replace('main("score"', '# a changed line\nmain("score"', 1))
    try:
        assert planned_jobs(demo_run) == {"score": 42, **DOWNSTREAM}
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
    ("metrics.py", "use_stemmer: bool = True", "use_stemmer: bool = False", {"score": 42}),
    # the sampler: generation and what is made from it, not training nor perplexity
    ("sampling.py", "UNIFORM_BITS = 23", "UNIFORM_BITS = 22", {"generate": 42, "score": 42}),
    # the prompt template: what formats prompts (the tiny models' tokenizers are trained on them) and after
    ("prompts.py", "### Response:", "### Answer:",
     {"build_tiny_model": 3, "finetune": 3, "generate": 42, "score": 42, "perplexity": 6}),
    # a step's own module: its jobs
    ("steps/perplexity.py", "answers_cut = int(", "answers_cut = 0 + int(", {"perplexity": 6}),
    # the metric vocabulary: what reads it (the tables, the checks), not a model's steps
    ("vocabulary.py", '"token perplexity"', '"perplexity in tokens"', {}),
], ids=["statistics", "metric", "sampler", "prompt template", "step module", "vocabulary"])
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
