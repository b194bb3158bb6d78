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


def test_a_damaged_per_example_file_stops_the_run_before_the_tables_which_keep_their_numbers(finished_demo):
    """Issue 18: aggregate found the damage, but Snakemake had removed scores.csv and comparisons.csv first."""
    import csv

    import pandas as pd

    results = finished_demo / "demo" / "results"
    before = {name: (results / name).read_bytes() for name in ("scores.csv", "comparisons.csv")}
    path = results / "score" / "tiny_llama" / "finetuned" / "top_k_10" / "rep0.per_example.csv"
    table = pd.read_csv(path, keep_default_na=False)
    table.loc[3, "rouge_l"] = 99.0
    table.to_csv(path, index=False, quoting=csv.QUOTE_NONNUMERIC)
    proc = snakemake(finished_demo, "--cores", "2", check=False)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "column rouge_l has 1 value(s) outside its range [0.0, 1.0]" in text and "--forcerun" in text
    assert "Error in rule check_scores" in text
    for name, content in before.items():
        assert (results / name).read_bytes() == content, name


def test_a_summary_whose_label_was_edited_is_named_not_a_missing_output(finished_demo):
    """Issue 18: an edited label ended in a MissingOutputException blaming filesystem latency."""
    import json

    path = finished_demo / "demo" / "results" / "score" / "tiny_phi" / "finetuned" / "top_k_25" / "rep0.json"
    summary = json.loads(path.read_text())
    summary["decoding"] = "top_k_40"
    path.write_text(json.dumps(summary))
    proc = snakemake(finished_demo, "--cores", "2", check=False)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "says decoding 'top_k_40', but its path says 'top_k_25'; the file was edited or moved" in text
    assert "MissingOutputException" not in text


def test_predictions_whose_reference_was_edited_are_refused_not_scored(finished_demo):
    """Issue 18: the predictions file's own reference field was scored (BLEU 100 instead of 7.6)."""
    import json

    path = finished_demo / "demo" / PREDICTIONS
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    for row in rows:
        row["reference"] = row["prediction"]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    proc = snakemake(finished_demo, "--cores", "2", check=False)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert f"{PREDICTIONS}, row 1 (test id {rows[0]['id']}): its reference is not the test split's answer" in text
