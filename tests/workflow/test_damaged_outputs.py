"""A damaged or deleted intermediate file never becomes a wrong number: it is an error naming the file,
or a warning naming the command that rebuilds it.

Each kind of damage is refused by the step that reads the file (tests/steps, tests/test_checks.py); these
tests run the workflow to show where a damaged file stops a run, and what that leaves.
"""

import csv
import shutil

import pandas as pd
import pytest
from conftest import planned_jobs, snakemake

pytestmark = pytest.mark.workflow


def test_a_damaged_per_example_file_stops_the_run_before_the_tables_which_keep_their_numbers(private_demo):
    """Issue 18: aggregate found the damage, but Snakemake had removed scores.csv and comparisons.csv first."""
    results = private_demo / "demo" / "results"
    before = {name: (results / name).read_bytes() for name in ("scores.csv", "comparisons.csv")}
    path = results / "score" / "tiny_llama" / "finetuned" / "top_k_10" / "rep0.per_example.csv"
    table = pd.read_csv(path, keep_default_na=False)
    table.loc[3, "rouge_l"] = 99.0
    table.to_csv(path, index=False, quoting=csv.QUOTE_NONNUMERIC)
    proc = snakemake(private_demo, "--cores", "2", check=False)
    assert proc.returncode != 0
    assert "column rouge_l has 1 value(s) outside its range [0.0, 1.0]" in proc.text and "--forcerun" in proc.text
    assert "Error in rule check_scores" in proc.text
    for name, content in before.items():
        assert (results / name).read_bytes() == content, name


def test_a_deleted_adapter_is_named_with_the_command_that_rebuilds_it(private_demo):
    shutil.rmtree(private_demo / "demo" / "results" / "finetune" / "tiny_phi" / "adapter")
    proc = snakemake(private_demo, "--dry-run", check=False)
    assert "1 output(s) were deleted, but what was made from them is still there" in proc.text
    assert "--forcerun results/finetune/tiny_phi/adapter" in proc.text
    rebuild = snakemake(private_demo, "--dry-run", "--quiet", "rules", "--forcerun",
                        "results/finetune/tiny_phi/adapter").stdout
    assert "finetune" in rebuild and "perplexity" in rebuild
    assert planned_jobs(private_demo) == {}  # without --forcerun Snakemake keeps what exists
