"""Changes to a finished study, run for real on a private copy of the reduced study: what reruns, and what it
writes (the dry-run promises for every kind of change: tests/workflow/test_reruns.py)."""

import hashlib
import json
import shutil

import pandas as pd
import pytest

from conftest import REDUCED, copy_run, edit_config, edited, planned_jobs, snakemake

pytestmark = pytest.mark.workflow

DOWNSTREAM = {"check_scores": 1, "aggregate": 1, "compare": 1, "report": 1, "all": 1}


@pytest.fixture
def study(reduced_run, tmp_path):
    """A private copy of the finished reduced study; `run(*args)` runs snakemake on it as the shared run ran."""
    workflow = copy_run(reduced_run.workflow, tmp_path / "workflow")

    def run(*args):
        return snakemake(workflow, "--cores", "2", *args, folder=REDUCED, env=reduced_run.env)

    return workflow, run


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_changed_weights_in_a_local_model_folder_rerun_that_models_chain(study):
    """A model given by a folder path: new weights in the folder rerun its adapter and everything after."""
    workflow, run = study
    folder = workflow / REDUCED
    shutil.copytree(folder / "results" / "build_tiny_model" / "tiny_llama", folder / "models" / "my_llama")
    edit_config(workflow, lambda c: c.update(models={"my_llama": {"name_or_path": "models/my_llama",
                                                                  "base_decoding": []}}), folder=REDUCED)
    run()
    assert planned_jobs(workflow, folder=REDUCED) == {}
    weights = folder / "models" / "my_llama" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-8:] = bytes(8)  # other weights, same size
    weights.write_bytes(bytes(data))
    assert planned_jobs(workflow, folder=REDUCED) == {
        "finetune": 1, "merge_adapter": 1, "generate": 2, "score": 2, "perplexity": 2, **DOWNSTREAM,
    }


def test_a_changed_prompt_template_retrains_the_adapter_from_scratch(study):
    """Issue 18: the old adapter, trained on the old template, came back bit-identical after --forceall."""
    workflow, run = study
    folder = workflow / REDUCED
    adapter = folder / "results" / "finetune" / "tiny_llama" / "adapter" / "adapter_model.safetensors"
    log = folder / "logs" / "finetune" / "tiny_llama.log"
    before = sha256(adapter)
    log.unlink()
    with edited(workflow, "prompts.py", "### Response:", "### Answer:"):
        run("results/finetune/tiny_llama/adapter")
    assert sha256(adapter) != before
    new = log.read_text()
    assert "training from scratch" in new and "resuming" not in new and "nothing left to train" not in new
    info = (folder / "results" / "finetune" / "tiny_llama" / "adapter" / "training_info.json").read_text()
    assert '"lmsweep.prompts"' in info  # the code is part of the adapter's identity


def test_an_edited_local_dataset_file_reruns_the_split(study):
    from lmsweep.demo_data import make_tasks

    workflow, run = study
    folder = workflow / REDUCED
    data = folder / "data.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in make_tasks(n=300, seed=3)))
    edit_config(workflow, lambda c: c["dataset"].update(source="data.jsonl"), folder=REDUCED)
    manifest = "results/prepare_data/manifest.json"
    run(manifest)
    assert planned_jobs(workflow, manifest, folder=REDUCED) == {}
    data.write_text(data.read_text().replace("capital", "Capital", 1))  # edited in place
    assert planned_jobs(workflow, manifest, folder=REDUCED) == {"prepare_data": 1}
    run(manifest)
    assert json.loads((folder / manifest).read_text())["read"]["sha256"] == sha256(data)


def test_a_removed_config_disappears_from_the_tables_and_the_report(study):
    workflow, run = study
    folder = workflow / REDUCED
    edit_config(workflow, lambda c: c["decoding"].update(sweep={}), folder=REDUCED)
    assert planned_jobs(workflow, folder=REDUCED) == DOWNSTREAM
    run()
    assert set(pd.read_csv(folder / "results" / "scores.csv").decoding) == {"baseline", "teacher_forced"}
    assert "top_k_10" not in (folder / "results" / "report" / "report.md").read_text()
    assert (folder / "results" / "generate" / "tiny_llama" / "finetuned" / "top_k_10").is_dir()  # files stay


def test_deleted_snakemake_records_are_said_with_the_command_that_updates_the_results(study):
    workflow, _ = study
    shutil.rmtree(workflow / REDUCED / ".snakemake")
    edit_config(workflow, lambda c: c["decoding"]["sweep"].update(top_k=[20]), folder=REDUCED)
    proc = snakemake(workflow, "--dry-run", folder=REDUCED)
    assert "Snakemake's record of how they were made is gone" in proc.text
    assert "snakemake --cores 1 --forceall" in proc.text
