"""A damaged or deleted intermediate file never becomes a wrong number: it is an error naming the file,
or a warning naming the command that rebuilds it."""

import pytest

from conftest import planned_jobs, snakemake

pytestmark = pytest.mark.workflow

PREDICTIONS = "results/generate/tiny_llama/finetuned/top_k_10/rep0.jsonl"


def test_predictions_cut_at_a_line_boundary_stop_scoring_and_reach_no_table(finished_demo):
    demo = finished_demo / "demo"
    before = (demo / "results" / "scores.csv").read_bytes()
    path = demo / PREDICTIONS
    path.write_text("".join(path.read_text().splitlines(keepends=True)[:12]))  # head -12
    proc = snakemake(finished_demo, "--cores", "2", check=False)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert (f"{PREDICTIONS} holds 12 predictions for the 24 records of results/prepare_data/test.jsonl: "
            "12 test id(s) missing") in text
    assert f"--forcerun {PREDICTIONS}" in text
    assert (demo / "results" / "scores.csv").read_bytes() == before  # no number was made from the cut file


def test_predictions_cut_mid_line_name_the_file_and_line(finished_demo):
    path = finished_demo / "demo" / PREDICTIONS
    text = path.read_text()
    cut = text[: len(text) // 2]
    path.write_text(cut)
    proc = snakemake(finished_demo, "--cores", "2", check=False)
    assert proc.returncode != 0
    assert f"{PREDICTIONS}, line {cut.count(chr(10)) + 1}: not valid JSON" in proc.stdout + proc.stderr


def test_a_deleted_adapter_is_named_with_the_command_that_rebuilds_it(finished_demo):
    import shutil

    shutil.rmtree(finished_demo / "demo" / "results" / "finetune" / "tiny_phi" / "adapter")
    proc = snakemake(finished_demo, "--dry-run", check=False)
    text = proc.stdout + proc.stderr
    assert "1 output(s) were deleted, but what was made from them is still there" in text
    assert "--forcerun results/finetune/tiny_phi/adapter" in text
    rebuild = snakemake(finished_demo, "--dry-run", "--quiet", "rules", "--forcerun",
                        "results/finetune/tiny_phi/adapter").stdout
    assert "finetune" in rebuild and "perplexity" in rebuild
    assert planned_jobs(finished_demo) == {}  # without --forcerun Snakemake keeps what exists
