"""An intermediate file is trusted for nothing it says about itself that can be known otherwise (issue 18):
references come from the test split, labels from the path, every number from its metric's range."""

import json
import shutil

import pandas as pd
import pytest

from lmsweep import checks
from lmsweep.runs import load_perplexities, load_runs
from lmsweep.io import write_jsonl


@pytest.fixture
def study(mini_study, tmp_path):
    """A private copy of the made-up study's files, to damage."""
    folder = tmp_path / "study"
    shutil.copytree(mini_study["folder"], folder)
    summaries = [folder / p.relative_to(mini_study["folder"]) for p in mini_study["summaries"]]
    perplexities = [folder / p.relative_to(mini_study["folder"]) for p in mini_study["perplexities"]]
    return {"folder": folder, "test": folder / "test.jsonl", "summaries": summaries, "perplexities": perplexities}


def predictions(study, tmp_path, model="m1", variant="finetuned", decoding="baseline", rep=0):
    """A predictions file as generate writes it, for the study's test split."""
    rows = [json.loads(line) for line in study["test"].read_text().splitlines()]
    path = tmp_path / "generate" / model / variant / decoding / f"rep{rep}.jsonl"
    write_jsonl(path, [{"id": r["id"], "prediction": r["output"], "reference": r["output"], "model": model,
                        "variant": variant, "decoding": decoding, "replicate": rep} for r in rows])
    return path


def test_predictions_pass_with_the_test_splits_references_and_their_paths_labels(study, tmp_path):
    path = predictions(study, tmp_path)
    labels = {"model": "m1", "variant": "finetuned", "decoding": "baseline", "replicate": 0}
    assert len(checks.read_predictions(path, study["test"], labels)) == 30


def test_a_predictions_file_whose_reference_was_edited_is_refused(study, tmp_path):
    """Issue 18: an edited `reference` field was scored: BLEU 100 instead of 7.6."""
    path = predictions(study, tmp_path)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows[4]["reference"] = rows[4]["prediction"] = "an answer that matches itself"
    write_jsonl(path, rows)
    with pytest.raises(checks.IntermediateFileError, match=rf"{path}, row 5 \(test id {rows[4]['id']}\): its "
                                                           r"reference is not the test split's answer .*--forcerun"):
        checks.read_predictions(path, study["test"])


def test_a_predictions_file_whose_labels_disagree_with_its_path_is_refused(study, tmp_path):
    path = predictions(study, tmp_path, decoding="top_k_10")
    with pytest.raises(checks.IntermediateFileError, match=r"row 1: decoding is 'top_k_10', but the file's path says "
                                                           r"'baseline'; the file was edited or moved"):
        checks.read_predictions(path, study["test"], {"model": "m1", "decoding": "baseline"})


def test_run_labels_come_from_the_path():
    assert checks.labels_of("results/score/m1/finetuned/top_k_10/rep2.json") == {
        "model": "m1", "variant": "finetuned", "decoding": "top_k_10", "replicate": 2}
    assert checks.labels_of("results/perplexity/m1/base.json", "perplexity") == {"model": "m1", "variant": "base"}
    with pytest.raises(checks.IntermediateFileError, match="not a score summary's path"):
        checks.labels_of("results/scores.json")


def test_a_summary_whose_label_was_edited_is_refused_not_grouped_by_it(study):
    """Issue 18: summaries were grouped by the labels inside them; an edited one joined another run."""
    path = next(p for p in study["summaries"] if "top_k_10" in str(p))
    summary = json.loads(path.read_text())
    summary["decoding"] = "baseline"
    path.write_text(json.dumps(summary))
    with pytest.raises(checks.IntermediateFileError, match=r"says decoding 'baseline', but its path says 'top_k_10'"):
        load_runs(study["summaries"], study["test"])


def test_a_summary_whose_sweep_does_not_name_its_config_is_refused(study):
    path = next(p for p in study["summaries"] if "top_k_10" in str(p))
    summary = json.loads(path.read_text())
    summary["sweep"] = ["top_k", 25]
    path.write_text(json.dumps(summary))
    with pytest.raises(checks.IntermediateFileError, match=r"its sweep \['top_k', 25\] does not name the decoding "
                                                           r"config of its path, 'top_k_10'"):
        load_runs(study["summaries"], study["test"])


def test_a_file_listed_twice_is_refused_not_counted_as_two_replicates(study):
    with pytest.raises(checks.IntermediateFileError, match="is listed twice among the score summaries"):
        load_runs(study["summaries"] + study["summaries"][:1], study["test"])


@pytest.mark.parametrize("column, value, message", [
    ("rouge_l", 99.0, r"column rouge_l has 1 value\(s\) outside its range \[0.0, 1.0\]"),
    ("bertscore_f1", -5.0, r"column bertscore_f1 has 1 value\(s\) outside its range \[-1.0, 1.0\]"),
    ("bleu", 101.0, r"column bleu has 1 value\(s\) outside its range \[0.0, 100.0\]"),
    ("rouge_l", float("inf"), r"column rouge_l has 1 cell\(s\) that are not finite numbers"),
])
def test_a_per_example_number_outside_its_metrics_range_is_refused(study, column, value, message):
    table_path = str(study["summaries"][0]).removesuffix(".json") + ".per_example.csv"
    table = pd.read_csv(table_path, keep_default_na=False)
    table.loc[2, column] = value
    table.to_csv(table_path, index=False)
    with pytest.raises(checks.IntermediateFileError, match=message):
        load_runs(study["summaries"], study["test"])


def test_rescaled_bertscore_may_lie_below_minus_one(study):
    table_path = str(study["summaries"][0]).removesuffix(".json") + ".per_example.csv"
    table = pd.read_csv(table_path, keep_default_na=False)
    table.loc[2, "bertscore_f1"] = -1.7
    table.to_csv(table_path, index=False)
    assert load_runs(study["summaries"], study["test"], bertscore_rescaled=True)


def test_a_per_example_reference_that_is_not_the_test_splits_is_refused(study):
    table_path = str(study["summaries"][0]).removesuffix(".json") + ".per_example.csv"
    table = pd.read_csv(table_path, keep_default_na=False)
    table.loc[0, "reference"] = "edited"
    table.to_csv(table_path, index=False)
    with pytest.raises(checks.IntermediateFileError, match=r"the reference of test id\(s\) .* is not the test "
                                                           r"split's answer"):
        load_runs(study["summaries"], study["test"])


@pytest.mark.parametrize("column, value, message", [
    ("tokens", 0, r"column tokens has 1 value\(s\) outside its range \[1, inf\]"),
    ("nll", -1.0, r"column nll has 1 value\(s\) outside its range \[0.0, inf\]"),
    ("nll_text", 1e9, r"nll_text exceeds nll for test id"),
])
def test_a_perplexity_table_with_an_impossible_number_is_refused(study, column, value, message):
    table_path = str(study["perplexities"][0]).removesuffix(".json") + ".per_example.csv"
    table = pd.read_csv(table_path)
    table.loc[1, column] = value
    table.to_csv(table_path, index=False)
    with pytest.raises(checks.IntermediateFileError, match=message):
        load_perplexities(study["perplexities"], study["test"])


def test_damaged_tables_and_records_name_the_file_and_the_rebuild(tmp_path):
    bad = tmp_path / "scores.csv"
    bad.write_text('model,metric\n"m1,bleu\n')
    with pytest.raises(checks.IntermediateFileError, match=rf"{bad} cannot be read as CSV .*--forcerun {bad}"):
        checks.read_csv_checked(bad, ["model"])
    info = tmp_path / "adapter" / "training_info.json"
    info.parent.mkdir()
    info.write_text('{"model": ')
    with pytest.raises(checks.IntermediateFileError, match=rf"{info} is not valid JSON .*--forcerun {info.parent}`"):
        checks.read_json_checked(info, ["model"], rebuild=info.parent)
    info.write_text("[1, 2]")
    with pytest.raises(checks.IntermediateFileError, match="holds a JSON list, not an object"):
        checks.read_json_checked(info)
