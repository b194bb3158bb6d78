"""Only stale steps rerun: each change to the study plans exactly the jobs it touches.

Every test edits a private copy of the finished demo and asserts the exact
rules and counts a dry run plans.
"""

import pytest

from conftest import edit_config, planned_jobs, snakemake

pytestmark = pytest.mark.workflow

DOWNSTREAM = {"check_scores": 1, "aggregate": 1, "compare": 1, "report": 1, "all": 1}


def test_nothing_changed_plans_nothing(finished_demo):
    assert planned_jobs(finished_demo) == {}


def test_one_decoding_value_changed_reruns_that_config_only(finished_demo):
    def change(config):
        config["decoding"]["sweep"]["temperature"] = [0.3, 0.5, 0.7, 1.0]

    edit_config(finished_demo, change)
    assert planned_jobs(finished_demo) == {"generate": 3, "score": 3, **DOWNSTREAM}


def test_a_named_config_whose_settings_change_reruns_under_the_same_name(finished_demo):
    edit_config(finished_demo, lambda c: c["decoding"].setdefault("extra", {}).update(greedy={"do_sample": False}))
    assert planned_jobs(finished_demo) == {"generate": 3, "score": 3, **DOWNSTREAM}


def test_a_decoding_config_added_runs_only_its_jobs(finished_demo):
    edit_config(finished_demo, lambda c: c["decoding"]["sweep"]["top_k"].append(100))
    assert planned_jobs(finished_demo) == {"generate": 3, "score": 3, **DOWNSTREAM}


def test_a_decoding_config_removed_only_rebuilds_the_tables(finished_demo):
    edit_config(finished_demo, lambda c: c["decoding"]["sweep"]["top_k"].remove(75))
    assert planned_jobs(finished_demo) == DOWNSTREAM


def test_one_models_lora_rank_reruns_that_models_chain_only(finished_demo):
    edit_config(finished_demo, lambda c: c["models"]["tiny_phi"].update(lora={"r": 4}))
    assert planned_jobs(finished_demo) == {
        "finetune": 1, "generate": 13, "score": 13, "perplexity": 1, **DOWNSTREAM,
    }


def test_a_model_added_runs_only_its_own_chain(finished_demo):
    edit_config(finished_demo, lambda c: c["models"].update(tiny_llama_wide={"build": {"architecture": "llama",
                                                                                       "hidden_size": 96}}))
    assert planned_jobs(finished_demo) == {
        "build_tiny_model": 1, "finetune": 1, "generate": 14, "score": 14, "perplexity": 2, **DOWNSTREAM,
    }


def test_a_scoring_setting_reruns_scoring_only(finished_demo):
    edit_config(finished_demo, lambda c: c["scoring"]["bertscore"].update(num_layers=5))
    assert planned_jobs(finished_demo) == {"score": 42, **DOWNSTREAM}


def test_a_generation_setting_reruns_generation_and_scoring(finished_demo):
    edit_config(finished_demo, lambda c: c["generation"].update(batch_size=8))
    assert planned_jobs(finished_demo) == {"generate": 42, "score": 42, **DOWNSTREAM}


@pytest.mark.parametrize("change", [
    lambda c: c["dataset"].update(test_size=20),
    lambda c: c.update(seed=7),
])
def test_a_changed_split_reruns_everything(finished_demo, change):
    edit_config(finished_demo, change)
    assert planned_jobs(finished_demo) == {
        "prepare_data": 1, "build_tiny_model": 3, "finetune": 3, "generate": 42, "score": 42,
        "perplexity": 6, **DOWNSTREAM,
    }


def test_more_seed_replicates_plan_only_the_new_ones(finished_demo):
    """1 -> 3 replicates: two more generate and score jobs per sampled config; nothing that exists reruns."""
    edit_config(finished_demo, lambda c: c["generation"].update(replicates=3))
    sampled = 3 * 13 + 3  # every demo config samples (num_beams_N are beam sampling), and each base baseline
    assert planned_jobs(finished_demo) == {"generate": 2 * sampled, "score": 2 * sampled, **DOWNSTREAM}


def test_a_greedy_config_gets_no_replicates(finished_demo):
    def change(config):
        config["generation"]["replicates"] = 2
        config["decoding"].setdefault("extra", {}).update(beam_search_2={"do_sample": False, "num_beams": 2})

    edit_config(finished_demo, change)
    # the new config once per model; every sampled config one more replicate
    assert planned_jobs(finished_demo) == {"generate": 3 + 42, "score": 3 + 42, **DOWNSTREAM}


def test_the_number_of_training_gpus_reruns_the_adapters(finished_demo):
    """More training processes make a larger effective batch: another adapter, and all made from it."""
    edit_config(finished_demo, lambda c: c["resources"]["finetune"].update(gpus=2))
    assert planned_jobs(finished_demo) == {
        "finetune": 3, "generate": 39, "score": 39, "perplexity": 3, **DOWNSTREAM,
    }


def test_changed_weights_in_a_local_model_folder_rerun_that_models_chain(finished_demo):
    """A model given by a folder path: new weights in the folder rerun its adapter and everything after."""
    import shutil

    demo = finished_demo / "demo"
    shutil.copytree(demo / "results" / "build_tiny_model" / "tiny_llama", demo / "models" / "my_llama")

    def add(config):
        config["models"] = {"my_llama": {"name_or_path": "models/my_llama"}}
        config["decoding"]["sweep"] = {"top_k": [10]}

    edit_config(finished_demo, add)
    snakemake(finished_demo, "--cores", "2")
    assert planned_jobs(finished_demo) == {}
    weights = demo / "models" / "my_llama" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-8:] = bytes(8)  # other weights, same size
    weights.write_bytes(bytes(data))
    assert planned_jobs(finished_demo) == {
        "finetune": 1, "generate": 3, "score": 3, "perplexity": 2, **DOWNSTREAM,
    }


def test_editing_a_steps_script_reruns_that_step(finished_demo):
    script = finished_demo / "scripts" / "score.py"
    script.write_text(script.read_text().replace("def run(", "# a changed line\ndef run(", 1))
    assert planned_jobs(finished_demo) == {"score": 42, **DOWNSTREAM}


# --- lmsweep's own code, the data file, the training identity (issue 18) -----------------------------------------


def sha256(path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def edit(workflow, module: str, old: str, new: str) -> None:
    path = workflow / "scripts" / "lmsweep" / module
    text = path.read_text()
    assert old in text, (module, old)
    path.write_text(text.replace(old, new, 1))


def test_a_comment_docstring_or_formatting_edit_in_lmsweep_reruns_nothing(finished_demo):
    edit(finished_demo, "stats/family.py", '"""Many tests at once', '# a comment\n"""Many, many tests at once')
    edit(finished_demo, "prompts.py", "def format_prompt(record: dict) -> str:",
         "def format_prompt(record: dict)   ->   str:  # reformatted")
    assert planned_jobs(finished_demo) == {}


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
], ids=["statistics", "metric", "sampler", "prompt template"])
def test_editing_lmsweep_code_reruns_exactly_the_steps_that_run_it(finished_demo, module, old, new, expected):
    edit(finished_demo, module, old, new)
    assert planned_jobs(finished_demo) == {**expected, **DOWNSTREAM}


def test_runtime_modules_change_where_jobs_run_not_what_they_compute(finished_demo):
    edit(finished_demo, "gpus.py", "def ", "def _unused():\n    return 1\n\n\ndef ")
    assert planned_jobs(finished_demo) == {}


def test_a_changed_prompt_template_retrains_the_adapter_from_scratch(finished_demo):
    """Issue 18: the old adapter, trained on the old template, came back bit-identical after --forceall."""
    demo = finished_demo / "demo"
    adapter = demo / "results" / "finetune" / "tiny_llama" / "adapter" / "adapter_model.safetensors"
    log = demo / "logs" / "finetune" / "tiny_llama.log"
    before = sha256(adapter)
    log.unlink()
    edit(finished_demo, "prompts.py", "### Response:", "### Answer:")
    snakemake(finished_demo, "--cores", "2", "results/finetune/tiny_llama/adapter")
    assert sha256(adapter) != before
    new = log.read_text()
    assert "training from scratch" in new and "resuming" not in new and "nothing left to train" not in new
    info = (demo / "results" / "finetune" / "tiny_llama" / "adapter" / "training_info.json").read_text()
    assert '"lmsweep.prompts"' in info  # the code is part of the adapter's identity


def test_forcerun_of_finetune_trains_from_scratch(finished_demo):
    demo = finished_demo / "demo"
    adapter = demo / "results" / "finetune" / "tiny_phi" / "adapter" / "adapter_model.safetensors"
    log = demo / "logs" / "finetune" / "tiny_phi.log"
    before = sha256(adapter)
    log.unlink()
    snakemake(finished_demo, "--cores", "2", "--forcerun", "finetune", "results/finetune/tiny_phi/adapter")
    new = log.read_text()
    assert "training from scratch" in new and "nothing left to train" not in new
    assert sha256(adapter) == before  # trained again from scratch: the same bits, training is deterministic


def test_an_edited_local_dataset_file_reruns_the_split(finished_demo):
    import json

    from lmsweep.demo_data import make_tasks

    demo = finished_demo / "demo"
    data = demo / "data.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in make_tasks(n=300, seed=3)))
    edit_config(finished_demo, lambda c: c["dataset"].update(source="data.jsonl"))
    snakemake(finished_demo, "--cores", "1", "results/prepare_data/manifest.json")
    manifest = demo / "results" / "prepare_data" / "manifest.json"
    assert planned_jobs(finished_demo, "results/prepare_data/manifest.json") == {}
    data.write_text(data.read_text().replace("capital", "Capital", 1))  # edited in place
    assert planned_jobs(finished_demo, "results/prepare_data/manifest.json") == {"prepare_data": 1}
    snakemake(finished_demo, "--cores", "1", "results/prepare_data/manifest.json")
    assert json.loads(manifest.read_text())["read"]["sha256"] == sha256(data)


def test_deleted_snakemake_records_are_said_with_the_command_that_updates_the_results(finished_demo):
    import shutil

    shutil.rmtree(finished_demo / "demo" / ".snakemake")
    edit_config(finished_demo, lambda c: c["decoding"]["sweep"].update(temperature=[0.3, 0.5, 0.7, 1.0]))
    proc = snakemake(finished_demo, "--dry-run")
    text = proc.stdout + proc.stderr
    assert "Snakemake's record of how they were made is gone" in text
    assert "snakemake --cores 1 --forceall" in text
