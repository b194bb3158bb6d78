"""Only stale steps rerun: each change to the study plans exactly the jobs it touches.

Every test edits a private copy of the finished demo and asserts the exact
rules and counts a dry run plans.
"""

import pytest

from conftest import edit_config, planned_jobs

pytestmark = pytest.mark.workflow

DOWNSTREAM = {"aggregate": 1, "report": 1, "all": 1}


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


def test_editing_a_steps_script_reruns_that_step(finished_demo):
    script = finished_demo / "scripts" / "score.py"
    script.write_text(script.read_text().replace("def run(", "# a changed line\ndef run(", 1))
    assert planned_jobs(finished_demo) == {"score": 42, **DOWNSTREAM}
